package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

// contactFinder looks a contact up without creating it (`ticket find` and plans write nothing).
type contactFinder interface {
	FindContact(ctx context.Context, email string) (*chain.Contact, error)
}

func newTicketCmd(g *Globals) *cobra.Command {
	return newGroupCmd("ticket", "Find, create or close tickets",
		newTicketFindCmd(g, nil), newTicketCreateCmd(g, nil), newTicketCloseCmd(g, nil))
}

// ticketJSON is a ticket in every command's JSON: all keys always present.
type ticketJSON struct {
	ID             string    `json:"id"`
	Subject        string    `json:"subject"`
	Stage          string    `json:"stage"`
	ContactID      string    `json:"contact_id"`
	Classification string    `json:"classification"`
	FileURLs       []string  `json:"fichiers_urls"`
	SubtaskID      string    `json:"clickup_subtask_id"`
	LastActivity   time.Time `json:"last_activity"`
	URL            string    `json:"url"`
}

func ticketOut(t *chain.Ticket) *ticketJSON {
	if t == nil {
		return nil
	}
	urls := t.FileURLs
	if urls == nil {
		urls = []string{}
	}
	return &ticketJSON{ID: t.ID, Subject: t.Subject, Stage: t.Stage, ContactID: t.ContactID, Classification: t.Classification,
		FileURLs: urls, SubtaskID: t.SubtaskID, LastActivity: t.LastActivity, URL: t.URL}
}

// notFound is an id given on the command line that names nothing: bad input, the argument named.
func notFound(field, what, id string) error {
	return &usageError{field: field, err: fmt.Errorf("%s %s: %w", what, id, chain.ErrNotFound)}
}

// normalizeEmail checks an --email flag as the payload checks user_email.
func normalizeEmail(s string) (string, error) {
	email, err := payload.NormalizeEmail(s)
	var ve *payload.ValidationError
	if errors.As(err, &ve) {
		return "", fieldErr("--email", "%s", ve.Msg)
	}
	return email, err
}

type ticketFindOptions struct {
	*Globals
	Email string
	At    string
}

func newTicketFindCmd(g *Globals, runF func(context.Context, *ticketFindOptions) error) *cobra.Command {
	o := &ticketFindOptions{Globals: g}
	c := &cobra.Command{
		Use:   "find --email E",
		Short: "Show the contact's open ticket inside the threading window, or nothing",
		Long: `Shows the ticket a new message from this contact would join: an open stage and activity inside
the threading window. Prints nothing (and {"ticket": null} in JSON) when there is none; exit 0 either
way. Writes nothing.`,
		Example: `  figsupport ticket find --email client@example.com
  figsupport ticket find --email client@example.com --at 2026-01-20T10:00:00Z -o json`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runTicketFind(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Email, "email", "", "contact's e-mail address (required)")
	c.Flags().StringVar(&o.At, "at", "", "measure the window at this RFC 3339 time instead of now")
	_ = c.MarkFlagRequired("email")
	return c
}

func runTicketFind(ctx context.Context, o *ticketFindOptions) error {
	email, err := normalizeEmail(o.Email)
	if err != nil {
		return err
	}
	at := o.Now()
	if o.At != "" {
		if at, err = parseTime(o.At); err != nil {
			return fieldErr("--at", "want an RFC 3339 time like 2026-01-05T09:00:00Z, got %q", o.At)
		}
	}
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: true})
	if err != nil {
		return err
	}
	defer a.Close()
	finder, ok := a.crm.(contactFinder)
	if !ok {
		return errors.New("this CRM backend cannot look a contact up without creating it")
	}
	var t *chain.Ticket
	contact, err := finder.FindContact(ctx, email)
	if err != nil {
		return err
	}
	if contact != nil {
		if t, err = a.chain().FindOpenTicket(ctx, contact.ID, at); err != nil {
			return err
		}
	}
	if o.JSON() {
		return writeJSON(o.Out, struct {
			Ticket *ticketJSON `json:"ticket"`
		}{ticketOut(t)})
	}
	switch {
	case contact == nil:
		o.status("no contact %s", email)
	case t == nil:
		o.status("no open ticket for %s active since %s (the threading window before %s; --at to measure at another time)",
			email, at.Add(-a.s.chain.Window).Format(time.RFC3339), at.Format(time.RFC3339))
	default:
		printTicket(o.Globals, t)
	}
	return nil
}

// printTicket shows a ticket to the support team: what the customer's ticket holds.
func printTicket(g *Globals, t *chain.Ticket) {
	fmt.Fprintf(g.Out, "ticket #%s %s\n", t.ID, t.URL)
	fmt.Fprintf(g.Out, "  subject:       %s\n", t.Subject)
	fmt.Fprintf(g.Out, "  stage:         %s\n", t.Stage)
	fmt.Fprintf(g.Out, "  last activity: %s\n", t.LastActivity.Format("2006-01-02 15:04:05 MST"))
	if t.SubtaskID != "" {
		fmt.Fprintf(g.Out, "  subtask:       %s\n", t.SubtaskID)
	}
	for _, u := range t.FileURLs {
		fmt.Fprintf(g.Out, "  file:          %s\n", u)
	}
}

type ticketCreateOptions struct {
	*Globals
	Email, Name, Subject, Body, Classification string
}

func newTicketCreateCmd(g *Globals, runF func(context.Context, *ticketCreateOptions) error) *cobra.Command {
	o := &ticketCreateOptions{Globals: g}
	c := &cobra.Command{
		Use:     "create --email E --subject S [--body B] [--classification C]",
		Short:   "Create the contact (if needed) and a ticket",
		Example: `  figsupport ticket create --email client@example.com --subject "Rappel téléphonique" --body "Client rappelé le 5/01"`,
		Args:    argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runTicketCreate(cmd.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Email, "email", "", "contact's e-mail address (required)")
	f.StringVar(&o.Name, "name", "", "contact's name, used when the contact is created")
	f.StringVar(&o.Subject, "subject", "", "ticket subject (required)")
	f.StringVar(&o.Body, "body", "", "ticket description")
	f.StringVar(&o.Classification, "classification", payload.Support, "SUPPORT or MODELISATION")
	_ = c.MarkFlagRequired("email")
	_ = c.MarkFlagRequired("subject")
	_ = c.RegisterFlagCompletionFunc("classification", cobra.FixedCompletions([]string{payload.Support, payload.Modelisation}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func runTicketCreate(ctx context.Context, o *ticketCreateOptions) error {
	email, err := normalizeEmail(o.Email)
	if err != nil {
		return err
	}
	subject := strings.TrimSpace(o.Subject)
	if subject == "" {
		return fieldErr("--subject", "must not be empty")
	}
	classif := strings.ToUpper(strings.TrimSpace(o.Classification))
	if classif != payload.Support && classif != payload.Modelisation {
		return fieldErr("--classification", "want SUPPORT or MODELISATION, not %q", o.Classification)
	}
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: o.DryRun})
	if err != nil {
		return err
	}
	defer a.Close()
	if o.DryRun {
		contact := "create the contact " + email
		if finder, ok := a.crm.(contactFinder); ok {
			c, err := finder.FindContact(ctx, email)
			if err != nil {
				return err
			}
			if c != nil {
				contact = fmt.Sprintf("use contact %s (%s)", c.ID, email)
			}
		}
		return printSteps(o.Globals, []string{contact + " in " + a.target("crm"),
			fmt.Sprintf("create a %s ticket %q in %s", classif, subject, a.target("crm"))})
	}
	contact, err := a.crm.FindOrCreateContact(ctx, email, o.Name)
	if err != nil {
		return err
	}
	t, err := a.crm.CreateTicket(ctx, chain.TicketInput{ContactID: contact.ID, Subject: subject,
		Content: o.Body, Classification: classif, At: o.Now()})
	if err != nil {
		return err
	}
	if err := a.chain().RememberTicket(ctx, contact.ID, t.ID); err != nil {
		o.Log.Warn("remember ticket", "err", err)
	}
	if t.URL == "" {
		t.URL = a.crm.TicketURL(t.ID)
	}
	if o.JSON() {
		return writeJSON(o.Out, struct {
			Ticket  *ticketJSON   `json:"ticket"`
			Contact chain.Contact `json:"contact"`
		}{ticketOut(&t), contact})
	}
	printTicket(o.Globals, &t)
	return nil
}

type ticketCloseOptions struct {
	*Globals
	ID string
}

func newTicketCloseCmd(g *Globals, runF func(context.Context, *ticketCloseOptions) error) *cobra.Command {
	o := &ticketCloseOptions{Globals: g}
	return &cobra.Command{
		Use:   "close ID",
		Short: "Move a ticket to the closed stage (HUBSPOT_STAGE_CLOSED)",
		Example: `  figsupport ticket close 1
  figsupport --dry-run ticket close 1`,
		Args: argNames("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runTicketClose(cmd.Context(), o)
		},
	}
}

func runTicketClose(ctx context.Context, o *ticketCloseOptions) error {
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: o.DryRun})
	if err != nil {
		return err
	}
	defer a.Close()
	closed := o.Values.String("HUBSPOT_STAGE_CLOSED")
	if o.DryRun {
		t, err := a.crm.GetTicket(ctx, o.ID)
		if errors.Is(err, chain.ErrNotFound) {
			return notFound("ID", "ticket", o.ID)
		}
		if err != nil {
			return err
		}
		return printSteps(o.Globals, []string{fmt.Sprintf("move ticket %s %q from stage %s to stage %s in %s", t.ID, t.Subject, t.Stage, closed, a.target("crm"))})
	}
	if err := a.crm.CloseTicket(ctx, o.ID); err != nil {
		if errors.Is(err, chain.ErrNotFound) {
			return notFound("ID", "ticket", o.ID)
		}
		return err
	}
	t, err := a.crm.GetTicket(ctx, o.ID)
	if err != nil {
		return err
	}
	if o.JSON() {
		return writeJSON(o.Out, struct {
			Ticket *ticketJSON `json:"ticket"`
		}{ticketOut(&t)})
	}
	fmt.Fprintf(o.Out, "ticket #%s closed (stage %s)\n", t.ID, t.Stage)
	return nil
}

// printSteps prints the plan of a command other than process: each step with its real target.
func printSteps(g *Globals, steps []string) error {
	if g.JSON() {
		return writeJSON(g.Out, struct {
			DryRun bool     `json:"dry_run"`
			Steps  []string `json:"steps"`
		}{true, steps})
	}
	fmt.Fprintln(g.Out, "dry run: nothing written")
	for _, s := range steps {
		fmt.Fprintf(g.Out, "  would %s\n", s)
	}
	return nil
}

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

// contactFinder looks a contact up without creating it (`ticket find` writes nothing).
type contactFinder interface {
	FindContact(ctx context.Context, email string) (*chain.Contact, error)
}

func newTicketCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{Use: "ticket", Short: "Find, create or close tickets"}
	c.AddCommand(newTicketFindCmd(g), newTicketCreateCmd(g), newTicketCloseCmd(g))
	return c
}

type ticketFindOptions struct {
	g     *Globals
	email string
	at    string
}

func newTicketFindCmd(g *Globals) *cobra.Command {
	o := &ticketFindOptions{g: g}
	c := &cobra.Command{
		Use:   "find --email E",
		Short: "Show the contact's open ticket inside the threading window, or nothing",
		Long: `Shows the ticket a new message from this contact would join: an open stage and activity inside
the threading window. Prints nothing (and {"ticket": null} in JSON) when there is none; exit 0 either way.`,
		Example: `  figsupport ticket find --email client@example.com
  figsupport ticket find --email client@example.com --at 2026-01-20T10:00:00Z -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTicketFind(cmd.Context(), o) },
	}
	c.Flags().StringVar(&o.email, "email", "", "contact's e-mail address (required)")
	c.Flags().StringVar(&o.at, "at", "", "measure the window at this RFC 3339 time instead of now")
	_ = c.MarkFlagRequired("email")
	return c
}

func runTicketFind(ctx context.Context, o *ticketFindOptions) error {
	g := o.g
	email, err := payload.NormalizeEmail(o.email)
	if err != nil {
		return usagef("--email: %v", strings.TrimPrefix(err.Error(), "user_email: "))
	}
	at := g.Now()
	if o.at != "" {
		if at, err = parseTime(o.at); err != nil {
			return usagef("--at: want an RFC 3339 time like 2026-01-05T09:00:00Z, got %q", o.at)
		}
	}
	a, err := openApp(ctx, g, true)
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
	if g.JSON() {
		return writeJSON(g.Out, struct {
			Ticket *chain.Ticket `json:"ticket"`
		}{t})
	}
	switch {
	case contact == nil:
		g.status("no contact %s", email)
	case t == nil:
		g.status("no open ticket for %s active since %s (the threading window before %s; --at to measure at another time)",
			email, at.Add(-a.s.chain.Window).Format(time.RFC3339), at.Format(time.RFC3339))
	default:
		printTicket(g, t)
	}
	return nil
}

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
	g                                   *Globals
	email, name, subject, body, classif string
}

func newTicketCreateCmd(g *Globals) *cobra.Command {
	o := &ticketCreateOptions{g: g}
	c := &cobra.Command{
		Use:     "create --email E --subject S [--body B] [--classification C]",
		Short:   "Create the contact (if needed) and a ticket",
		Example: `  figsupport ticket create --email client@example.com --subject "Rappel téléphonique" --body "Client rappelé le 5/01"`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runTicketCreate(cmd.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.email, "email", "", "contact's e-mail address (required)")
	f.StringVar(&o.name, "name", "", "contact's name, used when the contact is created")
	f.StringVar(&o.subject, "subject", "", "ticket subject (required)")
	f.StringVar(&o.body, "body", "", "ticket description")
	f.StringVar(&o.classif, "classification", payload.Support, "SUPPORT or MODELISATION")
	_ = c.MarkFlagRequired("email")
	_ = c.MarkFlagRequired("subject")
	_ = c.RegisterFlagCompletionFunc("classification", cobra.FixedCompletions([]string{payload.Support, payload.Modelisation}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func runTicketCreate(ctx context.Context, o *ticketCreateOptions) error {
	g := o.g
	email, err := payload.NormalizeEmail(o.email)
	if err != nil {
		return usagef("--email: %v", strings.TrimPrefix(err.Error(), "user_email: "))
	}
	if strings.TrimSpace(o.subject) == "" {
		return usagef("--subject must not be empty")
	}
	classif := strings.ToUpper(strings.TrimSpace(o.classif))
	if classif != payload.Support && classif != payload.Modelisation {
		return usagef("--classification must be SUPPORT or MODELISATION, not %q", o.classif)
	}
	if g.DryRun {
		return dryRun(g, fmt.Sprintf("find or create contact %s, then create ticket %q (%s)", email, o.subject, classif))
	}
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	contact, err := a.crm.FindOrCreateContact(ctx, email, o.name)
	if err != nil {
		return err
	}
	t, err := a.crm.CreateTicket(ctx, chain.TicketInput{ContactID: contact.ID, Subject: strings.TrimSpace(o.subject),
		Content: o.body, Classification: classif, At: g.Now()})
	if err != nil {
		return err
	}
	if err := a.chain().RememberTicket(ctx, contact.ID, t.ID); err != nil {
		g.Log.Warn("remember ticket", "err", err)
	}
	if t.URL == "" {
		t.URL = a.crm.TicketURL(t.ID)
	}
	if g.JSON() {
		return writeJSON(g.Out, struct {
			Ticket  chain.Ticket  `json:"ticket"`
			Contact chain.Contact `json:"contact"`
		}{t, contact})
	}
	printTicket(g, &t)
	return nil
}

type ticketCloseOptions struct{ g *Globals }

func newTicketCloseCmd(g *Globals) *cobra.Command {
	o := &ticketCloseOptions{g: g}
	return &cobra.Command{
		Use:     "close ID",
		Short:   "Move a ticket to the closed stage (HUBSPOT_STAGE_CLOSED)",
		Example: `  figsupport ticket close 12345`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runTicketClose(cmd.Context(), o, args[0]) },
	}
}

func runTicketClose(ctx context.Context, o *ticketCloseOptions, id string) error {
	g := o.g
	if g.DryRun {
		return dryRun(g, "move ticket "+id+" to stage "+g.Values.String("HUBSPOT_STAGE_CLOSED"))
	}
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.crm.CloseTicket(ctx, id); err != nil {
		if errors.Is(err, chain.ErrNotFound) {
			return usagef("ticket %s: %v", id, chain.ErrNotFound)
		}
		return err
	}
	t, err := a.crm.GetTicket(ctx, id)
	if err != nil {
		return err
	}
	if g.JSON() {
		return writeJSON(g.Out, struct {
			Ticket chain.Ticket `json:"ticket"`
		}{t})
	}
	fmt.Fprintf(g.Out, "ticket #%s closed (stage %s)\n", t.ID, t.Stage)
	return nil
}

// dryRun prints the plan of a one-step command.
func dryRun(g *Globals, action string) error {
	if g.JSON() {
		return writeJSON(g.Out, struct {
			DryRun bool     `json:"dry_run"`
			Steps  []string `json:"steps"`
		}{true, []string{action}})
	}
	fmt.Fprintf(g.Out, "dry run: nothing written\n  would %s\n", action)
	return nil
}

package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
)

type noteOptions struct {
	*Globals
	Ticket, Contact, Body, Title string
}

func newNoteCmd(g *Globals, runF func(context.Context, *noteOptions) error) *cobra.Command {
	o := &noteOptions{Globals: g}
	c := &cobra.Command{
		Use:   "note --ticket ID|--contact ID --body B",
		Short: "Add a note to a ticket or a contact",
		Example: `  figsupport note --ticket 1 --body "Rappelé le client, il renvoie les photos"
  figsupport note --contact 1 --title "Appel" --body "Préfère être contacté le matin"`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runNote(cmd.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Ticket, "ticket", "", "ticket id")
	f.StringVar(&o.Contact, "contact", "", "contact id")
	f.StringVar(&o.Body, "body", "", "note text (required; HTML is escaped)")
	f.StringVar(&o.Title, "title", "Note", "note title")
	c.MarkFlagsOneRequired("ticket", "contact")
	c.MarkFlagsMutuallyExclusive("ticket", "contact")
	_ = c.MarkFlagRequired("body")
	return c
}

func runNote(ctx context.Context, o *noteOptions) error {
	if strings.TrimSpace(o.Body) == "" {
		return fieldErr("--body", "must not be empty")
	}
	what, id, field := "ticket", o.Ticket, "--ticket"
	if o.Ticket == "" {
		what, id, field = "contact", o.Contact, "--contact"
	}
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: o.DryRun})
	if err != nil {
		return err
	}
	defer a.Close()
	if o.DryRun {
		step := fmt.Sprintf("add a note %q to contact %s in %s (the contact is looked up when the note is added)", o.Title, id, a.target("crm"))
		if o.Ticket != "" {
			t, err := a.crm.GetTicket(ctx, o.Ticket)
			if errors.Is(err, chain.ErrNotFound) {
				return notFound(field, what, id)
			}
			if err != nil {
				return err
			}
			step = fmt.Sprintf("add a note %q to ticket %s %q in %s", o.Title, t.ID, t.Subject, a.target("crm"))
		}
		return printSteps(o.Globals, []string{step})
	}
	noteID, err := a.crm.AddNote(ctx, chain.Note{TicketID: o.Ticket, ContactID: o.Contact, Title: o.Title, Body: o.Body, At: o.Now()})
	if errors.Is(err, chain.ErrNotFound) {
		return notFound(field, what, id)
	}
	if err != nil {
		return err
	}
	if o.JSON() {
		return writeJSON(o.Out, struct {
			NoteID    string `json:"note_id"`
			TicketID  string `json:"ticket_id"`
			ContactID string `json:"contact_id"`
		}{noteID, o.Ticket, o.Contact})
	}
	fmt.Fprintf(o.Out, "note %s added to %s %s\n", noteID, what, id)
	return nil
}

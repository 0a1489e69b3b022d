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
	g                            *Globals
	ticket, contact, body, title string
}

func newNoteCmd(g *Globals) *cobra.Command {
	o := &noteOptions{g: g}
	c := &cobra.Command{
		Use:   "note --ticket ID|--contact ID --body B",
		Short: "Add a note to a ticket or a contact",
		Example: `  figsupport note --ticket 12345 --body "Rappelé le client, il renvoie les photos"
  figsupport note --contact 678 --title "Appel" --body "Préfère être contacté le matin"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNote(cmd.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.ticket, "ticket", "", "ticket id")
	f.StringVar(&o.contact, "contact", "", "contact id")
	f.StringVar(&o.body, "body", "", "note text (required; HTML is escaped)")
	f.StringVar(&o.title, "title", "Note", "note title")
	c.MarkFlagsOneRequired("ticket", "contact")
	c.MarkFlagsMutuallyExclusive("ticket", "contact")
	_ = c.MarkFlagRequired("body")
	return c
}

func runNote(ctx context.Context, o *noteOptions) error {
	g := o.g
	if strings.TrimSpace(o.body) == "" {
		return usagef("--body must not be empty")
	}
	target := "ticket " + o.ticket
	if o.ticket == "" {
		target = "contact " + o.contact
	}
	if g.DryRun {
		return dryRun(g, "add a note to "+target)
	}
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	id, err := a.crm.AddNote(ctx, chain.Note{TicketID: o.ticket, ContactID: o.contact, Title: o.title, Body: o.body, At: g.Now()})
	if errors.Is(err, chain.ErrNotFound) {
		return usagef("%s: %v", target, chain.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if g.JSON() {
		return writeJSON(g.Out, struct {
			NoteID    string `json:"note_id"`
			TicketID  string `json:"ticket_id,omitempty"`
			ContactID string `json:"contact_id,omitempty"`
		}{id, o.ticket, o.contact})
	}
	fmt.Fprintf(g.Out, "note %s added to %s\n", id, target)
	return nil
}

package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
)

func newSubtaskCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{Use: "subtask", Short: "Create or update a modelling subtask under the configured parent"}
	c.AddCommand(newSubtaskCreateCmd(g), newSubtaskUpdateCmd(g))
	return c
}

type subtaskOptions struct {
	g                 *Globals
	name, description string
	replace           bool
}

// descriptionReplacer replaces a subtask's description instead of appending to it.
type descriptionReplacer interface {
	UpdateDescription(ctx context.Context, id, markdown string) (chain.Subtask, error)
}

func newSubtaskCreateCmd(g *Globals) *cobra.Command {
	o := &subtaskOptions{g: g}
	c := &cobra.Command{
		Use:     "create --name N [--description D]",
		Short:   "Create a subtask (markdown description)",
		Example: `  figsupport subtask create --name "[MODELISATION] Jean Dupont — chaise" --description "Photos dans le ticket #12345"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSubtask(cmd.Context(), o, "")
		},
	}
	c.Flags().StringVar(&o.name, "name", "", "subtask name (required)")
	c.Flags().StringVar(&o.description, "description", "", "markdown description")
	_ = c.MarkFlagRequired("name")
	return c
}

func newSubtaskUpdateCmd(g *Globals) *cobra.Command {
	o := &subtaskOptions{g: g}
	c := &cobra.Command{
		Use:   "update ID --description D",
		Short: "Append to a subtask's description (earlier content is kept), or replace it",
		Example: `  figsupport subtask update 86c7r48hb --description "Le client a envoyé la vue de dos"
  figsupport subtask update 86c7r48hb --replace --description "Description refaite"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSubtask(cmd.Context(), o, args[0])
		},
	}
	c.Flags().StringVar(&o.description, "description", "", "markdown to append (required)")
	c.Flags().BoolVar(&o.replace, "replace", false, "replace the description instead of appending")
	_ = c.MarkFlagRequired("description")
	return c
}

// runSubtask creates a subtask, or appends to subtask id when id is set.
func runSubtask(ctx context.Context, o *subtaskOptions, id string) error {
	g := o.g
	if id == "" && strings.TrimSpace(o.name) == "" {
		return usagef("--name must not be empty")
	}
	if id != "" && strings.TrimSpace(o.description) == "" {
		return usagef("--description must not be empty")
	}
	if g.DryRun {
		if id == "" {
			return dryRun(g, fmt.Sprintf("create subtask %q", o.name))
		}
		if o.replace {
			return dryRun(g, "replace the description of subtask "+id)
		}
		return dryRun(g, "append to the description of subtask "+id)
	}
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	var st chain.Subtask
	if id == "" {
		st, err = a.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: strings.TrimSpace(o.name), Markdown: o.description})
	} else if o.replace {
		r, ok := a.tasks.(descriptionReplacer)
		if !ok {
			return errors.New("this task tracker cannot replace a description")
		}
		st, err = r.UpdateDescription(ctx, id, o.description)
	} else {
		st, err = a.tasks.AppendSubtask(ctx, id, o.description, "")
	}
	if errors.Is(err, chain.ErrNotFound) {
		return usagef("subtask %s: %v", id, err)
	}
	if err != nil {
		return err
	}
	if g.JSON() {
		return writeJSON(g.Out, st)
	}
	verb := "created"
	if id != "" {
		verb = "updated"
	}
	fmt.Fprintf(g.Out, "subtask %s %s %s\n", st.ID, verb, st.URL)
	return nil
}

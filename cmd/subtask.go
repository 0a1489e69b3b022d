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
	return newGroupCmd("subtask", "Create or update a modelling subtask under the configured parent",
		newSubtaskCreateCmd(g, nil), newSubtaskUpdateCmd(g, nil))
}

type subtaskOptions struct {
	*Globals
	ID                string // update: the subtask; empty for create
	Name, Description string
	Replace           bool
}

// descriptionReplacer replaces a subtask's description instead of appending to it.
type descriptionReplacer interface {
	UpdateDescription(ctx context.Context, id, markdown string) (chain.Subtask, error)
}

func newSubtaskCreateCmd(g *Globals, runF func(context.Context, *subtaskOptions) error) *cobra.Command {
	o := &subtaskOptions{Globals: g}
	c := &cobra.Command{
		Use:     "create --name N [--description D]",
		Short:   "Create a subtask (markdown description)",
		Example: `  figsupport subtask create --name "[MODELISATION] Jean Dupont — chaise" --description "Photos dans le ticket #1"`,
		Args:    argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSubtask(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Name, "name", "", "subtask name (required)")
	c.Flags().StringVar(&o.Description, "description", "", "markdown description")
	_ = c.MarkFlagRequired("name")
	return c
}

func newSubtaskUpdateCmd(g *Globals, runF func(context.Context, *subtaskOptions) error) *cobra.Command {
	o := &subtaskOptions{Globals: g}
	c := &cobra.Command{
		Use:   "update ID --description D",
		Short: "Append to a subtask's description (earlier content is kept), or replace it",
		Example: `  figsupport subtask update 1 --description "Le client a envoyé la vue de dos"
  figsupport subtask update 1 --replace --description "Description refaite"`,
		Args: argNames("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSubtask(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Description, "description", "", "markdown to append (required)")
	c.Flags().BoolVar(&o.Replace, "replace", false, "replace the description instead of appending")
	_ = c.MarkFlagRequired("description")
	return c
}

// runSubtask creates a subtask, or appends to (replaces) subtask o.ID when it is set.
func runSubtask(ctx context.Context, o *subtaskOptions) error {
	if o.ID == "" && strings.TrimSpace(o.Name) == "" {
		return fieldErr("--name", "must not be empty")
	}
	if o.ID != "" && strings.TrimSpace(o.Description) == "" {
		return fieldErr("--description", "must not be empty")
	}
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: o.DryRun})
	if err != nil {
		return err
	}
	defer a.Close()
	if o.DryRun {
		switch {
		case o.ID == "":
			return printSteps(o.Globals, []string{fmt.Sprintf("create subtask %q in %s", strings.TrimSpace(o.Name), a.target("tasks"))})
		case o.Replace:
			return printSteps(o.Globals, []string{fmt.Sprintf("replace the description of subtask %s in %s (the subtask is looked up when it is changed)", o.ID, a.target("tasks"))})
		}
		return printSteps(o.Globals, []string{fmt.Sprintf("append to the description of subtask %s in %s (the subtask is looked up when it is changed)", o.ID, a.target("tasks"))})
	}
	var st chain.Subtask
	switch {
	case o.ID == "":
		st, err = a.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: strings.TrimSpace(o.Name), Markdown: o.Description})
	case o.Replace:
		r, ok := a.tasks.(descriptionReplacer)
		if !ok {
			return errors.New("this task tracker cannot replace a description")
		}
		st, err = r.UpdateDescription(ctx, o.ID, o.Description)
	default:
		st, err = a.tasks.AppendSubtask(ctx, o.ID, o.Description, "")
	}
	if errors.Is(err, chain.ErrNotFound) {
		return notFound("ID", "subtask", o.ID)
	}
	if err != nil {
		return err
	}
	if o.JSON() {
		return writeJSON(o.Out, st)
	}
	verb := "created"
	if o.ID != "" {
		verb = "updated"
	}
	fmt.Fprintf(o.Out, "subtask %s %s %s\n", st.ID, verb, st.URL)
	return nil
}

package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/payload"
)

type classifyOptions struct {
	*Globals
	File  string // FILE, or "-"/"" for stdin
	NoLLM bool
}

func newClassifyCmd(g *Globals, runF func(context.Context, *classifyOptions) error) *cobra.Command {
	o := &classifyOptions{Globals: g}
	c := &cobra.Command{
		Use:   "classify [FILE|-]",
		Short: "Classify a payload as SUPPORT or MODELISATION",
		Example: `  figsupport classify testdata/payloads/modelisation.json
  echo '{"user_email":"a@b.fr","objet":"Paiement refusé"}' | figsupport classify - -o json`,
		Args: argNames("FILE?"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.File = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runClassify(cmd.Context(), o)
		},
	}
	c.Flags().BoolVar(&o.NoLLM, "no-llm", false, "rules only, even when an LLM is configured")
	return c
}

func runClassify(ctx context.Context, o *classifyOptions) error {
	s, err := o.settings()
	if err != nil {
		return err
	}
	req, _, err := readRequest(o.Globals, o.File, s)
	if err != nil {
		return err
	}
	res, err := classifyOnce(ctx, s, o.NoLLM, req)
	if err != nil {
		return err
	}
	if o.JSON() {
		return writeJSON(o.Out, res)
	}
	label := o.paint(o.Out, res.Classification, color.Bold)
	amb := ""
	if res.Ambiguous {
		amb = " (ambiguous)"
	}
	fmt.Fprintf(o.Out, "%s%s by %s\n", label, amb, res.Method)
	for _, r := range res.Reasons {
		fmt.Fprintf(o.Out, "  - %s\n", r)
	}
	return nil
}

// readRequest reads and validates the JSON payload FILE (or stdin) under the same limits as the
// daemon (FIGSUPPORT_MAX_BODY_BYTES…); base is the directory local paths are relative to.
func readRequest(g *Globals, file string, s settings) (*payload.Request, string, error) {
	in, base, err := openInput(g, file, "FILE", "payload")
	if err != nil {
		return nil, "", err
	}
	defer in.Close()
	req, err := payload.Parse(io.Reader(in), s.limits, g.Now())
	if err != nil {
		return nil, "", err
	}
	return req, base, nil
}

// classifyOnce classifies one request outside the chain (classify, process --dry-run).
func classifyOnce(ctx context.Context, s settings, noLLM bool, req *payload.Request) (classify.Result, error) {
	s.classify.DisableLLM = noLLM
	c, err := classify.New(s.classify)
	if err != nil {
		return classify.Result{}, err
	}
	return c.Classify(ctx, req), nil
}

// parseTime parses --at style values.
func parseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339, strings.TrimSpace(s))
}

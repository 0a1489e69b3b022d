package cmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/payload"
)

type classifyOptions struct {
	g     *Globals
	noLLM bool
}

func newClassifyCmd(g *Globals) *cobra.Command {
	o := &classifyOptions{g: g}
	c := &cobra.Command{
		Use:   "classify [FILE|-]",
		Short: "Classify a payload as SUPPORT or MODELISATION",
		Example: `  figsupport classify testdata/payloads/modelisation.json
  echo '{"user_email":"a@b.fr","objet":"Paiement refusé"}' | figsupport classify - -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _, err := readInput(g, args)
			if err != nil {
				return err
			}
			return runClassify(cmd, o, body)
		},
	}
	c.Flags().BoolVar(&o.noLLM, "no-llm", false, "rules only, even when an LLM is configured")
	return c
}

func runClassify(cmd *cobra.Command, o *classifyOptions, body []byte) error {
	g := o.g
	s, err := g.settings()
	if err != nil {
		return err
	}
	req, err := payload.ParseBytes(body, s.limits, g.Now())
	if err != nil {
		return err
	}
	res, err := classifyOnce(cmd.Context(), s, o.noLLM, req)
	if err != nil {
		return err
	}
	if g.JSON() {
		return writeJSON(g.Out, res)
	}
	label := paint(g.Out, res.Classification, color.Bold)
	amb := ""
	if res.Ambiguous {
		amb = " (ambiguous)"
	}
	fmt.Fprintf(g.Out, "%s%s by %s\n", label, amb, res.Method)
	for _, r := range res.Reasons {
		fmt.Fprintf(g.Out, "  - %s\n", r)
	}
	return nil
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

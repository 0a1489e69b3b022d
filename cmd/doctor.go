package cmd

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/health"
)

type doctorOptions struct{ g *Globals }

func newDoctorCmd(g *Globals) *cobra.Command {
	o := &doctorOptions{g: g}
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the configuration and every configured service",
		Long: `Checks the configuration, the data dir and each backend in use (HubSpot token, scopes, custom
properties and pipeline stages; R2 bucket; ClickUp parent task; SMTP or Graph; the LLM; the support
mailbox: login, folder, move targets — opened read-only, nothing marked). Missing
HubSpot custom properties are created and the bucket gets a probe object (written, then deleted);
with --dry-run nothing is created at any service: missing properties are reported, the write is not
probed. Exit 4 when a check fails.`,
		Example: `  figsupport doctor
  figsupport doctor -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDoctor(cmd.Context(), o) },
	}
}

func runDoctor(ctx context.Context, o *doctorOptions) error {
	g := o.g
	a, err := openApp(ctx, g, false)
	if err != nil {
		return err
	}
	defer a.Close()
	checks := []health.Check{{Service: "config", Name: "backends", Status: health.OK, Detail: a.backends()}}
	for _, c := range a.checks {
		checks = append(checks, c(ctx)...)
	}
	checks = append(checks, mailChecks(ctx, g, a.dir)...)
	failed := 0
	for i := range checks {
		checks[i].Detail = g.Values.Redact(checks[i].Detail)
		if checks[i].Status == health.Fail {
			failed++
		}
	}
	if g.JSON() {
		if err := writeJSON(g.Out, struct {
			OK     bool           `json:"ok"`
			Checks []health.Check `json:"checks"`
		}{failed == 0, checks}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
		for _, c := range checks {
			st := c.Status
			switch st {
			case health.OK:
				st = paint(g.Out, st, color.FgGreen)
			case health.Warn:
				st = paint(g.Out, st, color.FgYellow)
			default:
				st = paint(g.Out, st, color.FgRed, color.Bold)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st, c.Service, c.Name, c.Detail)
		}
		tw.Flush()
	}
	if failed > 0 {
		g.status("%d check(s) failed", failed)
		return silentError{ExitConfig}
	}
	return nil
}

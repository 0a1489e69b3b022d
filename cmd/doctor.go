package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/health"
)

type doctorOptions struct{ *Globals }

func newDoctorCmd(g *Globals, runF func(context.Context, *doctorOptions) error) *cobra.Command {
	o := &doctorOptions{Globals: g}
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the configuration and every configured service",
		Long: `Checks the configuration, the data dir and each backend in use (HubSpot token, scopes, custom
properties and pipeline stages; R2 bucket; ClickUp parent task; SMTP or Graph; the LLM; the support
mailbox: login, folder, move targets, opened read-only, nothing marked). Every check
runs, and each problem is reported once: every bad configuration key, and one failure for a host
that does not answer (its service's other checks are skipped). Missing HubSpot custom properties are
created and the bucket gets a probe object (written, then deleted); with --dry-run nothing is written
anywhere, not even the data dir: missing properties are reported, writes are not probed.
Exit 4 when a check fails (warnings exit 0).`,
		Example: `  figsupport doctor
  figsupport doctor --dry-run -o json`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDoctor(cmd.Context(), o)
		},
	}
}

func runDoctor(ctx context.Context, o *doctorOptions) error {
	checks := doctorChecks(ctx, o)
	for i := range checks {
		checks[i].Detail = o.Values.Redact(checks[i].Detail)
	}
	worst := health.Worst(checks)
	if o.JSON() {
		if err := writeJSON(o.Out, struct {
			OK     bool           `json:"ok"`
			Checks []health.Check `json:"checks"`
		}{worst != health.Fail, checks}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
		for _, c := range checks {
			st := c.Status
			switch st {
			case health.OK:
				st = o.paint(o.Out, st, color.FgGreen)
			case health.Warn:
				st = o.paint(o.Out, st, color.FgYellow)
			case health.Fail:
				st = o.paint(o.Out, st, color.FgRed, color.Bold)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", st, c.Service, c.Name, c.Detail)
		}
		tw.Flush()
	}
	if worst == health.Fail {
		failed := 0
		for _, c := range checks {
			if c.Status == health.Fail {
				failed++
			}
		}
		o.status("%d check(s) failed", failed)
		return silentError{ExitConfig}
	}
	return nil
}

// doctorChecks runs every check once: the configuration's problems first (all of them), then each
// part's checks, asking each host once whether it answers at all.
func doctorChecks(ctx context.Context, o *doctorOptions) []health.Check {
	a, err := o.OpenApp(ctx, o.Globals, appOptions{readOnly: o.DryRun, collect: true})
	if err != nil {
		// No data dir or no database: nothing else can be checked.
		service, name := "journal", "database"
		if errors.Is(err, config.ErrConfig) {
			service, name = "config", fieldOf(err)
		}
		return []health.Check{{Service: service, Name: name, Status: health.Fail, Detail: err.Error()}}
	}
	defer a.Close()

	checks := []health.Check{{Service: "config", Name: "backends", Status: health.OK, Detail: a.backends()}}
	var partChecks []health.Check
	reported := map[*config.Error]bool{}
	reached := map[string]error{} // host → whether it answered
	for _, p := range a.parts {
		service := p.backend
		if p.role == "llm" || p.role == "journal" {
			service = p.role
		}
		if p.err != nil {
			for _, e := range flatten(p.err) {
				var ce *config.Error
				if errors.As(e, &ce) {
					reported[ce] = true
					partChecks = append(partChecks, health.Check{Service: p.role, Name: ce.Key, Status: health.Fail, Detail: ce.Msg})
					continue
				}
				partChecks = append(partChecks, health.Check{Service: p.role, Name: "configuration", Status: health.Fail, Detail: e.Error()})
			}
			continue
		}
		if p.reach != "" {
			host := p.reach
			if u, err := url.Parse(p.reach); err == nil {
				host = u.Host
			}
			err, asked := reached[host]
			if !asked {
				err = health.Reach(ctx, nil, p.reach)
				reached[host] = err
				if err != nil {
					partChecks = append(partChecks, health.Check{Service: service, Name: "reachable", Status: health.Fail, Detail: err.Error()})
					continue
				}
			}
			if err != nil {
				partChecks = append(partChecks, health.Check{Service: service, Name: "reachable", Status: health.Skip, Detail: "not checked: " + host + " does not answer (above)"})
				continue
			}
		}
		check := p.check
		if o.DryRun && p.checkReadOnly != nil {
			check = p.checkReadOnly
		}
		if check != nil {
			partChecks = append(partChecks, check(ctx)...)
		}
	}
	// Keys no part claimed: the general settings (thread window, limits…).
	for _, ce := range o.Values.Errors() {
		if !reported[ce] {
			checks = append(checks, health.Check{Service: "config", Name: ce.Key, Status: health.Fail, Detail: ce.Msg})
		}
	}
	checks = append(checks, partChecks...)
	return append(checks, mailChecks(ctx, o.Globals, a.dir)...)
}

// flatten lists the errors errors.Join put together, each on its own.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

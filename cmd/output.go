package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fatih/color"
)

// writeJSON writes v as one indented JSON object: the stable --output json contract. Every
// documented key is always there: "" for text or an id that does not apply, [] for an empty list,
// null for an object that does not exist (no ticket found).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// noColor is NO_COLOR set (to anything), https://no-color.org.
func noColor(g *Globals) bool {
	_, set := g.Env("NO_COLOR")
	return set
}

// paint colours s for a terminal; plain text when w is not one or NO_COLOR is set.
func (g *Globals) paint(w io.Writer, s string, attrs ...color.Attribute) string {
	if noColor(g) || !g.Terminal(w) {
		return s
	}
	c := color.New(attrs...)
	c.EnableColor()
	return c.Sprint(s)
}

// status prints a status line on stderr for people; never with --output json, whose stdout holds
// the one answer and whose stderr only logs.
func (g *Globals) status(format string, a ...any) {
	if g.JSON() {
		return
	}
	fmt.Fprintf(g.ErrOut, format+"\n", a...)
}

// newLogger logs on w: warnings and errors, and with -v every step and its duration. No time
// stamp (a person watches, or journald adds its own) and durations rounded to what a person reads.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: readableAttr}))
}

func readableAttr(groups []string, a slog.Attr) slog.Attr {
	switch {
	case len(groups) == 0 && a.Key == slog.TimeKey:
		return slog.Attr{}
	case a.Value.Kind() == slog.KindDuration:
		d := a.Value.Duration()
		switch {
		case d >= time.Second:
			d = d.Round(10 * time.Millisecond)
		case d >= time.Millisecond:
			d = d.Round(100 * time.Microsecond)
		default:
			d = d.Round(time.Microsecond)
		}
		a.Value = slog.StringValue(d.String())
	}
	return a
}

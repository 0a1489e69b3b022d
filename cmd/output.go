package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fatih/color"
)

// writeJSON writes v as one indented JSON object: the stable --output json contract.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// paint colours s for a terminal; plain text when w is not a terminal or NO_COLOR is set.
func paint(w io.Writer, s string, attrs ...color.Attribute) string {
	if _, no := os.LookupEnv("NO_COLOR"); no || !isTTY(w) {
		return s
	}
	c := color.New(attrs...)
	c.EnableColor()
	return c.Sprint(s)
}

// status prints a status line on stderr (never with --output json, whose stderr is for errors).
func (g *Globals) status(format string, a ...any) {
	if g.JSON() {
		return
	}
	fmt.Fprintf(g.ErrOut, format+"\n", a...)
}

// Package text holds the small text shaping every message needs: one-line fields, bounded
// lengths, sizes.
//
// Sizes follow the project's one-voice rule: what the support team reads about customers (notes,
// e-mails, subtasks, result lines) is French and says HumanSize ("1.5 Mo"); the tool's own
// mechanics (errors, plans, doctor, logs) are English and say Bytes ("1.5 MiB"); JSON carries
// plain byte counts.
package text

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OneLine folds whitespace (newlines included) and drops control characters: what goes in a
// header, a name or a one-line field cannot start a new one.
func OneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// Truncate keeps at most n characters (runes), ending a cut string with "…".
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// HumanSize is a byte count in French units (o, Ko, Mo…), for what the support team reads about
// customers.
func HumanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d o", n)
	}
	v, u := scale(n)
	return fmt.Sprintf("%.1f %co", v, u)
}

// Bytes is a byte count in English binary units ("49 bytes", "1.5 MiB"), for the tool's own
// mechanics: errors, plans, doctor, logs. A whole number of units has no decimals ("200 MiB").
func Bytes(n int64) string {
	switch {
	case n == 1:
		return "1 byte"
	case n < 1024:
		return fmt.Sprintf("%d bytes", n)
	}
	v, u := scale(n)
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " " + string(u) + "iB"
}

// scale is n in the largest binary unit it reaches (K, M, G…), n >= 1024.
func scale(n int64) (float64, byte) {
	div, exp := int64(1024), 0
	for m := n / 1024; m >= 1024; m /= 1024 {
		div *= 1024
		exp++
	}
	return float64(n) / float64(div), "KMGTPE"[exp]
}

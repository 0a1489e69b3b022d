package classify

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// token is one word of the customer's text: norm is what rules compare (lower-case, no accents),
// surface is what the customer wrote (for reasons), sep is the text between the previous word and
// this one (a rule like "3-D" needs to know it was a hyphen, not a space).
type token struct {
	norm    string
	surface string
	sep     string
	start   int // byte offset of surface in the tokenised text
}

// ligatures that NFD leaves whole but a French writer uses interchangeably with their spelling.
var ligatures = strings.NewReplacer("œ", "oe", "æ", "ae", "ß", "ss")

// normalize lower-cases s, decomposes it (NFD) and drops the combining marks, so that "Modélisation",
// "MODELISATION" and a decomposed "modélisation" compare equal.
func normalize(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii { // most words: nothing to decompose
		return strings.ToLower(s)
	}
	s = strings.ToLower(s)
	s = norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(r)
	}
	return ligatures.Replace(b.String())
}

// wordRune says whether r belongs to a word. Combining marks do, so that text already in NFD is not
// cut in the middle of "modélisation".
func wordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// tokenize splits s into words on every rune that is not a letter, a digit or a combining mark.
// Invalid UTF-8 counts as a separator. Words that normalise to nothing (a lone mark) are dropped.
func tokenize(s string) []token {
	var toks []token
	sepStart, wordStart := 0, -1
	flush := func(end int) {
		w := s[wordStart:end]
		if n := normalize(w); n != "" {
			toks = append(toks, token{norm: n, surface: w, sep: s[sepStart:wordStart], start: wordStart})
			sepStart = end
		}
		wordStart = -1
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		isWord := wordRune(r) && !(r == utf8.RuneError && size == 1)
		switch {
		case isWord && wordStart < 0:
			wordStart = i
		case !isWord && wordStart >= 0:
			flush(i)
		}
		i += size
	}
	if wordStart >= 0 {
		flush(len(s))
	}
	return toks
}

// truncateRunes shortens s to at most n runes, marking the cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// fileNameAt returns the file name (or URL) that ends at end in text and whose extension starts at
// dot: everything back to the previous space, quote or bracket, at most maxNameBytes back (without
// the bound, "a.glb.glb.glb…" with no space would make the rules quadratic).
func fileNameAt(text string, dot, end int) string {
	const maxNameBytes = 256
	from := max(0, dot-maxNameBytes)
	for from > 0 && !utf8.RuneStart(text[from]) {
		from++
	}
	b := strings.LastIndexFunc(text[from:dot], func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("\"'()<>[]{},;«»“”‘’", r)
	})
	if b < 0 {
		return text[from:end]
	}
	b += from
	_, size := utf8.DecodeRuneInString(text[b:])
	return text[b+size : end]
}

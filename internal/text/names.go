package text

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FileName turns a customer-supplied file name into one safe as the last segment of an object
// key and of a local path: only the last path segment ("../../etc/passwd" is "passwd",
// `C:\x\y.jpg` is "y.jpg"), NFC, no control or format characters (U+202E, the right-to-left
// override that disguises "gpj.exe" as "exe.jpg"), letters, digits, marks and "._-+()" kept and
// anything else (spaces, ":*?<>|#%&…") as '_', runs of '_' collapsed, no leading or trailing
// '.', '_', '-', at most maxBytes bytes with the extension kept (see TruncateFileName). An empty
// result is "file". maxBytes should be at least len("file").
func FileName(name string, maxBytes int) string {
	name = strings.ToValidUTF8(name, "_")
	name = norm.NFC.String(name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			// dropped
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || strings.ContainsRune("._-+()", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name = collapse(b.String(), '_')
	name = strings.Trim(name, "._- ")
	if name == "" {
		return "file"
	}
	return TruncateFileName(name, maxBytes)
}

func collapse(s string, c byte) string {
	double := string([]byte{c, c})
	for strings.Contains(s, double) {
		s = strings.ReplaceAll(s, double, string(c))
	}
	return s
}

// SplitExt splits off an extension that looks like one (short, ASCII alphanumeric), so
// "a.tar.gz" is ("a.tar", ".gz") and "v1.2 final" has none.
func SplitExt(name string) (stem, ext string) {
	ext = path.Ext(name)
	if ext == name || len(ext) < 2 || len(ext) > 16 {
		return name, ""
	}
	for _, r := range ext[1:] {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return name, ""
		}
	}
	return strings.TrimSuffix(name, ext), ext
}

// TruncateFileName cuts the stem of name (see SplitExt) at a rune boundary so that stem+ext fits
// in maxBytes bytes; a cut loses its trailing '.', '_', '-'. When the stem cannot keep anything
// (the extension alone is too long), the whole name is cut instead; when that leaves nothing
// either, the name is "file". A name that fits is returned as it is.
func TruncateFileName(name string, maxBytes int) string {
	if len(name) <= maxBytes {
		return name
	}
	stem, ext := SplitExt(name)
	if s := cutName(stem, maxBytes-len(ext)); s != "" {
		return s + ext
	}
	if s := cutName(name, maxBytes); s != "" {
		return s
	}
	return "file"
}

// cutName keeps the head of s that fits in room bytes, on a rune boundary, without trailing
// '.', '_', '-'.
func cutName(s string, room int) string {
	if room < 1 {
		return ""
	}
	for len(s) > room {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.TrimRight(s, "._- ")
}

// KeySegment makes a request key one directory name: ASCII letters, digits, '.', '-' and '_'
// kept, any other character (or invalid byte) as '_', at most maxBytes bytes (the head), no
// leading dot. An empty result is "h" (a request without a key is known by its hash).
func KeySegment(s string, maxBytes int) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > maxBytes {
		out = out[:max(maxBytes, 0)]
	}
	out = strings.TrimLeft(out, ".")
	if out == "" {
		return "h"
	}
	return out
}

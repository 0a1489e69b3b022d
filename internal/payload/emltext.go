package payload

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"

	// go-message's charset table knows the IANA and WHATWG names of the charsets mail uses.
	"github.com/emersion/go-message/charset"
)

// fitDescription trims the text to the description's limit, saying so when anything was cut.
func fitDescription(s string, truncated bool, maxChars int) string {
	s = strings.TrimSpace(s)
	if maxChars <= 0 {
		maxChars = DefaultLimits.MaxDescriptionChar
	}
	mark := utf8.RuneCountInString(truncatedMark)
	if utf8.RuneCountInString(s) > maxChars {
		truncated = true
		keep := maxChars
		if maxChars > 2*mark {
			keep -= mark
		}
		s = strings.TrimSpace(string([]rune(s)[:keep]))
	}
	if truncated && s != "" && utf8.RuneCountInString(s)+mark <= maxChars {
		s += truncatedMark
	}
	return s
}

// capName cuts a name to maxBytes on a rune boundary, keeping a short extension.
func capName(s string, maxBytes int) string {
	if len(s) <= maxBytes {
		return s
	}
	ext := filepath.Ext(s)
	if len(ext) > 16 || len(ext) >= maxBytes/2 {
		ext = ""
	}
	stem := s[:len(s)-len(ext)]
	keep := maxBytes - len(ext)
	for keep > 0 && !utf8.RuneStart(stem[keep]) {
		keep--
	}
	return stem[:keep] + ext
}

// extensionFor is the usual extension of a media type, for an attachment sent without a name.
func extensionFor(mt string) string {
	known := map[string]string{
		"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
		"image/heic": ".heic", "image/tiff": ".tif", "image/bmp": ".bmp", "image/svg+xml": ".svg",
		"application/pdf": ".pdf", "application/zip": ".zip", "model/gltf-binary": ".glb",
		"model/gltf+json": ".gltf", "model/obj": ".obj", "model/stl": ".stl", "model/vnd.usdz+zip": ".usdz",
		"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html", "text/csv": ".csv",
		"text/calendar": ".ics", "video/mp4": ".mp4", "video/quicktime": ".mov",
	}
	if e, ok := known[mt]; ok {
		return e
	}
	if exts, err := mime.ExtensionsByType(mt); err == nil && len(exts) > 0 {
		return exts[0]
	}
	return ""
}

// mediaType parses a Content-Type or Content-Disposition value, lower-cased; a value that does
// not parse is the default, and a parameter that does not parse is dropped.
func mediaType(v, def string) (string, map[string]string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def, map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && mt == "" {
		// Some mailers forget the quotes around a name with spaces: read it by hand.
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
		params = looseParams(v)
		if mt == "" || strings.ContainsAny(mt, " \t") {
			mt = def
		}
	}
	if params == nil {
		params = looseParams(v)
	}
	return mt, params
}

// looseParams reads key=value parameters without the grammar's strictness.
func looseParams(v string) map[string]string {
	params := map[string]string{}
	fields := strings.Split(v, ";")
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if k != "" && !strings.HasSuffix(k, "*") {
			if _, dup := params[k]; !dup {
				params[k] = val
			}
		}
	}
	return params
}

// decodeTransfer undoes a Content-Transfer-Encoding; 7bit, 8bit, binary and unknown ones are
// read as they are.
func decodeTransfer(r io.Reader, cte string) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &base64Filter{r: r})
	}
	return r
}

// base64Filter drops what is not base64 (line ends, spaces, stray characters) before decoding.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(b []byte) (int, error) {
	for {
		n, err := f.r.Read(b)
		j := 0
		for _, c := range b[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				b[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// charsetReader gives mime.WordDecoder (RFC 2047 encoded words) the charsets it does not know
// itself, with decodeCharset's rules.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(input, 64<<10))
	if err != nil {
		return nil, err
	}
	return strings.NewReader(decodeCharset(b, label)), nil
}

// decodeCharset converts text in the named charset to UTF-8. UTF-8 and unknown charsets keep
// valid UTF-8 and replace invalid bytes with U+FFFD; no charset (or US-ASCII) with bytes that are
// not UTF-8 is read as Windows-1252, as is ISO-8859-1 (its printable superset: what such mailers
// mean, and what browsers do); other names are go-message's charset table's.
func decodeCharset(b []byte, label string) string {
	cs := strings.ToLower(strings.Trim(strings.TrimSpace(label), `"'`))
	var enc encoding.Encoding
	switch cs {
	case "utf-8", "utf8":
		return strings.ToValidUTF8(string(b), "\uFFFD")
	case "", "us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968":
		if utf8.Valid(b) {
			return string(b)
		}
		enc = charmap.Windows1252
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "windows-1252", "cp1252", "x-cp1252":
		enc = charmap.Windows1252
	default:
		r, err := charset.Reader(cs, bytes.NewReader(b))
		if err != nil {
			return strings.ToValidUTF8(string(b), "\uFFFD")
		}
		out, err := io.ReadAll(r)
		if err != nil {
			return strings.ToValidUTF8(string(b), "\uFFFD")
		}
		return strings.ToValidUTF8(string(out), "\uFFFD")
	}
	out, _, err := transform.Bytes(enc.NewDecoder(), b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

// cleanText makes line ends \n, drops control characters (tabs and newlines kept) and a byte
// order mark, trims the ends of lines, and leaves at most one blank line in a row.
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || r == '\uFEFF' {
			return -1
		}
		return r
	}, s)
	lines := strings.Split(s, "\n")
	out := lines[:0]
	blank := 0
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// unflow joins the soft line breaks of format=flowed text (RFC 3676): a line ending in a space
// continues on the next one of the same quote depth.
func unflow(s string, delsp bool) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")
	var b strings.Builder
	prevSoft, prevDepth := false, -1
	for _, l := range lines {
		depth := 0
		for depth < len(l) && l[depth] == '>' {
			depth++
		}
		body := l[depth:]
		body = strings.TrimPrefix(body, " ") // space-stuffing
		soft := strings.HasSuffix(body, " ") && body != "-- "
		if soft && delsp {
			body = body[:len(body)-1]
		}
		if prevSoft && depth == prevDepth {
			b.WriteString(body)
		} else {
			if prevDepth >= 0 {
				b.WriteByte('\n')
			}
			b.WriteString(strings.Repeat(">", depth))
			if depth > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(body)
		}
		prevSoft, prevDepth = soft, depth
	}
	return b.String()
}

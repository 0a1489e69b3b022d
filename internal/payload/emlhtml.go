package payload

import (
	"strconv"
	"strings"
	"unicode"

	// The HTML of e-mails is hostile and often malformed: the HTML5 tokenizer reads it as a
	// browser would (raw text elements, entities, unclosed tags and comments), so that what is
	// left here is only the choice of what to keep.
	"golang.org/x/net/html"

	"github.com/figurative/figsupport/internal/text"
)

// htmlSkipRaw are the raw text elements whose content is not text to read (the tokenizer reads
// their content up to their own end tag, whatever it holds).
var htmlSkipRaw = map[string]bool{
	"script": true, "style": true, "title": true, "noscript": true, "iframe": true, "noembed": true, "noframes": true,
}

// htmlSkip are the other elements whose content is not shown.
var htmlSkip = map[string]bool{"template": true, "xml": true}

// htmlInHead are the elements a document's head holds; any other start tag ends the head, as it
// does in a browser.
var htmlInHead = map[string]bool{
	"meta": true, "link": true, "base": true, "title": true, "style": true, "script": true, "noscript": true,
	"template": true, "xml": true, "head": true, "html": true,
}

// htmlParagraph elements stand apart (a blank line around them), htmlLine ones on lines of their own.
var (
	htmlParagraph = map[string]bool{
		"p": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "blockquote": true,
		"table": true, "ul": true, "ol": true, "dl": true, "hr": true, "pre": true, "xmp": true, "textarea": true,
	}
	htmlLine = map[string]bool{
		"div": true, "tr": true, "dt": true, "dd": true, "section": true, "article": true, "header": true,
		"footer": true, "address": true, "center": true, "form": true, "fieldset": true, "nav": true, "aside": true,
		"figure": true, "figcaption": true, "main": true, "caption": true, "body": true,
	}
)

// htmlToText turns an HTML body into readable text: the head and the content of script, style,
// title and template dropped, paragraphs and headings apart, line breaks kept, list items as "- "
// (numbered in an ordered list, indented when nested), table cells side by side, a link followed
// by its http(s) address in angle brackets (RFC 3986's way of setting an address apart in text)
// unless its text already shows it, white space folded as a browser does (kept in pre).
func htmlToText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	t := &textOut{}
	var (
		skipRaw   string // the raw text element being skipped
		skip      int    // depth inside htmlSkip elements
		inHead    bool
		pre       int
		lists     []int // one per open list: 0 for ul, else the next number of the ol
		linkStart = -1
		linkHref  string
	)
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			// io.EOF, or a token over the tokenizer's buffer: the text so far is what there is.
			return t.b.String()
		case html.TextToken:
			if skipRaw != "" || skip > 0 {
				continue
			}
			txt := string(z.Text())
			if inHead {
				if strings.TrimFunc(txt, unicode.IsSpace) == "" {
					continue
				}
				inHead = false // text ends the head, as in a browser
			}
			t.text(txt, pre > 0)
			continue
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
		default:
			continue // comments, doctypes
		}
		nameB, hasAttr := z.TagName()
		name := string(nameB)
		closing := tt == html.EndTagToken
		if skipRaw != "" {
			if closing && name == skipRaw {
				skipRaw = ""
			}
			continue
		}
		if htmlSkipRaw[name] {
			if !closing {
				skipRaw = name // <script/> too: the tokenizer reads raw text up to </script>
			}
			continue
		}
		if htmlSkip[name] {
			switch {
			case tt == html.StartTagToken:
				skip++
			case closing && skip > 0:
				skip--
			}
			continue
		}
		if skip > 0 {
			continue
		}
		if name == "head" {
			inHead = tt == html.StartTagToken
			continue
		}
		if inHead && !closing && !htmlInHead[name] {
			inHead = false
		}
		if inHead {
			continue
		}
		switch {
		case name == "br":
			t.newline(1)
		case name == "li":
			t.newline(1)
			if !closing {
				marker := "- "
				if n := len(lists); n > 0 && lists[n-1] > 0 {
					marker = strconv.Itoa(lists[n-1]) + ". "
					lists[n-1]++
				}
				t.raw(strings.Repeat("  ", max(len(lists)-1, 0)) + marker)
			}
		case name == "ul" || name == "ol":
			// A nested list starts on its own line; only the outermost one stands apart.
			if len(lists) == 0 || closing && len(lists) == 1 {
				t.newline(2)
			} else {
				t.newline(1)
			}
			switch {
			case closing && len(lists) > 0:
				lists = lists[:len(lists)-1]
			case !closing && tt == html.StartTagToken && name == "ol":
				lists = append(lists, 1)
			case !closing && tt == html.StartTagToken:
				lists = append(lists, 0)
			}
		case htmlParagraph[name]:
			t.newline(2)
			if name == "pre" || name == "xmp" || name == "textarea" {
				switch {
				case closing:
					pre = max(pre-1, 0)
				case tt == html.StartTagToken:
					pre++
				}
			}
		case htmlLine[name]:
			t.newline(1)
		case name == "td" || name == "th":
			if !closing {
				t.space()
			}
		case name == "a" && !closing:
			linkStart, linkHref = t.b.Len(), ""
			for more := hasAttr; more; {
				var k, v []byte
				k, v, more = z.TagAttr()
				if string(k) == "href" {
					linkHref = strings.TrimSpace(string(v))
				}
			}
		case name == "a" && linkStart >= 0:
			label := strings.TrimSpace(t.b.String()[linkStart:])
			lh := strings.ToLower(linkHref)
			if (strings.HasPrefix(lh, "http://") || strings.HasPrefix(lh, "https://")) && label != "" && !strings.Contains(label, linkHref) {
				t.raw(" <" + text.OneLine(linkHref) + ">")
			}
			linkStart, linkHref = -1, ""
		}
	}
}

// textOut accumulates converted HTML, folding white space.
type textOut struct {
	b        strings.Builder
	newlines int  // trailing newlines written
	spaced   bool // the last byte written is a space (or nothing on the line yet)
}

func (t *textOut) text(s string, pre bool) {
	s = strings.ReplaceAll(s, "\u00a0", " ")
	if pre {
		t.raw(s)
		return
	}
	for _, r := range s {
		if unicode.IsSpace(r) {
			t.space()
			continue
		}
		t.b.WriteRune(r)
		t.spaced, t.newlines = false, 0
	}
}

func (t *textOut) raw(s string) {
	if s == "" {
		return
	}
	t.b.WriteString(s)
	t.newlines = len(s) - len(strings.TrimRight(s, "\n"))
	t.spaced = strings.HasSuffix(s, " ") || t.newlines > 0
}

func (t *textOut) space() {
	if !t.spaced && t.b.Len() > 0 && t.newlines == 0 {
		t.b.WriteByte(' ')
		t.spaced = true
	}
}

func (t *textOut) newline(n int) {
	if t.b.Len() == 0 {
		return
	}
	for t.newlines < n {
		t.b.WriteByte('\n')
		t.newlines++
	}
	t.spaced = true
}

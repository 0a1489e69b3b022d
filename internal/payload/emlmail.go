package payload

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"github.com/figurative/figsupport/internal/text"
)

// Bounds of what Mail keeps of a message's headers.
const (
	// maxMessageIDBytes bounds one message id; a longer one (or one that is not clean text) is
	// kept as "eml-" and its hash, the same wherever it appears, so it still threads.
	maxMessageIDBytes = 250
	// maxInReplyTo and maxReferences bound the ids kept; of References, the first (the thread's
	// root) and the newest are kept, as RFC 5322 3.6.4 suggests trimming them.
	maxInReplyTo  = 5
	maxReferences = 50
	// maxRecipients bounds the addresses kept of To and of Cc, each.
	maxRecipients = 50
	// maxAddressHeaderBytes bounds what is parsed of one address header.
	maxAddressHeaderBytes = 64 << 10
)

// sender is the address and display name of Reply-To, else From. An address that does not
// parse is returned as it is, so that validation names user_email.
func (p *emlParser) sender(h textproto.Header) (email, name string) {
	ap := &mail.AddressParser{WordDecoder: p.dec}
	for _, key := range []string{"Reply-To", "From"} {
		v := strings.TrimSpace(h.Get(key))
		if v == "" {
			continue
		}
		list, err := ap.ParseList(v)
		if err != nil || len(list) == 0 {
			if key == "From" {
				return text.OneLine(fixUTF8(v)), ""
			}
			continue // a broken Reply-To: the From
		}
		return list[0].Address, text.OneLine(fixUTF8(list[0].Name))
	}
	return "", ""
}

// decodeHeader decodes RFC 2047 encoded words; raw 8-bit text that is not UTF-8 is read as
// Windows-1252 (what such mail clients mean).
func (p *emlParser) decodeHeader(s string) string {
	if d, err := p.dec.DecodeHeader(s); err == nil {
		s = d
	}
	return fixUTF8(s)
}

func fixUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return decodeCharset([]byte(s), "")
}

// emailDate is the Date header, or the zero time (Normalize then sets now and marks the default)
// when it is absent, does not parse, or is not plausible (before 1970, more than a day ahead).
func emailDate(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	t, err := mail.ParseDate(v)
	if err != nil || t.Before(time.Unix(0, 0)) || t.After(now.Add(24*time.Hour)) {
		return time.Time{}
	}
	return t
}

// messageIDKey is the Message-Id without its angle brackets, or "eml-" and its SHA-256 when it
// is too long or not clean text.
func messageIDKey(v string, maxBytes int) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i+1:], '>'); j >= 0 {
			v = v[i+1 : i+1+j]
		} else {
			v = v[i+1:]
		}
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	clean := utf8.ValidString(v) && !strings.ContainsFunc(v, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) })
	if clean && len(v) <= maxBytes {
		return v
	}
	n := min(sha256.Size*2, maxBytes-len("eml-"))
	if n < 8 {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return "eml-" + hex.EncodeToString(sum[:])[:n]
}

// mailHeaders is what the message's own header says of its thread and its nature.
func (p *emlParser) mailHeaders(h textproto.Header) *Mail {
	m := &Mail{
		MessageID:  messageIDKey(h.Get("Message-Id"), maxMessageIDBytes),
		InReplyTo:  messageIDs(strings.Join(h.Values("In-Reply-To"), " "), maxInReplyTo),
		References: messageIDs(strings.Join(h.Values("References"), " "), maxReferences),
		To:         p.addresses(h.Values("To")),
		Cc:         p.addresses(h.Values("Cc")),
	}
	if from := p.addresses(h.Values("From")); len(from) > 0 {
		m.From = from[0]
	}
	m.Automatic, m.BounceOf = p.automatic(h, m.From)
	return m
}

// messageIDs reads a list of message ids (In-Reply-To, References): each <id> without its
// brackets, comments left out, duplicates once; a list without brackets (old mailers) is read
// word by word, keeping what looks like an id. At most n are kept: the first and the last n-1.
func messageIDs(v string, n int) []string {
	var ids []string
	seen := map[string]bool{}
	add := func(raw string) {
		if id := messageIDKey(raw, maxMessageIDBytes); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if !strings.Contains(v, "<") {
		for _, w := range strings.FieldsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == ',' }) {
			if strings.Contains(w, "@") {
				add(w)
			}
		}
	} else {
		depth := 0 // inside (comments), which may nest
		start := -1
		for i := 0; i < len(v); i++ {
			switch c := v[i]; {
			case c == '\\' && depth > 0:
				i++
			case c == '(' && start < 0:
				depth++
			case c == ')' && depth > 0 && start < 0:
				depth--
			case depth > 0:
			case c == '<':
				start = i + 1
			case c == '>' && start >= 0:
				add(v[start:i])
				start = -1
			}
		}
	}
	if len(ids) > n && n > 0 {
		ids = append(ids[:1], ids[len(ids)-(n-1):]...)
	}
	return ids
}

// addresses are the bare addresses (lower-cased, once each, at most maxRecipients) of address
// header fields. net/mail refuses a whole list for one bad address: the list is then read one
// address at a time, keeping those that parse.
func (p *emlParser) addresses(values []string) []string {
	ap := &mail.AddressParser{WordDecoder: p.dec}
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) > maxAddressHeaderBytes {
			v = v[:maxAddressHeaderBytes]
		}
		list, err := ap.ParseList(v)
		if err != nil {
			list = nil
			for _, one := range splitAddressList(v) {
				if a, err := ap.Parse(one); err == nil {
					list = append(list, a)
				}
			}
		}
		for _, a := range list {
			addr := strings.ToLower(strings.TrimSpace(a.Address))
			// 254 bytes: the longest address SMTP carries (RFC 5321 4.5.3.1).
			if addr == "" || len(addr) > 254 || !strings.Contains(addr, "@") || seen[addr] || !utf8.ValidString(addr) {
				continue
			}
			if len(out) == maxRecipients {
				return out
			}
			seen[addr] = true
			out = append(out, addr)
		}
	}
	return out
}

// splitAddressList cuts an address list at its commas, those inside quotes, angle brackets and
// comments left alone.
func splitAddressList(v string) []string {
	var out []string
	quoted, angle, comment, start := false, false, 0, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			i++
		case quoted:
			quoted = c != '"'
		case c == '"':
			quoted = true
		case c == '(':
			comment++
		case c == ')' && comment > 0:
			comment--
		case comment > 0:
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case (c == ',' || c == ';') && !angle:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[min(start, len(v)):])
}

// reportStatusType is the kind of a delivery report's machine-readable part, or "".
func reportStatusType(mt string) string {
	switch mt {
	case "message/delivery-status", "message/global-delivery-status":
		return "delivery-status"
	case "message/disposition-notification", "message/global-disposition-notification":
		return "disposition-notification"
	}
	return ""
}

// readReportStatus reads a delivery report's machine-readable part (RFC 3464 delivery status,
// RFC 8098 disposition notification): whether a recipient failed, and the original message's id
// when the notification names it.
func (p *emlParser) readReportStatus(r io.Reader, kind string) error {
	if p.report.kind == "" {
		p.report.kind = kind
	}
	sc := bufio.NewScanner(io.LimitReader(r, maxReportBytes))
	sc.Buffer(make([]byte, 0, 4096), maxReportBytes)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.HasPrefix(key, " ") || strings.HasPrefix(key, "\t") {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "action":
			p.report.actions++
			p.report.failed = p.report.failed || strings.HasPrefix(strings.ToLower(strings.TrimSpace(val)), "failed")
		case "original-message-id":
			if p.report.originalID == "" {
				p.report.originalID = messageIDKey(val, maxMessageIDBytes)
			}
		}
	}
	return p.discard(r)
}

// readReturnedMessage reads the message a delivery report returns (whole, or its header only):
// its Message-ID says which message bounced. Its text and files are the undelivered message's,
// not the report's: they are left out.
func (p *emlParser) readReturnedMessage(r io.Reader) error {
	h, body, err := p.readHeader(r, false)
	if err == nil && p.report.originalID == "" {
		p.report.originalID = messageIDKey(h.Get("Message-Id"), maxMessageIDBytes)
	}
	if p.in.exceeded {
		return p.tooLarge()
	}
	if body != nil {
		return p.discard(body)
	}
	return p.discard(r)
}

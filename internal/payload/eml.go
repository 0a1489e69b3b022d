package payload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	// go-message reads the MIME structure as a stream: header sections (order, folding and
	// duplicates kept) and multipart bodies, part by part, without holding a part in memory.
	"github.com/emersion/go-message/textproto"

	"github.com/figurative/figsupport/internal/spool"
	"github.com/figurative/figsupport/internal/text"
)

// SourceEmail is the source of a request read from a raw e-mail.
const SourceEmail = "email"

// Bounds of a raw e-mail beyond those of Limits.
const (
	// MaxEmailForwardDepth is how many forwarded messages (message/rfc822) inside one another are
	// opened; a deeper one is kept as an opaque .eml attachment.
	MaxEmailForwardDepth = 5
	// maxMIMEDepth bounds the nesting of containers (multipart/*, message/rfc822) of any kind.
	maxMIMEDepth = 16
	// maxMIMEParts bounds the number of MIME entities, so a message of millions of empty parts is cheap.
	maxMIMEParts = 1000
	// maxHeaderBytes bounds one header section (the message's, a part's, a forwarded message's).
	maxHeaderBytes = 1 << 20
	// maxReportBytes bounds what is read of a delivery report's machine-readable part.
	maxReportBytes = 64 << 10
	// truncatedMark ends a description cut to fit the limits.
	truncatedMark = "\n\n[… message tronqué]"
)

// ParseEmail reads one raw RFC 5322 e-mail and returns the validated request it carries:
// user_email and user_name from Reply-To (else From), objet from Subject, description from the
// text (text/plain preferred, HTML converted to text otherwise), received_at from Date (now when
// absent or unusable, with ReceivedAtDefault set), request_id from Message-Id, source "email",
// and Mail: the message ids that thread it, its addresses, and whether a machine wrote it (see
// Mail.Automatic, Mail.BounceOf).
//
// Attachments are decoded and streamed to disk, never held in memory (package spool): to a
// private directory in spoolDir while the message is read, renamed at the end to
// spoolDir/<request key>-<digest>/, one file <n>-<sanitised name> each. The digest covers the
// request (attachments' contents included), so the same message read again lands on the same
// paths and keeps the same idempotency key. Each attachment is at most maxFileBytes once
// decoded, there are at most lim.MaxFiles of them, and the whole message is bounded by
// lim.MaxBodyBytes plus what the files may take encoded.
//
// Errors in the input are *ValidationError (errors.Is(err, ErrInvalid)) naming the field
// (Field "" for a message that is not an e-mail at all); other errors (the disk) are not. On any
// error nothing is left in spoolDir.
func ParseEmail(r io.Reader, lim Limits, now time.Time, spoolDir string, maxFileBytes int64) (req *Request, err error) {
	if maxFileBytes <= 0 {
		return nil, errors.New("payload: ParseEmail needs a positive maxFileBytes")
	}
	p := &emlParser{
		lim: lim, maxFile: maxFileBytes, textLeft: lim.MaxBodyBytes,
		in:    &budgetReader{r: r, left: emailBudget(lim, maxFileBytes)},
		files: spool.New(spoolDir),
		dec:   &mime.WordDecoder{CharsetReader: charsetReader},
	}
	if p.textLeft <= 0 {
		p.textLeft = DefaultLimits.MaxBodyBytes
	}
	defer func() {
		if err != nil {
			p.files.Remove()
			req = nil
		}
	}()

	hdr, body, err := p.readHeader(p.in, true)
	if err != nil {
		return nil, err
	}
	req = &Request{Source: SourceEmail}
	req.UserEmail, req.UserName = p.sender(hdr)
	req.Objet = text.Truncate(text.OneLine(p.decodeHeader(hdr.Get("Subject"))), max(lim.MaxObjetChars, 1))
	req.UserName = text.Truncate(req.UserName, max(lim.MaxNameChars, 1))
	req.ReceivedAt = emailDate(hdr.Get("Date"), now)
	req.RequestID = messageIDKey(hdr.Get("Message-Id"), lim.MaxRequestIDBytes)

	c, err := p.walk(hdr, body, "text/plain", 0, 0, false)
	if err != nil {
		return nil, err
	}
	req.Description = fitDescription(c.text, p.truncated, lim.MaxDescriptionChar)
	for _, f := range p.files.Files() {
		req.Fichiers = append(req.Fichiers, File{Name: f.Name, Path: f.Path})
	}
	req.Mail = p.mailHeaders(hdr)
	if err := req.Normalize(lim, now); err != nil {
		return nil, err
	}
	if err := p.files.Commit(req.RequestID, req.SpoolIdentity(p.files.Sum)); err != nil {
		return nil, err
	}
	for i := range req.Fichiers {
		req.Fichiers[i].Path = p.files.Relocate(req.Fichiers[i].Path)
	}
	return req, nil
}

// emailBudget is how many raw bytes a message may have: its text and headers, and every file
// base64-encoded (4/3, plus line ends) with room for its part's headers.
func emailBudget(lim Limits, maxFile int64) int64 {
	const ceiling = 1 << 50
	perFile := min(maxFile, ceiling)
	perFile += perFile/3 + perFile/16 + 64<<10
	files := int64(max(lim.MaxFiles, 0))
	body := lim.MaxBodyBytes
	if body <= 0 {
		body = DefaultLimits.MaxBodyBytes
	}
	total := body + 2*maxHeaderBytes
	if files > 0 && perFile > (ceiling-total)/files {
		return ceiling
	}
	return total + files*perFile
}

type emlParser struct {
	lim     Limits
	maxFile int64
	in      *budgetReader
	files   *spool.Batch
	dec     *mime.WordDecoder

	textLeft  int64 // decoded text bytes still accepted
	truncated bool  // some text was left out
	parts     int

	// What the message holds that tells a machine: a delivery report's parts, the first
	// forwarded message (an old-style bounce quotes the message it returns that way).
	report      reportParts
	forwardedID string
}

// reportParts is what the parts of a delivery report (RFC 6522 multipart/report) said.
type reportParts struct {
	kind       string // "delivery-status" or "disposition-notification"
	actions    int    // recipients with an Action field
	failed     bool   // one of them failed
	originalID string // Message-ID of the message the report is about
}

// content is the readable text of a MIME entity.
type content struct {
	text  string
	plain bool // some of it comes from text/plain (not converted from HTML)
}

func malformed(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

func oneLineErr(err error) string {
	return text.Truncate(text.OneLine(strings.ToValidUTF8(err.Error(), "\uFFFD")), 200)
}

func (p *emlParser) tooLarge() error {
	return &ValidationError{Msg: fmt.Sprintf("the e-mail is too large (more than %d bytes)", p.in.limit()), err: ErrTooLarge}
}

// errNotMessage marks a header section that does not parse, so that a forwarded part that is no
// message after all is kept as a file; errEmptyMessage, one that is not there at all.
var (
	errNotMessage   = errors.New("not an e-mail")
	errEmptyMessage = errors.New("empty e-mail")
)

// readHeader reads one header section (at most maxHeaderBytes) from r; body reads what follows.
// top is the message itself: an mbox "From " line before it is skipped, and a read error is the
// input's. Inside a part, a read error ends the section (the part ends there). When the section
// does not parse, the error wraps errNotMessage and body replays r from its start.
func (p *emlParser) readHeader(r io.Reader, top bool) (h textproto.Header, body io.Reader, err error) {
	src := &headerSource{r: r, keep: !top, limit: maxHeaderBytes + 8<<10}
	br := bufio.NewReader(src)
	if _, perr := br.Peek(1); perr != nil {
		if p.in.exceeded {
			return h, nil, p.tooLarge()
		}
		if perr != io.EOF && top {
			return h, nil, fmt.Errorf("read e-mail: %w", perr)
		}
		return h, src.replay(), &ValidationError{Msg: "not an e-mail (RFC 5322): the input is empty", err: errEmptyMessage}
	}
	if top {
		skipMboxLine(br)
	}
	h, err = textproto.ReadHeader(br)
	switch {
	case p.in.exceeded:
		return h, nil, p.tooLarge()
	case src.over:
		return h, nil, malformed("not an e-mail (RFC 5322): the header section exceeds %d bytes", maxHeaderBytes)
	case err != nil && src.err != nil && errors.Is(err, src.err):
		if top {
			return h, nil, fmt.Errorf("read e-mail: %w", err)
		}
		// A part cut short: its header ends where it does.
	case err != nil:
		return h, src.replay(), notMessage(oneLineErr(err))
	case h.Len() == 0:
		return h, src.replay(), notMessage("it has no header fields")
	case !hasFieldName(h):
		// RFC 5322 allows almost any printable name, so `{"user_email": …}` parses as a field.
		return h, src.replay(), notMessage("none of its header fields has the name of one (From:, Subject:…)")
	}
	src.release()
	return h, br, nil
}

// hasFieldName says whether a header section has a field named as fields are (letters, digits
// and hyphens, starting with a letter).
func hasFieldName(h textproto.Header) bool {
	for f := h.Fields(); f.Next(); {
		k := f.Key()
		ok := k != "" && (k[0] >= 'A' && k[0] <= 'Z' || k[0] >= 'a' && k[0] <= 'z')
		for i := 0; ok && i < len(k); i++ {
			c := k[i]
			ok = c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
		}
		if ok {
			return true
		}
	}
	return false
}

// notMessage is the error of a header section that does not parse.
func notMessage(why string) error {
	return &ValidationError{Msg: "not an e-mail (RFC 5322): " + why, err: errNotMessage}
}

// headerSource reads a header section's source: it fails past its limit and, when keep is set,
// keeps what it read until release, so that a section that does not parse can be read again.
type headerSource struct {
	r        io.Reader
	limit    int64
	read     int64
	over     bool
	err      error // the first read error other than io.EOF
	keep     bool
	kept     bytes.Buffer
	released bool
}

func (s *headerSource) Read(b []byte) (int, error) {
	if !s.released {
		if s.read >= s.limit {
			s.over = true
			return 0, errHeaderTooLarge
		}
		b = b[:min(int64(len(b)), s.limit-s.read)]
	}
	n, err := s.r.Read(b)
	if !s.released {
		s.read += int64(n)
		if s.keep {
			s.kept.Write(b[:n])
		}
	}
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

var errHeaderTooLarge = errors.New("header section too large")

// release ends the header section: the rest of the source is read without limit nor copy.
func (s *headerSource) release() {
	s.released = true
	s.kept = bytes.Buffer{}
}

// replay reads the source again from its start.
func (s *headerSource) replay() io.Reader {
	return io.MultiReader(bytes.NewReader(s.kept.Bytes()), s.r)
}

// skipMboxLine drops the "From sender date" line an mbox export starts a message with.
func skipMboxLine(br *bufio.Reader) {
	if b, _ := br.Peek(5); string(b) == "From " {
		for {
			_, err := br.ReadSlice('\n')
			if err != bufio.ErrBufferFull {
				return
			}
		}
	}
}

// walk reads one MIME entity: its readable text is returned, its attachments spooled. depth
// counts the containers above it, fwd the forwarded messages; inReport says it is a part of a
// delivery report of the message itself (not of a forwarded one).
func (p *emlParser) walk(h textproto.Header, body io.Reader, defType string, depth, fwd int, inReport bool) (content, error) {
	p.parts++
	if p.parts > maxMIMEParts {
		return content{}, malformed("the e-mail has too many MIME parts (more than %d)", maxMIMEParts)
	}
	mt, params := mediaType(h.Get("Content-Type"), defType)
	disp, dparams := mediaType(h.Get("Content-Disposition"), "")
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	name = p.fileName(name)

	if strings.HasPrefix(mt, "multipart/") && depth < maxMIMEDepth {
		// Content-Transfer-Encoding is not for multipart bodies (RFC 2045 6.4); mailers that
		// set one anyway do not encode the body (go-message ignores it the same way).
		boundary := params["boundary"]
		if boundary == "" {
			return content{}, malformed("malformed e-mail: a %s part has no boundary", mt)
		}
		return p.walkMultipart(mt, params, body, depth, fwd)
	}
	r := decodeTransfer(body, h.Get("Content-Transfer-Encoding"))
	switch {
	case inReport && reportStatusType(mt) != "":
		return content{}, p.readReportStatus(r, reportStatusType(mt))
	case inReport && (mt == "message/rfc822" || mt == "message/global" || mt == "text/rfc822-headers" || mt == "message/global-headers"):
		return content{}, p.readReturnedMessage(r)
	case (mt == "message/rfc822" || mt == "message/global") && depth < maxMIMEDepth && fwd < MaxEmailForwardDepth:
		return p.walkForwarded(r, name, depth, fwd)
	case (mt == "text/plain" || mt == "text/html") && disp != "attachment" && name == "":
		return p.readText(r, mt, params)
	case mt == "application/pkcs7-signature" || mt == "application/x-pkcs7-signature" || mt == "application/pgp-signature":
		// A signature says nothing to the CRM.
		return content{}, p.discard(r)
	}
	return content{}, p.addFile(r, name, mt)
}

func (p *emlParser) discard(r io.Reader) error {
	io.Copy(io.Discard, r)
	if p.in.exceeded {
		return p.tooLarge()
	}
	return nil
}

func (p *emlParser) walkMultipart(mt string, params map[string]string, body io.Reader, depth, fwd int) (content, error) {
	// A delivery report of the message itself (RFC 6522): its machine-readable parts say which
	// message it is about instead of being text or files. One inside a forwarded message is just
	// what someone forwarded.
	inReport := mt == "multipart/report" && fwd == 0
	if inReport && p.report.kind == "" {
		switch rt := strings.ToLower(params["report-type"]); rt {
		case "delivery-status", "disposition-notification":
			p.report.kind = rt
		}
	}
	guard := &partHeaderGuard{r: body}
	mr := textproto.NewMultipartReader(guard, params["boundary"])
	def := "text/plain"
	if mt == "multipart/digest" {
		def = "message/rfc822"
	}
	var parts []content
	var cur io.Reader
	for {
		if cur != nil {
			// What the part's reader left, outside the guard: only part headers are bounded.
			if err := p.discard(cur); err != nil {
				return content{}, err
			}
		}
		guard.arm(maxHeaderBytes + 8<<10)
		part, err := mr.NextPart()
		guard.disarm()
		if err == io.EOF {
			break
		}
		if err != nil {
			switch {
			case p.in.exceeded:
				return content{}, p.tooLarge()
			case guard.over:
				return content{}, malformed("malformed e-mail: a part's header section exceeds %d bytes", maxHeaderBytes)
			case guard.ended:
				// The closing boundary is missing: the message ends here.
			default:
				return content{}, malformed("malformed e-mail: %s", oneLineErr(err))
			}
			break
		}
		cur = part
		c, err := p.walk(part.Header, part, def, depth+1, fwd, inReport)
		if err != nil {
			return content{}, err
		}
		parts = append(parts, c)
	}
	if mt == "multipart/alternative" {
		// The plain text the sender wrote, else the first readable alternative.
		for _, c := range parts {
			if c.plain && strings.TrimSpace(c.text) != "" {
				return c, nil
			}
		}
		for _, c := range parts {
			if strings.TrimSpace(c.text) != "" {
				return c, nil
			}
		}
		return content{}, nil
	}
	var out content
	var texts []string
	for _, c := range parts {
		if t := strings.TrimSpace(c.text); t != "" {
			texts = append(texts, t)
			out.plain = out.plain || c.plain
		}
	}
	out.text = strings.Join(texts, "\n\n")
	return out, nil
}

// partHeaderGuard bounds what a multipart reader takes while it looks for the next part (the
// boundary line and the part's header section: go-message leaves that unbounded), and tells when
// the body it reads has ended.
type partHeaderGuard struct {
	r     io.Reader
	armed bool
	left  int64
	over  bool
	ended bool
}

func (g *partHeaderGuard) arm(n int64) { g.armed, g.left = true, n }
func (g *partHeaderGuard) disarm()     { g.armed = false }

func (g *partHeaderGuard) Read(b []byte) (int, error) {
	if g.armed {
		if g.left <= 0 {
			g.over = true
			return 0, errHeaderTooLarge
		}
		b = b[:min(int64(len(b)), g.left)]
	}
	n, err := g.r.Read(b)
	if g.armed {
		g.left -= int64(n)
	}
	if err != nil && err != errHeaderTooLarge {
		g.ended = true
	}
	return n, err
}

// walkForwarded opens a forwarded message: its attachments are the request's too, and its text
// follows the body under the usual "forwarded message" block.
func (p *emlParser) walkForwarded(r io.Reader, name string, depth, fwd int) (content, error) {
	h, body, err := p.readHeader(r, false)
	switch {
	case errors.Is(err, errEmptyMessage):
		return content{}, nil
	case errors.Is(err, errNotMessage):
		// Not a message after all: keep it whole as an attachment.
		return content{}, p.addFile(body, name, "message/rfc822")
	case err != nil:
		return content{}, err
	}
	if fwd == 0 && p.forwardedID == "" {
		p.forwardedID = messageIDKey(h.Get("Message-Id"), maxMessageIDBytes)
	}
	c, err := p.walk(h, body, "text/plain", depth+1, fwd+1, false)
	if err != nil {
		return content{}, err
	}
	var b strings.Builder
	b.WriteString("---------- Message transféré ----------\n")
	for _, f := range []struct{ label, key string }{{"De", "From"}, {"Date", "Date"}, {"Objet", "Subject"}, {"À", "To"}} {
		if v := text.OneLine(p.decodeHeader(h.Get(f.key))); v != "" {
			fmt.Fprintf(&b, "%s : %s\n", f.label, text.Truncate(v, 500))
		}
	}
	if t := strings.TrimSpace(c.text); t != "" {
		b.WriteString("\n" + t)
	}
	return content{text: b.String(), plain: c.plain}, nil
}

// readText reads a text part (within the text budget), decodes its charset and, for HTML,
// converts it to text.
func (p *emlParser) readText(r io.Reader, mt string, params map[string]string) (content, error) {
	// A text part that cannot be read to its end (bad encoding, the message ends without its
	// closing boundary) keeps what was read.
	b, _ := io.ReadAll(io.LimitReader(r, p.textLeft+1))
	if p.in.exceeded {
		return content{}, p.tooLarge()
	}
	if int64(len(b)) > p.textLeft {
		// The rest is read (the message's budget bounds it) but not kept.
		b = b[:p.textLeft]
		p.truncated = true
		if err := p.discard(r); err != nil {
			return content{}, err
		}
	}
	p.textLeft -= int64(len(b))
	s := decodeCharset(b, params["charset"])
	if mt == "text/html" {
		return content{text: cleanText(htmlToText(s))}, nil
	}
	if strings.EqualFold(params["format"], "flowed") {
		s = unflow(s, strings.EqualFold(params["delsp"], "yes"))
	}
	return content{text: cleanText(s), plain: true}, nil
}

// fileName is the name an attachment was sent with: RFC 2047 decoded, its base name only, on
// one line and at most MaxFileNameBytes (the extension kept).
func (p *emlParser) fileName(s string) string {
	s = p.decodeHeader(s)
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = text.OneLine(s)
	if s == "." || s == ".." {
		return ""
	}
	return capName(s, max(p.lim.MaxFileNameBytes, 16))
}

// addFile streams one decoded attachment to the spool, bounded by maxFile.
func (p *emlParser) addFile(r io.Reader, name, mt string) error {
	i := p.files.Len()
	if i >= p.lim.MaxFiles {
		return invalid("fichiers", "too many attachments: more than %d", p.lim.MaxFiles)
	}
	if name == "" {
		name = fmt.Sprintf("attachment-%d%s", i+1, extensionFor(mt))
	}
	field := fmt.Sprintf("fichiers[%d]", i)
	_, err := p.files.Add(r, name, p.maxFile)
	var re *spool.ReadError
	switch {
	case err == nil:
		return nil
	case p.in.exceeded:
		return p.tooLarge()
	case errors.Is(err, spool.ErrTooLarge):
		return &ValidationError{Field: field, Msg: fmt.Sprintf("attachment %q exceeds %d bytes", name, p.maxFile), err: ErrTooLarge}
	case errors.As(err, &re) && errors.Is(re.Err, io.ErrUnexpectedEOF):
		return invalid(field, "attachment %q is truncated (the e-mail ends inside it)", name)
	case errors.As(err, &re):
		return invalid(field, "attachment %q cannot be decoded: %s", name, oneLineErr(re.Err))
	}
	return err
}

// budgetReader fails once more than its budget has been read.
type budgetReader struct {
	r        io.Reader
	left     int64
	read     int64
	exceeded bool
}

var errEmailTooLarge = errors.New("e-mail too large")

func (b *budgetReader) limit() int64 { return b.read + b.left }

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.exceeded {
		return 0, errEmailTooLarge
	}
	if b.left <= 0 {
		// One byte more tells an exact fit from an overflow.
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			b.exceeded = true
			return 0, errEmailTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	b.read += int64(n)
	return n, err
}

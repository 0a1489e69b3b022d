package payload

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/transform"

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
	// maxHeaderBytes bounds one header section (the message's, or a forwarded message's).
	maxHeaderBytes = 1 << 20
	// emlSpoolPrefix names the private directory the attachments stream to before the request's
	// key is known; it is the server's prefix too, so its crash cleanup covers both.
	emlSpoolPrefix = ".incoming-"
	// truncatedMark ends a description cut to fit the limits.
	truncatedMark = "\n\n[… message tronqué]"
)

// ParseEmail reads one raw RFC 5322 e-mail and returns the validated request it carries:
// user_email and user_name from Reply-To (else From), objet from Subject, description from the
// text (text/plain preferred, HTML converted to text otherwise), received_at from Date (now when
// absent or unusable, with ReceivedAtDefault set), request_id from Message-Id, source "email".
//
// Attachments are decoded and streamed to disk, never held in memory: to a private directory
// in spoolDir while the message is read, renamed at the end to spoolDir/<request key>-<digest>/,
// one file <n>-<sanitised name> each (directories 0700, files 0600). The digest covers the
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
	p := &emlParser{lim: lim, maxFile: maxFileBytes, spoolDir: spoolDir, textLeft: lim.MaxBodyBytes}
	if p.textLeft <= 0 {
		p.textLeft = DefaultLimits.MaxBodyBytes
	}
	p.dec = &mime.WordDecoder{CharsetReader: charsetReader}
	p.in = &budgetReader{r: r, left: emailBudget(lim, maxFileBytes)}
	defer func() {
		if err != nil {
			p.removeSpool()
			req = nil
		}
	}()

	br := bufio.NewReader(p.in)
	skipMboxLine(br)
	hdr, _, err := p.readHeader(br, false)
	if err != nil {
		return nil, err
	}
	req = &Request{Source: SourceEmail}
	req.UserEmail, req.UserName = p.sender(hdr)
	req.Objet = text.Truncate(text.OneLine(p.decodeHeader(hdr.Get("Subject"))), max(lim.MaxObjetChars, 1))
	req.UserName = text.Truncate(req.UserName, max(lim.MaxNameChars, 1))
	req.ReceivedAt = emailDate(hdr.Get("Date"), now)
	req.RequestID = messageIDKey(hdr.Get("Message-Id"), lim.MaxRequestIDBytes)

	c, err := p.walk(hdr, br, "text/plain", 0, 0)
	if err != nil {
		return nil, err
	}
	req.Description = fitDescription(c.text, p.truncated, lim.MaxDescriptionChar)
	req.Fichiers = make([]File, len(p.files))
	for i, f := range p.files {
		req.Fichiers[i] = File{Name: f.name, Path: f.path}
	}
	if err := req.Normalize(lim, now); err != nil {
		return nil, err
	}
	if err := p.finalize(req); err != nil {
		return nil, err
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
	lim      Limits
	maxFile  int64
	spoolDir string
	dec      *mime.WordDecoder
	in       *budgetReader

	root  string // spoolDir made absolute, once a file comes
	tmp   string // the private directory files stream to
	dir   string // the final directory
	files []emlFile

	textLeft  int64 // decoded text bytes still accepted
	truncated bool  // some text was left out
	parts     int
}

type emlFile struct {
	name string // as sent (decoded, base name)
	path string
	sum  string // SHA-256 of the content
}

// content is the readable text of a MIME entity.
type content struct {
	text  string
	plain bool // some of it comes from text/plain (not converted from HTML)
}

func malformed(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
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

// readHeader reads a header section (bounded) and parses it. raw holds the section's bytes,
// also when it does not parse (the error is then a ValidationError without a cause).
// Inside a part (nested), a read error ends the section: the part ends there.
func (p *emlParser) readHeader(br *bufio.Reader, nested bool) (hdr textproto.MIMEHeader, raw []byte, err error) {
	var buf bytes.Buffer
	for {
		line, rerr := br.ReadSlice('\n')
		buf.Write(line)
		if buf.Len() > maxHeaderBytes {
			return nil, nil, malformed("not an e-mail (RFC 5322): the header section exceeds %d bytes", maxHeaderBytes)
		}
		if rerr == bufio.ErrBufferFull {
			continue
		}
		if p.in.exceeded {
			return nil, nil, p.tooLarge()
		}
		if rerr != nil && rerr != io.EOF && !nested {
			return nil, nil, fmt.Errorf("read e-mail: %w", rerr)
		}
		if string(line) == "\n" || string(line) == "\r\n" || rerr != nil {
			break
		}
	}
	raw = buf.Bytes()
	if len(raw) == 0 {
		return nil, raw, malformed("not an e-mail (RFC 5322): the input is empty")
	}
	tp := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\r\n\r\n"))))
	hdr, perr := tp.ReadMIMEHeader()
	if perr != nil {
		return nil, raw, malformed("not an e-mail (RFC 5322): %s", oneLineErr(perr))
	}
	if len(hdr) == 0 {
		return nil, raw, malformed("not an e-mail (RFC 5322): it has no header fields")
	}
	return hdr, raw, nil
}

func oneLineErr(err error) string {
	return text.Truncate(text.OneLine(strings.ToValidUTF8(err.Error(), "\uFFFD")), 200)
}

func (p *emlParser) tooLarge() error {
	return &ValidationError{Msg: fmt.Sprintf("the e-mail is too large (more than %d bytes)", p.in.limit()), err: ErrTooLarge}
}

// sender is the address and display name of Reply-To, else From. An address that does not
// parse is returned as it is, so that validation names user_email.
func (p *emlParser) sender(h textproto.MIMEHeader) (email, name string) {
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

// walk reads one MIME entity: its readable text is returned, its attachments spooled.
// depth counts the containers above it, fwd the forwarded messages.
func (p *emlParser) walk(h textproto.MIMEHeader, body io.Reader, defType string, depth, fwd int) (content, error) {
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
	r := decodeTransfer(body, h.Get("Content-Transfer-Encoding"))

	switch {
	case strings.HasPrefix(mt, "multipart/") && depth < maxMIMEDepth:
		boundary := params["boundary"]
		if boundary == "" {
			return content{}, malformed("malformed e-mail: a %s part has no boundary", mt)
		}
		return p.walkMultipart(mt, multipart.NewReader(r, boundary), depth, fwd)
	case (mt == "message/rfc822" || mt == "message/global") && depth < maxMIMEDepth && fwd < MaxEmailForwardDepth:
		return p.walkForwarded(r, name, depth, fwd)
	case (mt == "text/plain" || mt == "text/html") && disp != "attachment" && name == "":
		return p.readText(r, mt, params)
	case mt == "application/pkcs7-signature" || mt == "application/x-pkcs7-signature" || mt == "application/pgp-signature":
		// A signature says nothing to the CRM.
		io.Copy(io.Discard, r)
		if p.in.exceeded {
			return content{}, p.tooLarge()
		}
		return content{}, nil
	}
	return content{}, p.addFile(r, name, mt)
}

func (p *emlParser) walkMultipart(mt string, mr *multipart.Reader, depth, fwd int) (content, error) {
	var parts []content
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if p.in.exceeded {
				return content{}, p.tooLarge()
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // the closing boundary is missing: the message ends here
			}
			return content{}, malformed("malformed e-mail: %s", oneLineErr(err))
		}
		def := "text/plain"
		if mt == "multipart/digest" {
			def = "message/rfc822"
		}
		c, err := p.walk(part.Header, part, def, depth+1, fwd)
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

// walkForwarded opens a forwarded message: its attachments are the request's too, and its text
// follows the body under the usual "forwarded message" block.
func (p *emlParser) walkForwarded(r io.Reader, name string, depth, fwd int) (content, error) {
	br := bufio.NewReader(r)
	h, raw, err := p.readHeader(br, true)
	if err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.err != nil || raw == nil {
			return content{}, err
		}
		// Not a message after all: keep it whole as an attachment.
		return content{}, p.addFile(io.MultiReader(bytes.NewReader(raw), br), name, "message/rfc822")
	}
	c, err := p.walk(h, br, "text/plain", depth+1, fwd+1)
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
		io.Copy(io.Discard, r)
		if p.in.exceeded {
			return content{}, p.tooLarge()
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
	i := len(p.files)
	if i >= p.lim.MaxFiles {
		return invalid("fichiers", "too many attachments: more than %d", p.lim.MaxFiles)
	}
	n := i + 1
	if name == "" {
		name = fmt.Sprintf("attachment-%d%s", n, extensionFor(mt))
	}
	field := fmt.Sprintf("fichiers[%d]", i)
	if err := p.ensureSpool(); err != nil {
		return err
	}
	path := filepath.Join(p.tmp, fmt.Sprintf("%d-%s", n, text.FileName(name, 100)))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool attachment: %w", err)
	}
	h := sha256.New()
	w := &emlWriter{w: f, h: h}
	copied, rerr := io.Copy(w, io.LimitReader(r, p.maxFile+1))
	if cerr := f.Close(); w.err == nil && cerr != nil {
		w.err = cerr
	}
	switch {
	case w.err != nil:
		return fmt.Errorf("spool attachment: %w", w.err)
	case p.in.exceeded:
		return p.tooLarge()
	case rerr != nil && errors.Is(rerr, io.ErrUnexpectedEOF):
		return invalid(field, "attachment %q is truncated (the e-mail ends inside it)", name)
	case rerr != nil:
		return invalid(field, "attachment %q cannot be decoded: %s", name, oneLineErr(rerr))
	case copied > p.maxFile:
		return &ValidationError{Field: field, Msg: fmt.Sprintf("attachment %q exceeds %d bytes", name, p.maxFile), err: ErrTooLarge}
	}
	p.files = append(p.files, emlFile{name: name, path: path, sum: hex.EncodeToString(h.Sum(nil))})
	return nil
}

type emlWriter struct {
	w   io.Writer
	h   hash.Hash
	err error
}

func (e *emlWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	e.h.Write(b[:n])
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

func (p *emlParser) ensureSpool() error {
	if p.tmp != "" {
		return nil
	}
	if p.spoolDir == "" {
		return errors.New("payload: the e-mail has attachments and no spool directory was given")
	}
	root, err := filepath.Abs(p.spoolDir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	dir, err := os.MkdirTemp(root, emlSpoolPrefix)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	p.root, p.tmp = root, dir
	return nil
}

// finalize renames the private directory to the request's and points the paths there. The name
// is <sanitised request_id or "h">-<digest of the request with its files' contents>, as the
// server's spool names it.
func (p *emlParser) finalize(req *Request) error {
	if p.tmp == "" {
		return nil
	}
	c := *req
	c.Fichiers = slices.Clone(req.Fichiers)
	for i := range c.Fichiers {
		c.Fichiers[i].Path = "sha256:" + p.files[i].sum
	}
	sum := sha256.Sum256([]byte(req.RequestID + "\x00" + c.Hash()))
	dir := filepath.Join(p.root, text.KeySegment(req.RequestID, 48)+"-"+hex.EncodeToString(sum[:12]))
	if err := os.Rename(p.tmp, dir); err != nil {
		st, serr := os.Stat(dir)
		if serr != nil || !st.IsDir() {
			return fmt.Errorf("spool: %w", err)
		}
		// The same message, read before: its (identical) files are there.
		if err := os.RemoveAll(p.tmp); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	p.tmp, p.dir = "", dir
	for i := range req.Fichiers {
		req.Fichiers[i].Path = filepath.Join(dir, filepath.Base(p.files[i].path))
	}
	return nil
}

func (p *emlParser) removeSpool() {
	if p.tmp != "" {
		os.RemoveAll(p.tmp)
		p.tmp = ""
	}
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

// charsetReader gives mime.WordDecoder the charsets it does not know itself.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(input, 64<<10))
	if err != nil {
		return nil, err
	}
	return strings.NewReader(decodeCharset(b, charset)), nil
}

// decodeCharset converts text in the named charset to UTF-8. UTF-8 and unknown charsets keep
// valid UTF-8 and replace invalid bytes with U+FFFD; no charset (or US-ASCII) with bytes that are
// not UTF-8 is read as Windows-1252, as is ISO-8859-1 (its printable superset, as browsers do).
func decodeCharset(b []byte, charset string) string {
	cs := strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
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
	case "iso-8859-15", "iso8859-15", "latin9", "latin-9":
		enc = charmap.ISO8859_15
	default:
		e, err := htmlindex.Get(cs)
		if err != nil {
			return strings.ToValidUTF8(string(b), "\uFFFD")
		}
		enc = e
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

// htmlToText turns an HTML body into readable text: tags removed, the content of script, style,
// head, title and template dropped, block elements as line breaks, list items as "- ", links
// followed by their address, entities decoded, white space folded as a browser does (kept in pre).
func htmlToText(s string) string {
	lower := asciiLower(s)
	t := &textOut{}
	pre := 0
	anchorStart, anchorHref := -1, ""
	for i := 0; i < len(s); {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			t.text(html.UnescapeString(s[i:i+j]), pre > 0)
			i += j
			continue
		}
		if strings.HasPrefix(s[i:], "<!--") {
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		if i+1 >= len(s) || !(isASCIILetter(s[i+1]) || s[i+1] == '/' || s[i+1] == '!' || s[i+1] == '?') {
			t.text("<", pre > 0)
			i++
			continue
		}
		end := tagEnd(s, i+1)
		if end < 0 {
			break // an unterminated tag: the rest is not text
		}
		tag := s[i+1 : end]
		i = end + 1
		closing := strings.HasPrefix(tag, "/")
		name := tagName(strings.TrimPrefix(tag, "/"))
		switch name {
		case "script", "style", "head", "title", "template", "noscript", "xml":
			if closing {
				continue
			}
			if strings.HasSuffix(tag, "/") {
				continue // <script/>
			}
			k := strings.Index(lower[i:], "</"+name)
			if k < 0 {
				i = len(s)
				continue
			}
			i += k
			if e := tagEnd(s, i+1); e >= 0 {
				i = e + 1
			} else {
				i = len(s)
			}
		case "br":
			t.newline(1)
		case "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "dl", "hr", "pre":
			t.newline(2)
			if name == "pre" {
				if closing {
					pre = max(pre-1, 0)
				} else {
					pre++
				}
			}
		case "li":
			if !closing {
				t.newline(1)
				t.raw("- ")
			} else {
				t.newline(1)
			}
		case "div", "tr", "dt", "dd", "section", "article", "header", "footer", "address", "center",
			"form", "fieldset", "nav", "aside", "figure", "figcaption", "main", "caption":
			t.newline(1)
		case "td", "th":
			if !closing {
				t.space()
			}
		case "a":
			if !closing {
				anchorHref = html.UnescapeString(attr(tag, "href"))
				anchorStart = t.b.Len()
			} else if anchorStart >= 0 {
				label := strings.TrimSpace(t.b.String()[anchorStart:])
				href := strings.TrimSpace(anchorHref)
				lh := strings.ToLower(href)
				if (strings.HasPrefix(lh, "http://") || strings.HasPrefix(lh, "https://")) && label != "" && !strings.Contains(label, href) {
					t.raw(" <" + text.OneLine(href) + ">")
				}
				anchorStart, anchorHref = -1, ""
			}
		}
	}
	return t.b.String()
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
			if !t.spaced && t.b.Len() > 0 && t.newlines == 0 {
				t.b.WriteByte(' ')
				t.spaced = true
			}
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

// tagEnd is the index of the '>' closing the tag whose content starts at i, quotes respected;
// -1 if there is none.
func tagEnd(s string, i int) int {
	var quote byte
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i
		}
	}
	return -1
}

func tagName(tag string) string {
	end := 0
	for end < len(tag) && (isASCIILetter(tag[end]) || tag[end] >= '0' && tag[end] <= '9') {
		end++
	}
	return asciiLower(tag[:end])
}

// attr is the value of a tag's attribute, or "".
func attr(tag, name string) string {
	lower := asciiLower(tag)
	for i := 0; ; {
		k := strings.Index(lower[i:], name)
		if k < 0 {
			return ""
		}
		k += i
		i = k + len(name)
		if k == 0 || !(lower[k-1] == ' ' || lower[k-1] == '\t' || lower[k-1] == '\n' || lower[k-1] == '\r') {
			continue
		}
		j := i
		for j < len(tag) && (tag[j] == ' ' || tag[j] == '\t' || tag[j] == '\n' || tag[j] == '\r') {
			j++
		}
		if j >= len(tag) || tag[j] != '=' {
			continue
		}
		j++
		for j < len(tag) && (tag[j] == ' ' || tag[j] == '\t' || tag[j] == '\n' || tag[j] == '\r') {
			j++
		}
		if j >= len(tag) {
			return ""
		}
		if q := tag[j]; q == '"' || q == '\'' {
			if e := strings.IndexByte(tag[j+1:], q); e >= 0 {
				return tag[j+1 : j+1+e]
			}
			return tag[j+1:]
		}
		e := j
		for e < len(tag) && tag[e] != ' ' && tag[e] != '\t' && tag[e] != '\n' && tag[e] != '\r' && tag[e] != '/' {
			e++
		}
		return tag[j:e]
	}
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// asciiLower lower-cases ASCII letters only, so byte offsets stay those of s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
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

// Package payload holds the request and response of the support chain: parsing, validation and
// normalisation of what a customer sent, and the answer the chain gives back.
package payload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Classification labels.
const (
	Support      = "SUPPORT"
	Modelisation = "MODELISATION"
)

// File is one attachment of a request: a URL to fetch or, on the CLI only, a local path.
type File struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
	Path string `json:"path,omitempty"`
}

// Request is a customer request as the forms and e-mails send it.
type Request struct {
	Source      string    `json:"source,omitempty"`
	Objet       string    `json:"objet,omitempty"`
	Description string    `json:"description,omitempty"`
	UserEmail   string    `json:"user_email"`
	UserName    string    `json:"user_name,omitempty"`
	Fichiers    []File    `json:"fichiers,omitempty"`
	ReceivedAt  time.Time `json:"received_at"`
	RequestID   string    `json:"request_id,omitempty"`

	// Mail is set for a request read from an e-mail: the headers that thread a conversation and
	// those that tell a machine from a person. It is not part of the JSON a client may send (the
	// wire format ignores it) but is kept in the journal with the request.
	Mail *Mail `json:"mail,omitempty"`

	// ReceivedAtDefault is true when received_at was not given and Normalize set it to now: the
	// idempotency hash then leaves it out, so the same message resent is the same request. It is
	// part of the JSON so that a request stored in the journal and read back keeps its key.
	ReceivedAtDefault bool `json:"received_at_default,omitempty"`
}

// Mail is what an e-mail adds to a request. Message ids are kept without their angle brackets.
type Mail struct {
	MessageID  string   `json:"message_id,omitempty"`
	InReplyTo  []string `json:"in_reply_to,omitempty"`
	References []string `json:"references,omitempty"`
	// From is the From address; the request's user_email may come from Reply-To instead.
	From string   `json:"from,omitempty"`
	To   []string `json:"to,omitempty"`
	Cc   []string `json:"cc,omitempty"`
	// Automatic, when set, says why the message was written by a machine (an out-of-office reply,
	// bulk or list mail, a delivery report): loop protection skips it with this reason.
	Automatic string `json:"automatic,omitempty"`
	// BounceOf is, for a delivery report, the Message-ID of the message that could not be
	// delivered, when the report names it.
	BounceOf string `json:"bounce_of,omitempty"`
}

// Thread is every message id this one answers: In-Reply-To first, then References newest first.
func (m *Mail) Thread() []string {
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(m.InReplyTo)+len(m.References))
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range m.InReplyTo {
		add(id)
	}
	for i := len(m.References) - 1; i >= 0; i-- {
		add(m.References[i])
	}
	return out
}

// StoredFile is a file once it is in the object store.
type StoredFile struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
	Key         string `json:"key,omitempty"`
}

// Response is the chain's answer: the seed's fields first, then ours.
type Response struct {
	Status         string       `json:"status"`
	TicketID       string       `json:"ticket_id"`
	TicketURL      string       `json:"ticket_url"`
	IsNewTicket    bool         `json:"is_new_ticket"`
	Classification string       `json:"classification"`
	FilesUploaded  int          `json:"files_uploaded"`
	Message        string       `json:"message"`
	RequestID      string       `json:"request_id"`
	ContactID      string       `json:"contact_id"`
	SubtaskID      string       `json:"subtask_id"`
	Files          []StoredFile `json:"files"`
	Replayed       bool         `json:"replayed"`
	Warnings       []string     `json:"warnings"`
	// Reason says why a skipped message was left alone (loop protection); "" otherwise.
	Reason string `json:"reason"`
}

// Response statuses.
const (
	StatusCreated    = "created"
	StatusUpdated    = "updated"
	StatusQueued     = "queued"
	StatusIncomplete = "incomplete"
	// StatusSkipped: the message was written by a machine (loop protection); nothing was done.
	StatusSkipped = "skipped"
)

// Limits bound what one request may carry.
type Limits struct {
	MaxBodyBytes       int64 // the whole JSON document
	MaxObjetChars      int
	MaxDescriptionChar int
	MaxNameChars       int
	MaxFiles           int
	MaxFileNameBytes   int
	MaxURLBytes        int
	MaxRequestIDBytes  int
}

// DefaultLimits are generous for a human-written request and small enough to keep a hostile one cheap.
var DefaultLimits = Limits{
	MaxBodyBytes:       1 << 20,
	MaxObjetChars:      500,
	MaxDescriptionChar: 50_000,
	MaxNameChars:       200,
	MaxFiles:           20,
	MaxFileNameBytes:   255,
	MaxURLBytes:        2048,
	MaxRequestIDBytes:  200,
}

// ErrInvalid marks every validation error, so callers map them to "bad input" with errors.Is.
var ErrInvalid = errors.New("invalid request")

// ValidationError names the field at fault.
type ValidationError struct {
	Field string
	Msg   string
	err   error // a more specific cause (ErrTooLarge) for errors.Is
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Is makes errors.Is(err, ErrInvalid) true for every validation error.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Unwrap exposes the specific cause, so errors.Is(err, ErrTooLarge) holds for an oversized body.
func (e *ValidationError) Unwrap() error { return e.err }

// ErrTooLarge is returned (wrapped in a ValidationError) when the document exceeds MaxBodyBytes.
var ErrTooLarge = errors.New("request body too large")

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// wire is the shape on the wire: received_at stays a string so a bad date names its field.
type wire struct {
	Source      *string `json:"source"`
	Objet       *string `json:"objet"`
	Description *string `json:"description"`
	UserEmail   *string `json:"user_email"`
	UserName    *string `json:"user_name"`
	Fichiers    []File  `json:"fichiers"`
	ReceivedAt  *string `json:"received_at"`
	RequestID   *string `json:"request_id"`
	// ReceivedAtDefault lets a stored request (see Request.ReceivedAtDefault) re-parse to its key.
	ReceivedAtDefault bool `json:"received_at_default"`
}

// Parse reads one JSON request, validates and normalises it. Unknown fields are tolerated.
// now is the default for received_at. The returned key is the request's idempotency key.
func Parse(r io.Reader, lim Limits, now time.Time) (*Request, error) {
	body, err := io.ReadAll(io.LimitReader(r, lim.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	if int64(len(body)) > lim.MaxBodyBytes {
		return nil, &ValidationError{Msg: fmt.Sprintf("request body exceeds %d bytes", lim.MaxBodyBytes), err: ErrTooLarge}
	}
	return ParseBytes(body, lim, now)
}

// ParseBytes is Parse on a document already in memory.
func ParseBytes(body []byte, lim Limits, now time.Time) (*Request, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &ValidationError{Msg: "empty request body"}
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return nil, jsonError(err)
	}
	// Not dec.More(): it reports false when the next byte is '}' or ']', so `{…}}` would pass.
	if len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return nil, &ValidationError{Msg: "unexpected data after the JSON object"}
	}
	req := &Request{
		Source:      deref(w.Source),
		Objet:       deref(w.Objet),
		Description: deref(w.Description),
		UserEmail:   deref(w.UserEmail),
		UserName:    deref(w.UserName),
		Fichiers:    w.Fichiers,
		RequestID:   deref(w.RequestID),

		ReceivedAtDefault: w.ReceivedAtDefault,
	}
	if w.ReceivedAt != nil && strings.TrimSpace(*w.ReceivedAt) != "" {
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(*w.ReceivedAt))
		if err != nil {
			return nil, invalid("received_at", "not an RFC 3339 date-time: %q", *w.ReceivedAt)
		}
		req.ReceivedAt = t
	}
	if err := req.Normalize(lim, now); err != nil {
		return nil, err
	}
	return req, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return &ValidationError{Msg: "the request must be a JSON object"}
		}
		return invalid(field, "expected %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &ValidationError{Msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &ValidationError{Msg: "malformed JSON: unexpected end of input"}
	}
	return &ValidationError{Msg: "malformed JSON: " + err.Error()}
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "an array"
	case "struct":
		return "an object"
	case "ptr":
		return "a string"
	}
	return "a " + k
}

// Normalize trims and checks every field in place; it is what Parse calls, exported for requests
// built in code (the CLI's flags, e-mails).
func (r *Request) Normalize(lim Limits, now time.Time) error {
	r.Source = strings.ToLower(strings.TrimSpace(r.Source))
	r.Objet = strings.TrimSpace(r.Objet)
	r.Description = strings.TrimSpace(r.Description)
	r.UserName = strings.TrimSpace(r.UserName)
	r.RequestID = strings.TrimSpace(r.RequestID)
	for _, f := range []struct {
		name, v string
	}{{"source", r.Source}, {"objet", r.Objet}, {"description", r.Description}, {"user_email", r.UserEmail}, {"user_name", r.UserName}, {"request_id", r.RequestID}} {
		if !utf8.ValidString(f.v) {
			return invalid(f.name, "not valid UTF-8")
		}
		if strings.ContainsRune(f.v, 0) {
			return invalid(f.name, "contains a NUL character")
		}
	}

	email, err := NormalizeEmail(r.UserEmail)
	if err != nil {
		return err
	}
	r.UserEmail = email
	if r.Objet == "" && r.Description == "" {
		return invalid("description", "at least one of objet or description is required")
	}
	if n := utf8.RuneCountInString(r.Objet); n > lim.MaxObjetChars {
		return invalid("objet", "too long: %d characters, at most %d", n, lim.MaxObjetChars)
	}
	if n := utf8.RuneCountInString(r.Description); n > lim.MaxDescriptionChar {
		return invalid("description", "too long: %d characters, at most %d", n, lim.MaxDescriptionChar)
	}
	if n := utf8.RuneCountInString(r.UserName); n > lim.MaxNameChars {
		return invalid("user_name", "too long: %d characters, at most %d", n, lim.MaxNameChars)
	}
	if n := utf8.RuneCountInString(r.Source); n > 100 {
		return invalid("source", "too long: %d characters, at most 100", n)
	}
	if len(r.RequestID) > lim.MaxRequestIDBytes {
		return invalid("request_id", "too long: %d bytes, at most %d", len(r.RequestID), lim.MaxRequestIDBytes)
	}
	for _, c := range r.RequestID {
		if c < 0x20 || c == 0x7f {
			return invalid("request_id", "contains a control character")
		}
	}
	if len(r.Fichiers) > lim.MaxFiles {
		return invalid("fichiers", "too many files: %d, at most %d", len(r.Fichiers), lim.MaxFiles)
	}
	for i := range r.Fichiers {
		if err := r.Fichiers[i].normalize(fmt.Sprintf("fichiers[%d]", i), lim); err != nil {
			return err
		}
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = now
		r.ReceivedAtDefault = true
	}
	r.ReceivedAt = r.ReceivedAt.UTC()
	// HubSpot timestamps are epoch milliseconds, and a year before 0 cannot even be marshalled
	// (the hash would silently be that of an empty document).
	if r.ReceivedAt.Before(time.Unix(0, 0)) {
		return invalid("received_at", "is before 1970: %s", r.ReceivedAt.Format(time.RFC3339))
	}
	if r.ReceivedAt.After(now.Add(24 * time.Hour)) {
		return invalid("received_at", "is more than a day in the future: %s", r.ReceivedAt.Format(time.RFC3339))
	}
	return nil
}

// NormalizeEmail trims, lower-cases and checks an address; the error names user_email.
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", invalid("user_email", "is required")
	}
	if len(e) > 254 {
		return "", invalid("user_email", "too long: %d bytes, at most 254", len(e))
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return "", invalid("user_email", "not a valid e-mail address: %q", s)
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || !strings.Contains(e[at+1:], ".") || strings.HasSuffix(e, ".") {
		return "", invalid("user_email", "not a valid e-mail address: %q", s)
	}
	return e, nil
}

func (f *File) normalize(field string, lim Limits) error {
	f.Name = strings.TrimSpace(f.Name)
	f.URL = strings.TrimSpace(f.URL)
	f.Path = strings.TrimSpace(f.Path)
	if f.URL == "" && f.Path == "" {
		return invalid(field+".url", "a file needs a url (or, on the command line, a path)")
	}
	if f.URL != "" && f.Path != "" {
		return invalid(field, "give either url or path, not both")
	}
	if f.URL != "" {
		if len(f.URL) > lim.MaxURLBytes {
			return invalid(field+".url", "too long: %d bytes, at most %d", len(f.URL), lim.MaxURLBytes)
		}
		u, err := url.Parse(f.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid(field+".url", "not an http(s) URL: %q", f.URL)
		}
		if u.User != nil {
			return invalid(field+".url", "must not carry credentials")
		}
		if f.Name == "" {
			f.Name = strings.TrimSpace(lastSegment(u.Path))
		}
	}
	// Derived names are trimmed like given ones, so normalising twice changes nothing.
	if f.Path != "" && f.Name == "" {
		f.Name = strings.TrimSpace(lastSegment(f.Path))
	}
	if !utf8.ValidString(f.Name) {
		return invalid(field+".name", "not valid UTF-8")
	}
	if len(f.Name) > lim.MaxFileNameBytes {
		return invalid(field+".name", "too long: %d bytes, at most %d", len(f.Name), lim.MaxFileNameBytes)
	}
	return nil
}

func lastSegment(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexAny(p, "/\\"); i >= 0 {
		p = p[i+1:]
	}
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	return p
}

// Key is the idempotency key: the explicit request_id when given, else a hash of the canonical
// payload (received_at included only when the sender gave it, so the same message resent is the same).
func (r *Request) Key() string {
	if r.RequestID != "" {
		return r.RequestID
	}
	return "h-" + r.Hash()[:32]
}

// Hash is the SHA-256 of the canonical normalised payload; the journal compares it to detect a key
// reused for another payload.
func (r *Request) Hash() string {
	c := *r
	c.RequestID = ""
	if c.ReceivedAtDefault {
		c.ReceivedAt = time.Time{}
		c.ReceivedAtDefault = false // keeps the hashes of the format before the flag was in the JSON
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SpoolIdentity is what names the spool directory of a request that brought files (package
// spool): its key and its canonical hash, each spooled file's path replaced by its content
// reference (ref answers for the spooled paths), so that the same request with the same files
// has the same identity wherever its files were first written.
func (r *Request) SpoolIdentity(ref func(path string) (string, bool)) string {
	c := *r
	c.Fichiers = slices.Clone(r.Fichiers)
	for i, f := range c.Fichiers {
		if s, ok := ref(f.Path); ok {
			c.Fichiers[i].Path = s
		}
	}
	return r.RequestID + "\x00" + c.Hash()
}

// Text is the customer's message as one string (subject, blank line, body) for classifiers and notes.
func (r *Request) Text() string {
	switch {
	case r.Objet == "":
		return r.Description
	case r.Description == "":
		return r.Objet
	}
	return r.Objet + "\n\n" + r.Description
}

// Subject is the request's subject, or the start of its description when it has none.
func (r *Request) Subject() string {
	if r.Objet != "" {
		return r.Objet
	}
	s := strings.Join(strings.Fields(r.Description), " ")
	if utf8.RuneCountInString(s) > 80 {
		s = string([]rune(s)[:77]) + "..."
	}
	return s
}

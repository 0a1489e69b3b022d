// Package graphmailfake is an in-process Microsoft Graph mailbox for tests: mail folders (found by
// id, well-known name or display name), messages listed with $filter, $orderby, $select, $top and
// @odata.nextLink paging, the raw MIME message at /$value, PATCH of isRead and flag, move, 401 on a
// token it did not issue for Graph, 404 for an unknown mailbox, and throttling (429 with
// Retry-After) on demand. Tokens come from graphfake's token endpoint.
package graphmailfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/graphfake"
)

const graphScope = "https://graph.microsoft.com/.default"

// Message is one message of the fake mailbox.
type Message struct {
	ID       string
	FolderID string
	Raw      []byte
	IsRead   bool
	Flagged  bool
	Received time.Time
	// MessageID is the internetMessageId (with angle brackets, as Graph gives it).
	MessageID string
	Subject   string
	From      string
}

// Call is one request the fake answered.
type Call struct {
	Method string
	Path   string
	Query  url.Values
	Status int
}

type folder struct {
	ID, Name, WellKnown, Parent string
}

// Server is the fake: URL is GRAPH_BASE_URL, Tokens the token endpoint (OAUTH_TOKEN_URL: Tokens.TokenURL()).
type Server struct {
	*httptest.Server
	Tokens  *graphfake.Server
	Mailbox string // the only mailbox that exists

	mu       sync.Mutex
	folders  []folder
	msgs     []*Message
	n        int
	calls    []Call
	throttle map[string][]int // operation → statuses to answer next
	retryAft int
	onValue  func(id string) // runs before a $value answer (tests crash there)
}

// New starts the fake for mailbox with the folders Inbox (well-known inbox) and the given display
// names (top level; "Parent/Child" for a child folder).
func New(t testing.TB, mailbox string, folders ...string) *Server {
	s := &Server{Tokens: graphfake.New(t), Mailbox: mailbox, throttle: map[string][]int{}}
	s.folders = append(s.folders, folder{ID: s.nextID("FOLDER"), Name: "Inbox", WellKnown: "inbox"})
	for _, f := range folders {
		parent := ""
		name := f
		if p, c, ok := strings.Cut(f, "/"); ok {
			parent, name = s.folderByName("", p).ID, c
		}
		s.folders = append(s.folders, folder{ID: s.nextID("FOLDER"), Name: name, Parent: parent})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1.0/users/{user}/mailFolders", s.listFolders)
	mux.HandleFunc("GET /v1.0/users/{user}/mailFolders/{folder}", s.getFolder)
	mux.HandleFunc("GET /v1.0/users/{user}/mailFolders/{folder}/childFolders", s.listFolders)
	mux.HandleFunc("GET /v1.0/users/{user}/mailFolders/{folder}/messages", s.listMessages)
	mux.HandleFunc("GET /v1.0/users/{user}/messages/{id}/{value}", s.value)
	mux.HandleFunc("PATCH /v1.0/users/{user}/messages/{id}", s.patch)
	mux.HandleFunc("POST /v1.0/users/{user}/messages/{id}/move", s.move)
	s.Server = httptest.NewServer(s.record(mux))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) nextID(prefix string) string {
	s.n++
	// Graph ids are long base64url-ish strings ending in "="; a test must escape them in paths.
	return fmt.Sprintf("AAMk%s-%04d_x+y=", prefix, s.n)
}

// Add puts an unread message in the folder (a display name or "inbox"), received at the given time.
func (s *Server) Add(folderName string, raw []byte, received time.Time) *Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.folderByName("", folderName)
	if f == nil {
		panic("graphmailfake: no folder " + folderName)
	}
	m := &Message{ID: s.nextID("MSG"), FolderID: f.ID, Raw: raw, Received: received.UTC()}
	if i := strings.Index(string(raw), "\r\n\r\n"); i > 0 {
		hdr := string(raw[:i])
		for line := range strings.SplitSeq(hdr, "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			switch strings.ToLower(k) {
			case "message-id":
				m.MessageID = strings.TrimSpace(v)
			case "subject":
				m.Subject = strings.TrimSpace(v)
			case "from":
				v = strings.TrimSpace(v)
				if a, b, ok := strings.Cut(v, "<"); ok && a != "" {
					v = strings.TrimSuffix(b, ">")
				}
				m.From = v
			}
		}
	}
	s.msgs = append(s.msgs, m)
	return m
}

// Messages returns copies of the messages of a folder (display name or "inbox").
func (s *Server) Messages(folderName string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.folderByName("", folderName)
	var out []Message
	for _, m := range s.msgs {
		if f != nil && m.FolderID == f.ID {
			out = append(out, *m)
		}
	}
	return out
}

// Throttle answers the next requests of an operation ("list", "value", "patch", "move") with these
// statuses and Retry-After.
func (s *Server) Throttle(op string, retryAfterSeconds int, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle[op] = append(s.throttle[op], statuses...)
	s.retryAft = retryAfterSeconds
}

// OnValue runs fn before each raw message is served.
func (s *Server) OnValue(fn func(id string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onValue = fn
}

// Calls lists the requests answered.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		if !s.authorized(sw, r) {
			s.log(r, sw.status)
			return
		}
		next.ServeHTTP(sw, r)
		s.log(r, sw.status)
	})
}

func (s *Server) log(r *http.Request, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Status: status})
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", "fake-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok || tok == "":
		graphError(w, 401, "InvalidAuthenticationToken", "Access token is empty.")
	case s.Tokens.Scope(tok) != graphScope:
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	case !strings.EqualFold(r.PathValue("user"), s.Mailbox) && !strings.EqualFold(userOf(r.URL.Path), s.Mailbox):
		graphError(w, 404, "ErrorInvalidUser", "The requested user '"+userOf(r.URL.Path)+"' is invalid.")
	default:
		return true
	}
	return false
}

func userOf(path string) string {
	rest, _ := strings.CutPrefix(path, "/v1.0/users/")
	u, _, _ := strings.Cut(rest, "/")
	return u
}

// throttled answers a scripted throttling status.
func (s *Server) throttled(w http.ResponseWriter, op string) bool {
	s.mu.Lock()
	var status int
	if q := s.throttle[op]; len(q) > 0 {
		status, s.throttle[op] = q[0], q[1:]
	}
	retry := s.retryAft
	s.mu.Unlock()
	if status == 0 {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	graphError(w, status, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
	return true
}

// folderByName finds a folder by well-known name, id or display name under parent ("" top level,
// or any level for an id). The caller holds s.mu or runs before the server starts.
func (s *Server) folderByName(parent, name string) *folder {
	for i := range s.folders {
		f := &s.folders[i]
		if f.ID == name || (parent == "" && strings.EqualFold(f.WellKnown, name)) || (f.Parent == parent && f.Name == name) {
			return f
		}
	}
	if p, c, ok := strings.Cut(name, "/"); ok && parent == "" {
		if pf := s.folderByName("", p); pf != nil {
			return s.folderByName(pf.ID, c)
		}
	}
	return nil
}

func (s *Server) folderJSON(f *folder) map[string]any {
	total, unread := 0, 0
	for _, m := range s.msgs {
		if m.FolderID == f.ID {
			total++
			if !m.IsRead {
				unread++
			}
		}
	}
	return map[string]any{"id": f.ID, "displayName": f.Name, "parentFolderId": f.Parent, "totalItemCount": total, "unreadItemCount": unread}
}

func (s *Server) getFolder(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("folder")
	var f *folder
	for i := range s.folders {
		if s.folders[i].ID == name || s.folders[i].WellKnown == name { // well-known names are lower case
			f = &s.folders[i]
		}
	}
	if f == nil {
		graphError(w, 404, "ErrorInvalidIdMalformed", "Id is malformed.")
		return
	}
	writeJSON(w, 200, s.folderJSON(f))
}

// listFolders serves mailFolders and childFolders with $filter=displayName eq '…'.
func (s *Server) listFolders(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := ""
	if id := r.PathValue("folder"); id != "" {
		p := s.folderByName("", id)
		if p == nil {
			graphError(w, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		parent = p.ID
	}
	want := ""
	if f := r.URL.Query().Get("$filter"); f != "" {
		v, ok := strings.CutPrefix(f, "displayName eq '")
		if !ok || !strings.HasSuffix(v, "'") {
			graphError(w, 400, "BadRequest", "Invalid filter clause")
			return
		}
		want = strings.ReplaceAll(strings.TrimSuffix(v, "'"), "''", "'")
	}
	var out []map[string]any
	for i := range s.folders {
		f := &s.folders[i]
		if f.Parent == parent && (want == "" || f.Name == want) {
			out = append(out, s.folderJSON(f))
		}
	}
	writeJSON(w, 200, map[string]any{"value": out})
}

// listMessages enforces what Graph enforces on messages: a $orderby property must be in $filter,
// and first in it ("InefficientFilter").
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	if s.throttled(w, "list") {
		return
	}
	q := r.URL.Query()
	filter, orderby := q.Get("$filter"), q.Get("$orderby")
	if orderby != "" {
		prop, _, _ := strings.Cut(orderby, " ")
		if !strings.HasPrefix(filter, prop) {
			graphError(w, 400, "InefficientFilter", "The restriction or sort order is too complex for this operation.")
			return
		}
	}
	unreadOnly := strings.Contains(filter, "isRead eq false")
	top, err := strconv.Atoi(q.Get("$top"))
	if err != nil || top <= 0 {
		top = 10
	}
	skip, _ := strconv.Atoi(q.Get("$skip"))
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.folderByName("", r.PathValue("folder"))
	if f == nil {
		graphError(w, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
		return
	}
	var all []*Message
	for _, m := range s.msgs {
		if m.FolderID == f.ID && (!unreadOnly || !m.IsRead) {
			all = append(all, m)
		}
	}
	slices.SortStableFunc(all, func(a, b *Message) int { return a.Received.Compare(b.Received) })
	if strings.HasSuffix(orderby, " desc") {
		slices.Reverse(all)
	}
	page := all[min(skip, len(all)):min(skip+top, len(all))]
	var value []map[string]any
	for _, m := range page {
		value = append(value, map[string]any{
			"id": m.ID, "internetMessageId": m.MessageID, "subject": m.Subject, "isRead": m.IsRead,
			"receivedDateTime": m.Received.Format(time.RFC3339),
			"from":             map[string]any{"emailAddress": map[string]string{"address": m.From}},
		})
	}
	body := map[string]any{"value": value}
	if skip+top < len(all) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$skip", strconv.Itoa(skip+top))
		body["@odata.nextLink"] = s.URL + r.URL.Path + "?" + nq.Encode()
	}
	writeJSON(w, 200, body)
}

func (s *Server) message(w http.ResponseWriter, id string) *Message {
	for _, m := range s.msgs {
		if m.ID == id {
			return m
		}
	}
	graphError(w, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
	return nil
}

func (s *Server) value(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("value") != "$value" {
		graphError(w, 400, "BadRequest", "Unsupported segment")
		return
	}
	if s.throttled(w, "value") {
		return
	}
	s.mu.Lock()
	hook := s.onValue
	m := s.message(w, r.PathValue("id"))
	var raw []byte
	if m != nil {
		raw = m.Raw
	}
	s.mu.Unlock()
	if m == nil {
		return
	}
	if hook != nil {
		hook(m.ID)
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(raw)
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request) {
	if s.throttled(w, "patch") {
		return
	}
	var body struct {
		IsRead *bool `json:"isRead"`
		Flag   *struct {
			FlagStatus string `json:"flagStatus"`
		} `json:"flag"`
	}
	data, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(data, &body); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		graphError(w, 400, "RequestBodyRead", "Cannot read the request body.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.message(w, r.PathValue("id"))
	if m == nil {
		return
	}
	if body.IsRead != nil {
		m.IsRead = *body.IsRead
	}
	if body.Flag != nil {
		m.Flagged = body.Flag.FlagStatus == "flagged"
	}
	writeJSON(w, 200, map[string]any{"id": m.ID, "isRead": m.IsRead})
}

// move gives the message a new id in the destination, as Graph does.
func (s *Server) move(w http.ResponseWriter, r *http.Request) {
	if s.throttled(w, "move") {
		return
	}
	var body struct {
		DestinationID string `json:"destinationId"`
	}
	data, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(data, &body); err != nil || body.DestinationID == "" {
		graphError(w, 400, "ErrorInvalidRequest", "destinationId is required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.message(w, r.PathValue("id"))
	if m == nil {
		return
	}
	dest := s.folderByName("", body.DestinationID)
	if dest == nil {
		graphError(w, 404, "ErrorItemNotFound", "The destination folder was not found.")
		return
	}
	m.FolderID = dest.ID
	m.ID = s.nextID("MSG")
	writeJSON(w, 201, map[string]any{"id": m.ID, "parentFolderId": dest.ID})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

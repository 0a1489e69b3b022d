package mailbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/oauth"
	"github.com/figurative/figsupport/internal/rest"
)

// DefaultGraphBaseURL is Microsoft Graph's host; requests add /v1.0.
const DefaultGraphBaseURL = "https://graph.microsoft.com"

// GraphConfig is the Graph source's set-up. Its calls go through the shared HTTP core
// (internal/rest): the token on each attempt, 429/503/504 retried after Retry-After, errors decoded
// into a *GraphError.
type GraphConfig struct {
	Mailbox string // MAIL_GRAPH_MAILBOX: the mailbox read (users/{mailbox})
	BaseURL string // GRAPH_BASE_URL, default DefaultGraphBaseURL
	// Timeout bounds each JSON request (and the headers of a raw message); default 30 s. A raw
	// message's body is bounded by the pass's context only.
	Timeout    time.Duration
	PageSize   int // $top of a listing page; default 50
	HTTPClient *http.Client
}

type graphSource struct {
	cfg       GraphConfig
	base      string
	user      string
	folder    string
	processed string
	rejected  string
	tokens    *oauth.TokenSource
	api       rest.Client
}

func newGraph(c Config) (*graphSource, error) {
	cfg := c.Graph
	user := strings.TrimSpace(cfg.Mailbox)
	if user == "" {
		return nil, configErr("MAIL_GRAPH_MAILBOX", "empty")
	}
	base := strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/")
	if base == "" {
		base = DefaultGraphBaseURL
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, configErr("GRAPH_BASE_URL", "want an http(s) URL, got %q", cfg.BaseURL)
	}
	t, err := oauth.New(c.OAuth, oauth.ScopeGraph)
	if err != nil {
		return nil, configErr("OAUTH_CLIENT_ID", "MAIL_SOURCE=graph needs the app registration: %v", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 50
	}
	hc := cfg.HTTPClient
	if hc == nil {
		// No overall timeout: a large raw message streams for as long as it takes; the headers
		// are bounded, and every request by its context.
		hc = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout, IdleConnTimeout: 90 * time.Second,
		}}
	}
	retry := backoff.Default
	if c.Retry != nil {
		retry = *c.Retry
	}
	g := &graphSource{cfg: cfg, base: base, user: user, folder: c.Folder, processed: c.ProcessedFolder,
		rejected: c.RejectedFolder, tokens: t}
	g.api = rest.Client{
		Service: "graph", BaseURL: base, HTTP: hc, Retry: retry,
		Authorize:     t.Authorize,
		CheckResponse: checkGraph,
		Sleep:         c.Sleep,
	}
	return g, nil
}

func (g *graphSource) kind() string { return SourceGraph }
func (g *graphSource) name() string { return g.user + "/" + g.folder }

// GraphError is a Graph answer other than the expected 2xx.
type GraphError struct {
	Op         string // what was asked: list messages, get message, mark read…
	Status     int
	Code       string // error.code, e.g. ErrorAccessDenied
	Message    string // error.message
	RequestID  string // request-id header, for Microsoft support
	RetryAfter time.Duration
}

// Credentials reports a refused token or permission (401, 403): the CLI exits 4 on it.
func (e *GraphError) Credentials() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

func (e *GraphError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %s: %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request-id %s)", e.RequestID)
	}
	if e.Credentials() {
		b.WriteString(" — the app needs the Mail.ReadWrite application permission with admin consent, and access to MAIL_GRAPH_MAILBOX (application access policy or RBAC for Applications)")
	}
	return b.String()
}

// Temporary reports Graph's throttling answers (429, 503, 504): given before anything is done,
// they are retried after Retry-After. Anything else is not.
func (e *GraphError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
}

// Refused: a throttling answer did nothing, so even a move may be repeated.
func (e *GraphError) Refused() bool { return e.Temporary() }

// RateLimited reports a 429.
func (e *GraphError) RateLimited() bool { return e.Status == http.StatusTooManyRequests }

// RetryHint is Graph's Retry-After.
func (e *GraphError) RetryHint() time.Duration { return e.RetryAfter }

// checkGraph is Graph's error body ({"error": {"code", "message"}}) as a *GraphError.
func checkGraph(req *rest.Request, resp *http.Response, data []byte) error {
	e := &GraphError{Op: req.Op, Status: resp.StatusCode, RequestID: resp.Header.Get("request-id"), RetryAfter: rest.RetryAfter(resp.Header, time.Now())}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	}
	return e
}

// getJSON decodes the answer to a GET of path (below the base URL, query included) into v. Each
// attempt's wait for the answer is bounded by the transport (Timeout); throttling is waited out.
func (g *graphSource) getJSON(ctx context.Context, op, path string, v any) error {
	return g.api.Do(ctx, &rest.Request{Method: http.MethodGet, Path: path, Op: op, Idempotent: true}, v)
}

// send sends a change (mark read, flag, move). A move is not idempotent: only throttling, which
// did nothing, is retried; a failure whose outcome is unknown leaves the message for the next
// pass, whose journal replays it.
func (g *graphSource) send(ctx context.Context, op, method, path string, body any, idempotent bool) error {
	return g.api.Do(ctx, &rest.Request{Method: method, Path: path, Op: op, Body: body, Idempotent: idempotent}, nil)
}

// userPath is the mailbox's path below the base URL.
func (g *graphSource) userPath() string { return "/v1.0/users/" + url.PathEscape(g.user) }

// wellKnown are Graph's well-known folder names, usable in place of an id.
var wellKnown = map[string]bool{
	"archive": true, "clutter": true, "conflicts": true, "conversationhistory": true, "deleteditems": true,
	"drafts": true, "inbox": true, "junkemail": true, "localfailures": true, "msgfolderroot": true,
	"outbox": true, "recoverableitemsdeletions": true, "scheduled": true, "searchfolders": true,
	"sentitems": true, "serverfailures": true, "syncissues": true,
}

type graphFolder struct {
	ID              string `json:"id"`
	DisplayName     string `json:"displayName"`
	TotalItemCount  int    `json:"totalItemCount"`
	UnreadItemCount int    `json:"unreadItemCount"`
}

// resolveFolder turns a folder path ("inbox", "Inbox/Support", "Traités") into the folder: the
// first segment a well-known name or a top-level display name, each next one a child's display name.
func (g *graphSource) resolveFolder(ctx context.Context, key, path string) (graphFolder, error) {
	const sel = "$select=id,displayName,totalItemCount,unreadItemCount"
	var cur graphFolder
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range segs {
		seg = strings.TrimSpace(seg)
		if i == 0 && wellKnown[strings.ToLower(seg)] {
			err := g.getJSON(ctx, "get folder "+seg, g.userPath()+"/mailFolders/"+strings.ToLower(seg)+"?"+sel, &cur)
			if err != nil {
				return cur, g.folderErr(key, path, err)
			}
			continue
		}
		parent := g.userPath() + "/mailFolders"
		if i > 0 {
			parent += "/" + url.PathEscape(cur.ID) + "/childFolders"
		}
		q := url.Values{"$filter": {"displayName eq '" + strings.ReplaceAll(seg, "'", "''") + "'"}}
		var page struct {
			Value []graphFolder `json:"value"`
		}
		if err := g.getJSON(ctx, "find folder "+seg, parent+"?"+q.Encode()+"&"+sel, &page); err != nil {
			return cur, g.folderErr(key, path, err)
		}
		if len(page.Value) == 0 {
			return cur, &FolderError{Key: key, Folder: path, Err: fmt.Errorf("no folder %q in %s's mailbox", seg, g.user)}
		}
		cur = page.Value[0]
	}
	return cur, nil
}

func (g *graphSource) folderErr(key, path string, err error) error {
	var ge *GraphError
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound && ge.Code != "ErrorInvalidUser" && ge.Code != "MailboxNotEnabledForRESTAPI" {
		return &FolderError{Key: key, Folder: path, Err: err}
	}
	return err
}

type graphSession struct {
	g                   *graphSource
	folder              graphFolder
	processed, rejected string // folder ids
}

func (g *graphSource) open(ctx context.Context, readOnly bool) (session, error) {
	s := &graphSession{g: g}
	var err error
	if s.folder, err = g.resolveFolder(ctx, "MAIL_FOLDER", g.folder); err != nil {
		return nil, err
	}
	if readOnly {
		return s, nil
	}
	// The targets are resolved before any message is handed over: a typo fails the pass at once
	// rather than after the first message was processed.
	if g.processed != "" {
		f, err := g.resolveFolder(ctx, "MAIL_PROCESSED_FOLDER", g.processed)
		if err != nil {
			return nil, err
		}
		s.processed = f.ID
	}
	if g.rejected != "" {
		f, err := g.resolveFolder(ctx, "MAIL_REJECTED_FOLDER", g.rejected)
		if err != nil {
			return nil, err
		}
		s.rejected = f.ID
	}
	return s, nil
}

func (s *graphSession) close() error       { return nil }
func (s *graphSession) generation() string { return s.folder.ID }

type graphMessage struct {
	ID                string    `json:"id"`
	InternetMessageID string    `json:"internetMessageId"`
	Subject           string    `json:"subject"`
	ReceivedDateTime  time.Time `json:"receivedDateTime"`
	From              *struct {
		EmailAddress struct {
			Address string `json:"address"`
		} `json:"emailAddress"`
	} `json:"from"`
}

// maxListPages bounds how far a pass pages through unread messages looking for new ones.
const maxListPages = 50

// list pages through the unread messages, oldest first. Graph refuses a $orderby property absent
// from $filter (or not first in it), hence the receivedDateTime clause that matches everything.
func (s *graphSession) list(ctx context.Context, limit int, retry func(string) bool) ([]Message, bool, error) {
	g := s.g
	q := url.Values{
		"$filter":  {"receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false"},
		"$orderby": {"receivedDateTime asc"},
		"$select":  {"id,internetMessageId,subject,from,receivedDateTime"},
		"$top":     {strconv.Itoa(min(g.cfg.PageSize, 1000))},
	}
	next := g.userPath() + "/mailFolders/" + url.PathEscape(s.folder.ID) + "/messages?" + q.Encode()
	var all []Message
	fresh := 0
	for page := 0; next != "" && fresh < limit && page < maxListPages; page++ {
		var body struct {
			Value    []graphMessage `json:"value"`
			NextLink string         `json:"@odata.nextLink"`
		}
		if err := g.getJSON(ctx, "list messages", next, &body); err != nil {
			return nil, false, err
		}
		for _, m := range body.Value {
			msg := Message{ID: m.ID, MessageID: m.InternetMessageID, Subject: m.Subject, Date: m.ReceivedDateTime}
			if m.From != nil {
				msg.From = m.From.EmailAddress.Address
			}
			all = append(all, msg)
			if retry == nil || !retry(m.ID) {
				fresh++
			}
		}
		next = ""
		if body.NextLink != "" {
			// The next link carries the token's audience: follow it only to the same Graph host.
			tail, ok := strings.CutPrefix(body.NextLink, g.base+"/")
			if !ok {
				return nil, false, fmt.Errorf("graph list messages: @odata.nextLink %q is not under GRAPH_BASE_URL", body.NextLink)
			}
			next = "/" + tail
		}
	}
	ids := make([]string, len(all))
	byID := make(map[string]Message, len(all))
	for i, m := range all {
		ids[i] = m.ID
		byID[m.ID] = m
	}
	picked, more := pick(ids, limit, retry)
	out := make([]Message, len(picked))
	for i, id := range picked {
		out[i] = byID[id]
	}
	return out, more || next != "", nil
}

func (s *graphSession) msgPath(id string) string {
	return s.g.userPath() + "/messages/" + url.PathEscape(id)
}

// fetch streams the raw MIME message (/$value) to fn.
func (s *graphSession) fetch(ctx context.Context, id string, fn func(io.Reader) error) error {
	// A large message streams for as long as it takes, within the pass's context.
	err := s.g.api.Do(ctx, &rest.Request{Method: http.MethodGet, Path: s.msgPath(id) + "/$value", Op: "get message",
		Idempotent: true, Stream: fn}, nil)
	var ge *GraphError
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
		return errGone
	}
	return err
}

func (s *graphSession) done(ctx context.Context, id string) (string, error) {
	if s.processed != "" {
		return "moved to " + s.g.processed, s.move(ctx, id, s.processed)
	}
	return "seen", s.g.send(ctx, "mark read", http.MethodPatch, s.msgPath(id), map[string]any{"isRead": true}, true)
}

func (s *graphSession) reject(ctx context.Context, id string) (string, error) {
	if s.rejected != "" {
		return "moved to " + s.g.rejected, s.move(ctx, id, s.rejected)
	}
	return "flagged", s.g.send(ctx, "flag", http.MethodPatch, s.msgPath(id),
		map[string]any{"isRead": true, "flag": map[string]string{"flagStatus": "flagged"}}, true)
}

func (s *graphSession) move(ctx context.Context, id, dest string) error {
	return s.g.send(ctx, "move message", http.MethodPost, s.msgPath(id)+"/move", map[string]string{"destinationId": dest}, false)
}

// check gets a token and resolves the folders; nothing is changed.
func (g *graphSource) check(ctx context.Context) []health.Check {
	tok := health.Check{Service: "mailbox", Name: "graph token"}
	if _, err := g.tokens.Token(ctx); err != nil {
		tok.Status, tok.Detail = health.Fail, err.Error()+" — check OAUTH_TENANT_ID, OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET"
		return []health.Check{tok}
	}
	tok.Status, tok.Detail = health.OK, "client credentials accepted"
	out := []health.Check{tok}
	f, err := g.resolveFolder(ctx, "MAIL_FOLDER", g.folder)
	ck := health.Check{Service: "mailbox", Name: "folder " + g.folder}
	if err != nil {
		ck.Status, ck.Detail = health.Fail, err.Error()
		return append(out, ck)
	}
	ck.Status = health.OK
	ck.Detail = fmt.Sprintf("%s's %s: %d message(s), %d unread", g.user, f.DisplayName, f.TotalItemCount, f.UnreadItemCount)
	out = append(out, ck)
	for _, t := range []struct{ key, name string }{{"MAIL_PROCESSED_FOLDER", g.processed}, {"MAIL_REJECTED_FOLDER", g.rejected}} {
		if t.name == "" {
			continue
		}
		ck := health.Check{Service: "mailbox", Name: "folder " + t.name + " (" + t.key + ")", Status: health.OK, Detail: "exists"}
		if _, err := g.resolveFolder(ctx, t.key, t.name); err != nil {
			ck.Status, ck.Detail = health.Fail, err.Error()
		}
		out = append(out, ck)
	}
	return out
}

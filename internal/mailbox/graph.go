package mailbox

import (
	"bytes"
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
)

// DefaultGraphBaseURL is Microsoft Graph's host; requests add /v1.0.
const DefaultGraphBaseURL = "https://graph.microsoft.com"

// GraphConfig is the Graph source's set-up. Its HTTP code is small and self-contained (one do
// method: token, retries of 429/503/504 with Retry-After, error decoding) so that it can move onto
// a shared HTTP core later.
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
	hc        *http.Client
	retry     backoff.Policy
	sleep     func(context.Context, time.Duration) error
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
	return &graphSource{cfg: cfg, base: base, user: user, folder: c.Folder, processed: c.ProcessedFolder,
		rejected: c.RejectedFolder, tokens: t, hc: hc, retry: retry, sleep: backoff.Sleep}, nil
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

func (e *GraphError) retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
}

// do sends one request, retrying throttling (429, 503, 504: Graph answers them before doing
// anything) after Retry-After within the backoff policy. On a 2xx it returns the open response and
// a cancel function that ends the request's own deadline (stream=false); the caller closes both.
func (g *graphSource) do(ctx context.Context, op, method, target string, body any, stream bool) (*http.Response, context.CancelFunc, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, nil, fmt.Errorf("graph %s: %w", op, err)
		}
	}
	attempts := max(1, g.retry.Attempts)
	for attempt := 1; ; attempt++ {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !stream {
			rctx, cancel = context.WithTimeout(ctx, g.cfg.Timeout)
		}
		resp, err := g.once(rctx, op, method, target, payload)
		if err == nil {
			return resp, cancel, nil
		}
		cancel()
		var ge *GraphError
		if !errors.As(err, &ge) || !ge.retryable() || attempt >= attempts || ctx.Err() != nil {
			if errors.As(err, &ge) && ge.retryable() && attempt > 1 {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return nil, nil, err
		}
		if serr := g.sleep(ctx, g.retry.Delay(attempt, ge.RetryAfter)); serr != nil {
			return nil, nil, fmt.Errorf("graph %s: %w", op, errors.Join(serr, ge))
		}
	}
}

func (g *graphSource) once(ctx context.Context, op, method, target string, payload []byte) (*http.Response, error) {
	tok, err := g.tokens.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", op, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &GraphError{Op: op, Status: resp.StatusCode, RequestID: resp.Header.Get("request-id")}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
		e.RetryAfter = max(time.Duration(s)*time.Second, time.Millisecond)
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	}
	return nil, e
}

// getJSON decodes a JSON answer into v.
func (g *graphSource) getJSON(ctx context.Context, op, target string, v any) error {
	resp, cancel, err := g.do(ctx, op, http.MethodGet, target, nil, false)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("graph %s: decode: %w", op, err)
	}
	return nil
}

func (g *graphSource) send(ctx context.Context, op, method, target string, body any) error {
	resp, cancel, err := g.do(ctx, op, method, target, body, false)
	if err != nil {
		return err
	}
	defer cancel()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.Body.Close()
}

func (g *graphSource) userURL() string { return g.base + "/v1.0/users/" + url.PathEscape(g.user) }

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
			err := g.getJSON(ctx, "get folder "+seg, g.userURL()+"/mailFolders/"+strings.ToLower(seg)+"?"+sel, &cur)
			if err != nil {
				return cur, g.folderErr(key, path, err)
			}
			continue
		}
		parent := g.userURL() + "/mailFolders"
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
	next := g.userURL() + "/mailFolders/" + url.PathEscape(s.folder.ID) + "/messages?" + q.Encode()
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
		next = body.NextLink
		// The next link carries the token's audience: follow it only to the same Graph host.
		if next != "" && !strings.HasPrefix(next, g.base+"/") {
			return nil, false, fmt.Errorf("graph list messages: @odata.nextLink %q is not under GRAPH_BASE_URL", next)
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

func (s *graphSession) msgURL(id string) string {
	return s.g.userURL() + "/messages/" + url.PathEscape(id)
}

// fetch streams the raw MIME message (/$value) to fn.
func (s *graphSession) fetch(ctx context.Context, id string, fn func(io.Reader) error) error {
	resp, cancel, err := s.g.do(ctx, "get message", http.MethodGet, s.msgURL(id)+"/$value", nil, true)
	var ge *GraphError
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
		return errGone
	}
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	return fn(resp.Body)
}

func (s *graphSession) done(ctx context.Context, id string) (string, error) {
	if s.processed != "" {
		return "moved to " + s.g.processed, s.move(ctx, id, s.processed)
	}
	return "seen", s.g.send(ctx, "mark read", http.MethodPatch, s.msgURL(id), map[string]any{"isRead": true})
}

func (s *graphSession) reject(ctx context.Context, id string) (string, error) {
	if s.rejected != "" {
		return "moved to " + s.g.rejected, s.move(ctx, id, s.rejected)
	}
	return "flagged", s.g.send(ctx, "flag", http.MethodPatch, s.msgURL(id),
		map[string]any{"isRead": true, "flag": map[string]string{"flagStatus": "flagged"}})
}

func (s *graphSession) move(ctx context.Context, id, dest string) error {
	return s.g.send(ctx, "move message", http.MethodPost, s.msgURL(id)+"/move", map[string]string{"destinationId": dest})
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

package clickup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/chain"
)

var _ chain.Tasks = (*Tasks)(nil)

// Task is the part of a ClickUp task this package reads.
type Task struct {
	ID                  string  `json:"id"`
	Name                string  `json:"name"`
	Description         string  `json:"description"`
	TextContent         string  `json:"text_content"`
	MarkdownDescription string  `json:"markdown_description"`
	URL                 string  `json:"url"`
	DateCreated         string  `json:"date_created"` // Unix milliseconds, as a string
	Parent              *string `json:"parent"`
	Creator             struct {
		ID int64 `json:"id"`
	} `json:"creator"`
	List struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"list"`
	Subtasks []Task `json:"subtasks"`
}

// Created is date_created as a time, zero when absent.
func (t Task) Created() time.Time {
	ms, err := strconv.ParseInt(t.DateCreated, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Markdown is the task's description, in Markdown when ClickUp returned it.
func (t Task) Markdown() string {
	if t.MarkdownDescription != "" {
		return t.MarkdownDescription
	}
	if t.TextContent != "" {
		return t.TextContent
	}
	return t.Description
}

// TaskURL is the web link of a task when the API did not give one.
func TaskURL(id string) string { return "https://app.clickup.com/t/" + url.PathEscape(id) }

// GetTask reads one task, its description in Markdown; with subtasks when asked.
func (c *Client) GetTask(ctx context.Context, id string, withSubtasks bool) (Task, error) {
	if id == "" {
		return Task{}, errors.New("clickup: empty task id")
	}
	q := url.Values{"include_markdown_description": {"true"}}
	if withSubtasks {
		q.Set("include_subtasks", "true")
	}
	var t Task
	err := c.api.Get(ctx, "/api/v2/task/"+url.PathEscape(id), q, &t)
	return t, err
}

// User is the token's owner.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
}

// AuthorizedUser is GET /api/v2/user: who the token belongs to.
func (c *Client) AuthorizedUser(ctx context.Context) (User, error) {
	var out struct {
		User User `json:"user"`
	}
	err := c.api.Get(ctx, "/api/v2/user", nil, &out)
	return out.User, err
}

// Tasks keeps the support subtasks under one parent task. It implements chain.Tasks.
type Tasks struct {
	*Client
	parent string
	memo   Memo

	mu     sync.Mutex
	listID string
	userID int64
}

// NewTasks returns the task backend for cfg; CLICKUP_PARENT_TASK_ID is required.
func NewTasks(cfg Config) (*Tasks, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	parent := strings.TrimSpace(cfg.ParentTaskID)
	if parent == "" {
		return nil, errors.New("clickup: CLICKUP_PARENT_TASK_ID is empty")
	}
	return &Tasks{Client: c, parent: parent, memo: cfg.Memo}, nil
}

// Parent is the configured parent task id.
func (t *Tasks) Parent() string { return t.parent }

func (t *Tasks) memoKey() string { return "clickup.list_id." + t.parent }

// ListID is the parent's list, read once and then remembered (in memory and in the Memo).
func (t *Tasks) ListID(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listID != "" {
		return t.listID, nil
	}
	if t.memo != nil {
		// A broken memo only costs one GET: read through it.
		if v, ok, err := t.memo.Get(ctx, t.memoKey()); err == nil && ok && v != "" {
			t.listID = v
			return v, nil
		}
	}
	p, err := t.GetTask(ctx, t.parent, false)
	if err != nil {
		return "", fmt.Errorf("read parent task %s: %w", t.parent, err)
	}
	if p.List.ID == "" {
		return "", fmt.Errorf("clickup: parent task %s has no list id", t.parent)
	}
	t.listID = p.List.ID
	if t.memo != nil {
		_ = t.memo.Put(ctx, t.memoKey(), p.List.ID)
	}
	return t.listID, nil
}

// me is the token owner's id, read once; 0 when it cannot be read (the duplicate check then
// matches on name, time and marker only).
func (t *Tasks) me(ctx context.Context) int64 {
	t.mu.Lock()
	id := t.userID
	t.mu.Unlock()
	if id != 0 {
		return id
	}
	u, err := t.AuthorizedUser(ctx)
	if err != nil {
		return 0
	}
	t.mu.Lock()
	t.userID = u.ID
	t.mu.Unlock()
	return u.ID
}

type createBody struct {
	Name            string `json:"name"`
	Parent          string `json:"parent"`
	MarkdownContent string `json:"markdown_content"`
}

type updateBody struct {
	MarkdownContent string `json:"markdown_content"`
}

// refPrefix starts the line that marks a subtask as made by one CreateSubtask call, or a block as
// appended by one request, so that a write whose answer was lost is recognised instead of repeated.
const refPrefix = "figsupport-ref: "

// newRef is the marker of one subtask: derived from the request's key when there is one, so that
// a later run of the same request recognises the subtask an interrupted run created; random else.
func newRef(requestRef string) string {
	if requestRef != "" {
		sum := sha256.Sum256([]byte("figsupport-subtask\x00" + requestRef))
		return hex.EncodeToString(sum[:8])
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CreateSubtask creates a subtask of the parent. A create whose outcome is unknown (timeout, lost
// answer, 5xx) is looked for among the parent's subtasks before the rest core sends it again, so a
// retry never makes a second subtask; so is one an earlier run may have made (in.MayExistSince).
func (t *Tasks) CreateSubtask(ctx context.Context, in chain.SubtaskInput) (chain.Subtask, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return chain.Subtask{}, errors.New("clickup: subtask name is empty")
	}
	listID, err := t.ListID(ctx)
	if err != nil {
		return chain.Subtask{}, err
	}
	ref := newRef(in.Ref)
	if !in.MayExistSince.IsZero() {
		found, ok, err := t.findCreated(ctx, name, ref, in.MayExistSince.Add(-time.Minute))
		if err != nil {
			return chain.Subtask{}, fmt.Errorf("create subtask %q: look for an earlier attempt: %w", name, err)
		}
		if ok {
			return subtaskOf(found), nil
		}
	}
	body := createBody{Name: name, Parent: t.parent, MarkdownContent: withRef(in.Markdown, ref)}
	// Tasks created before this call are never ours; a minute of slack covers clock skew.
	since := t.now().Add(-time.Minute)
	var task Task
	lookup := func(ctx context.Context) (bool, error) {
		found, ok, err := t.findCreated(ctx, name, ref, since)
		if ok {
			task = found
		}
		return ok, err
	}
	if err := t.api.Create(ctx, "/api/v2/list/"+url.PathEscape(listID)+"/task", body, &task, lookup); err != nil {
		return chain.Subtask{}, fmt.Errorf("create subtask %q: %w", name, err)
	}
	return subtaskOf(task), nil
}

func withRef(markdown, ref string) string {
	markdown = strings.TrimRight(markdown, "\n")
	if markdown != "" {
		markdown += "\n\n"
	}
	return markdown + "`" + refPrefix + ref + "`\n"
}

// findCreated looks among the parent's subtasks for the one an earlier attempt created: same name,
// created by us since the call began, and carrying our marker when its description can be read.
func (t *Tasks) findCreated(ctx context.Context, name, ref string, since time.Time) (Task, bool, error) {
	p, err := t.GetTask(ctx, t.parent, true)
	if err != nil {
		return Task{}, false, err
	}
	me := t.me(ctx)
	for _, s := range p.Subtasks {
		if s.Name != name {
			continue
		}
		if me != 0 && s.Creator.ID != 0 && s.Creator.ID != me {
			continue
		}
		if c := s.Created(); !c.IsZero() && c.Before(since) {
			continue
		}
		full, err := t.GetTask(ctx, s.ID, false)
		if err != nil {
			return Task{}, false, err
		}
		if strings.Contains(full.Markdown(), ref) {
			return full, true, nil
		}
	}
	return Task{}, false, nil
}

// AppendSubtask adds markdown at the end of the subtask's description, keeping what was there.
// With a ref, the block ends with a marker derived from it, and a description that already holds
// that marker anywhere gets nothing: a PUT that landed while its answer was lost is not repeated,
// even after other blocks were appended since. Without a ref, only an identical last block is
// taken for a repeat.
func (t *Tasks) AppendSubtask(ctx context.Context, id, markdown, ref string) (chain.Subtask, error) {
	cur, err := t.GetTask(ctx, id, false)
	if err != nil {
		return chain.Subtask{}, fmt.Errorf("read subtask %s: %w", id, err)
	}
	add := strings.TrimSpace(markdown)
	old := strings.TrimRight(cur.Markdown(), "\n")
	switch {
	case add == "":
		return subtaskOf(cur), nil
	case ref != "":
		marker := chain.BlockMarker(ref)
		if strings.Contains(old, marker) {
			return subtaskOf(cur), nil
		}
		add += "\n\n" + marker
	case strings.HasSuffix(old, add):
		return subtaskOf(cur), nil
	}
	next := add
	if old != "" {
		next = old + "\n\n---\n\n" + add
	}
	// PUT replaces the whole description, so repeating it after a lost answer writes the same text.
	return t.UpdateDescription(ctx, id, next)
}

// UpdateDescription replaces the subtask's description with markdown.
func (t *Tasks) UpdateDescription(ctx context.Context, id, markdown string) (chain.Subtask, error) {
	if id == "" {
		return chain.Subtask{}, errors.New("clickup: empty task id")
	}
	var task Task
	if err := t.api.Send(ctx, http.MethodPut, "/api/v2/task/"+url.PathEscape(id), updateBody{MarkdownContent: markdown}, &task); err != nil {
		return chain.Subtask{}, fmt.Errorf("update subtask %s: %w", id, err)
	}
	if task.ID == "" {
		task.ID = id
	}
	return subtaskOf(task), nil
}

// SubtaskURL is the subtask's page in ClickUp.
func (t *Tasks) SubtaskURL(id string) string { return TaskURL(id) }

func subtaskOf(t Task) chain.Subtask {
	u := t.URL
	if u == "" {
		u = TaskURL(t.ID)
	}
	return chain.Subtask{ID: t.ID, URL: u}
}

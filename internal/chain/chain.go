package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/payload"
)

// Journal is what the chain needs of the journal (see package journal).
type Journal interface {
	Record(ctx context.Context, key, hash, email string, request any, ttl time.Duration) error
	Lock(ctx context.Context, name string) (unlock func(), err error)
	Begin(ctx context.Context, key, hash, email string, request any, ttl time.Duration, force bool) (*journal.Run, error)
	SaveStep(ctx context.Context, run *journal.Run, step string, v any) error
	Finish(ctx context.Context, run *journal.Run, status string, response any, errText string) error
	MemoGet(ctx context.Context, key string) (string, bool, error)
	MemoPut(ctx context.Context, key, value string) error
}

// Deps are the backends; cmd/ picks them.
type Deps struct {
	CRM        CRM
	Tasks      Tasks
	Files      Files
	Notifier   Notifier
	Classifier Classifier
	Journal    Journal
	Log        *slog.Logger
}

// Options are the chain's policy.
type Options struct {
	OpenStages []string      // stages of an open ticket; default 1,2
	Window     time.Duration // a follow-up joins a ticket active this recently; default 14 days
	KeyTTL     time.Duration // how long an explicit request_id is remembered; default 7 days
	HashTTL    time.Duration // how long a payload hash is remembered; default 24 hours
}

// DefaultOptions are the seed's rules.
var DefaultOptions = Options{
	OpenStages: []string{"1", "2"},
	Window:     14 * 24 * time.Hour,
	KeyTTL:     7 * 24 * time.Hour,
	HashTTL:    24 * time.Hour,
}

// RunOptions change one run.
type RunOptions struct {
	Force bool // start a new run even if the key was seen
}

// ErrConflict is returned when a request reuses an idempotency key with another payload.
var ErrConflict = journal.ErrConflict

// StepError says which step of the chain failed; the request stays in the journal to be retried.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Chain runs requests.
type Chain struct {
	d Deps
	o Options
}

// New returns a chain; zero options take their defaults.
func New(d Deps, o Options) *Chain {
	if len(o.OpenStages) == 0 {
		o.OpenStages = DefaultOptions.OpenStages
	}
	if o.Window <= 0 {
		o.Window = DefaultOptions.Window
	}
	if o.KeyTTL <= 0 {
		o.KeyTTL = DefaultOptions.KeyTTL
	}
	if o.HashTTL <= 0 {
		o.HashTTL = DefaultOptions.HashTTL
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Chain{d: d, o: o}
}

// Step names in the journal.
const (
	stepClassify    = "classify"
	stepUpload      = "upload"
	stepContact     = "contact"
	stepThread      = "thread"
	stepTicket      = "ticket"
	stepNote        = "note"
	stepFileURLs    = "files_urls"
	stepSubtask     = "subtask"
	stepSubtaskLink = "subtask_link"
	stepNotify      = "notify"
)

type ticketStep struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	New       bool   `json:"new"`
	SubtaskID string `json:"subtask_id,omitempty"` // the existing subtask of a found ticket
}

func memoTicketKey(contactID string) string { return "chain:contact-ticket:" + contactID }

// Process runs req through the chain. A request whose key was processed already answers from the
// journal with Replayed set; an unfinished one resumes after its last completed step.
func (c *Chain) Process(ctx context.Context, req *payload.Request, ro RunOptions) (*payload.Response, error) {
	key, hash := req.Key(), req.Hash()
	ttl := c.o.HashTTL
	if req.RequestID != "" {
		ttl = c.o.KeyTTL
	}
	// Written down before waiting for the contact's lock: once Process has been called and this
	// returned, the request survives a crash (the retry loop finds it queued).
	if !ro.Force {
		if err := c.d.Journal.Record(ctx, key, hash, req.UserEmail, req, ttl); err != nil {
			return nil, err
		}
	}
	unlock, err := c.d.Journal.Lock(ctx, req.UserEmail)
	if err != nil {
		return nil, err
	}
	defer unlock()

	run, err := c.d.Journal.Begin(ctx, key, hash, req.UserEmail, req, ttl, ro.Force)
	if err != nil {
		return nil, err
	}
	if run.Replay {
		var resp payload.Response
		if err := json.Unmarshal(run.Response, &resp); err != nil {
			return nil, fmt.Errorf("journal: stored response of %s: %w", key, err)
		}
		resp.Replayed = true
		return &resp, nil
	}
	if run.Attempts > 1 {
		// Resume with the request as first recorded: its received_at is the customer's, not now.
		var stored payload.Request
		if err := json.Unmarshal(run.Request, &stored); err == nil {
			req = &stored
		}
		c.d.Log.Info("resuming request", "request_id", key, "attempt", run.Attempts, "done_steps", len(run.Steps))
	}

	r := &runner{c: c, run: run, req: req, resp: &payload.Response{RequestID: key, Files: []payload.StoredFile{}, Warnings: []string{}}}
	runErr := r.execute(ctx)
	// Record the outcome even when ctx was cancelled: the next run must know where this one stopped.
	fctx := context.WithoutCancel(ctx)
	if runErr != nil {
		if err := c.d.Journal.Finish(fctx, run, journal.StatusFailed, nil, runErr.Error()); err != nil {
			c.d.Log.Error("journal", "err", err)
		}
		return nil, runErr
	}
	status := journal.StatusDone
	if r.resp.Status == payload.StatusIncomplete {
		status = journal.StatusIncomplete
	}
	if err := c.d.Journal.Finish(fctx, run, status, r.resp, firstOr(r.resp.Warnings)); err != nil {
		return nil, err
	}
	return r.resp, nil
}

func firstOr(w []string) string {
	if len(w) == 0 {
		return ""
	}
	return w[0]
}

type runner struct {
	c    *Chain
	run  *journal.Run
	req  *payload.Request
	resp *payload.Response
	mu   sync.Mutex // guards resp.Warnings and journal saves from concurrent steps
}

// step runs fn unless step already completed in an earlier run; its result is recorded in the
// journal as soon as it is known, before anything depends on it.
func step[T any](ctx context.Context, r *runner, name string, fn func(context.Context) (T, error)) (T, error) {
	var v T
	r.mu.Lock()
	done, err := r.run.Step(name, &v)
	r.mu.Unlock()
	if err != nil || done {
		if done {
			r.c.d.Log.Debug("step already done", "step", name, "request_id", r.run.Key)
		}
		return v, err
	}
	start := time.Now()
	v, err = fn(ctx)
	if err != nil {
		r.c.d.Log.Debug("step failed", "step", name, "request_id", r.run.Key, "duration", time.Since(start), "err", err)
		return v, &StepError{Step: name, Err: err}
	}
	r.c.d.Log.Debug("step done", "step", name, "request_id", r.run.Key, "duration", time.Since(start))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.c.d.Journal.SaveStep(context.WithoutCancel(ctx), r.run, name, v); err != nil {
		return v, &StepError{Step: name, Err: err}
	}
	return v, nil
}

// mayExistSince is when this request's first run began, for a resumed run: a create step it did
// not record may still have happened, and the backend looks for it before creating again.
func (r *runner) mayExistSince() time.Time {
	if r.run.Attempts > 1 {
		return r.run.CreatedAt
	}
	return time.Time{}
}

func (r *runner) warn(step string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.c.d.Log.Warn("step failed", "step", step, "request_id", r.run.Key, "err", err)
	r.resp.Warnings = append(r.resp.Warnings, step+": "+err.Error())
}

func (r *runner) execute(ctx context.Context) error {
	d := r.c.d
	req := r.req
	var (
		cls     classify.Result
		files   []payload.StoredFile
		contact Contact
	)
	// Classification, uploads and the contact look-up do not depend on each other.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		cls, err = step(gctx, r, stepClassify, func(ctx context.Context) (classify.Result, error) {
			return d.Classifier.Classify(ctx, req), nil
		})
		return err
	})
	if len(req.Fichiers) > 0 {
		g.Go(func() (err error) {
			files, err = step(gctx, r, stepUpload, func(ctx context.Context) ([]payload.StoredFile, error) {
				return d.Files.Upload(ctx, r.run.Key, req.ReceivedAt, req.Fichiers)
			})
			return err
		})
	}
	g.Go(func() (err error) {
		contact, err = step(gctx, r, stepContact, func(ctx context.Context) (Contact, error) {
			return d.CRM.FindOrCreateContact(ctx, req.UserEmail, req.UserName)
		})
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	urls := make([]string, len(files))
	for i, f := range files {
		urls[i] = f.URL
	}
	r.resp.Classification = cls.Classification
	r.resp.ContactID = contact.ID
	r.resp.Files = append(r.resp.Files, files...)
	r.resp.FilesUploaded = len(files)

	// The threading decision is recorded before the ticket is created: a rerun after a create whose
	// answer was lost must not take that ticket for an earlier conversation and file the message
	// as its own follow-up; it creates again, and the backend finds the earlier attempt.
	t, err := step(ctx, r, stepThread, func(ctx context.Context) (ticketStep, error) {
		found, err := r.c.findOpenTicket(ctx, contact.ID, req.ReceivedAt)
		if err != nil || found == nil {
			return ticketStep{New: true}, err
		}
		return ticketStep{ID: found.ID, URL: found.URL, SubtaskID: found.SubtaskID}, nil
	})
	if err != nil {
		return err
	}
	if t.New {
		t, err = step(ctx, r, stepTicket, func(ctx context.Context) (ticketStep, error) {
			created, err := d.CRM.CreateTicket(ctx, TicketInput{
				ContactID: contact.ID, Subject: req.Subject(), Content: ticketContent(req, files),
				Classification: cls.Classification, FileURLs: urls, At: req.ReceivedAt, MayExistSince: r.mayExistSince(),
			})
			return ticketStep{ID: created.ID, URL: created.URL, New: true}, err
		})
		if err != nil {
			return err
		}
	}
	if t.URL == "" {
		t.URL = d.CRM.TicketURL(t.ID)
	}
	// Remembered so that a follow-up seconds later finds this ticket even while search lags.
	if err := d.Journal.MemoPut(ctx, memoTicketKey(contact.ID), t.ID); err != nil {
		r.warn(stepTicket, err)
	}
	r.resp.TicketID, r.resp.TicketURL, r.resp.IsNewTicket = t.ID, t.URL, t.New

	var sub Subtask
	if t.New {
		sub, err = r.newTicket(ctx, t, cls, contact, files, urls)
	} else {
		sub, err = r.followUp(ctx, t, files, urls)
	}
	if err != nil {
		return err
	}
	r.resp.SubtaskID = sub.ID

	if _, err := step(ctx, r, stepNotify, func(ctx context.Context) (bool, error) {
		return true, d.Notifier.Notify(ctx, Notification{
			Classification: cls.Classification, CustomerEmail: req.UserEmail, CustomerName: req.UserName,
			Subject: req.Subject(), Body: req.Text(), TicketID: t.ID, TicketURL: t.URL, IsNewTicket: t.New,
			SubtaskID: sub.ID, SubtaskURL: sub.URL, Files: files, ReceivedAt: req.ReceivedAt, RequestKey: r.run.Key,
		})
	}); err != nil {
		r.warn(stepNotify, err)
	}

	if t.New {
		r.resp.Status = payload.StatusCreated
		r.resp.Message = "Nouveau ticket créé: #" + t.ID
	} else {
		r.resp.Status = payload.StatusUpdated
		r.resp.Message = "Message ajouté au ticket #" + t.ID
	}
	if len(r.resp.Warnings) > 0 {
		r.resp.Status = payload.StatusIncomplete
		r.resp.Message += " (incomplet: " + fmt.Sprint(len(r.resp.Warnings)) + " étape(s) à reprendre)"
	}
	return nil
}

// FindOpenTicket is the ticket a message the contact wrote at would join, or nil: what
// `ticket find` shows.
func (c *Chain) FindOpenTicket(ctx context.Context, contactID string, at time.Time) (*Ticket, error) {
	return c.findOpenTicket(ctx, contactID, at)
}

// RememberTicket makes ticketID the contact's current conversation (a ticket created by hand).
func (c *Chain) RememberTicket(ctx context.Context, contactID, ticketID string) error {
	return c.d.Journal.MemoPut(ctx, memoTicketKey(contactID), ticketID)
}

// findOpenTicket applies the threading rule at the customer's time: an open stage and activity
// inside the window. The ticket remembered for the contact is confirmed by id first (consistent),
// search only after (it lags writes).
func (c *Chain) findOpenTicket(ctx context.Context, contactID string, at time.Time) (*Ticket, error) {
	since := at.Add(-c.o.Window)
	if id, ok, err := c.d.Journal.MemoGet(ctx, memoTicketKey(contactID)); err != nil {
		return nil, err
	} else if ok {
		t, err := c.d.CRM.GetTicket(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		case slices.Contains(c.o.OpenStages, t.Stage) && !t.LastActivity.Before(since):
			return &t, nil
		}
	}
	return c.d.CRM.FindOpenTicket(ctx, contactID, c.o.OpenStages, since)
}

func (r *runner) newTicket(ctx context.Context, t ticketStep, cls classify.Result, contact Contact, files []payload.StoredFile, urls []string) (Subtask, error) {
	d, req := r.c.d, r.req
	var sub Subtask
	g, gctx := errgroup.WithContext(ctx)
	if cls.Classification == payload.Modelisation {
		g.Go(func() error {
			var err error
			sub, err = step(gctx, r, stepSubtask, func(ctx context.Context) (Subtask, error) {
				return d.Tasks.CreateSubtask(ctx, SubtaskInput{
					Name: SubtaskName(cls.Classification, req), Markdown: SubtaskMarkdown(req, t.ID, t.URL, files),
					Ref: r.run.Key, MayExistSince: r.mayExistSince(),
				})
			})
			if err != nil {
				r.warn(stepSubtask, err)
				return nil
			}
			if _, err := step(gctx, r, stepSubtaskLink, func(ctx context.Context) (bool, error) {
				return true, d.CRM.SetSubtaskID(ctx, t.ID, sub.ID)
			}); err != nil {
				r.warn(stepSubtaskLink, err)
			}
			return nil
		})
	}
	if len(files) > 0 {
		g.Go(func() error {
			_, err := step(gctx, r, stepNote, func(ctx context.Context) (string, error) {
				return d.CRM.AddNote(ctx, Note{ContactID: contact.ID, Title: "Fichiers reçus — ticket #" + t.ID,
					Body: req.Text(), FileURLs: urls, At: req.ReceivedAt, MayExistSince: r.mayExistSince()})
			})
			return err
		})
	}
	return sub, g.Wait()
}

func (r *runner) followUp(ctx context.Context, t ticketStep, files []payload.StoredFile, urls []string) (Subtask, error) {
	d, req := r.c.d, r.req
	var sub Subtask
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := step(gctx, r, stepNote, func(ctx context.Context) (string, error) {
			return d.CRM.AddNote(ctx, Note{TicketID: t.ID, Title: "Nouveau message du client", Body: req.Text(),
				FileURLs: urls, At: req.ReceivedAt, MayExistSince: r.mayExistSince()})
		})
		return err
	})
	// Every follow-up updates its ticket, files or not: the time of the message is threading's last
	// activity (a note alone does not move HubSpot's hs_lastmodifieddate).
	g.Go(func() error {
		_, err := step(gctx, r, stepFileURLs, func(ctx context.Context) (bool, error) {
			return true, d.CRM.UpdateTicket(ctx, t.ID, TicketUpdate{MessageAt: req.ReceivedAt, AddFileURLs: urls})
		})
		return err
	})
	if t.SubtaskID != "" {
		g.Go(func() error {
			var err error
			sub, err = step(gctx, r, stepSubtask, func(ctx context.Context) (Subtask, error) {
				return d.Tasks.AppendSubtask(ctx, t.SubtaskID, FollowUpMarkdown(req, files), r.run.Key)
			})
			if err != nil {
				r.warn(stepSubtask, err)
				sub = Subtask{ID: t.SubtaskID}
			}
			return nil
		})
	}
	return sub, g.Wait()
}

package chain

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/figurative/figsupport/internal/payload"
)

// maxThreadIDs bounds how many of a message's In-Reply-To/References are looked up.
const maxThreadIDs = 20

func (r *runner) execute(ctx context.Context) error {
	d, req := r.c.d, r.req
	if reason := r.c.automatic(req); reason != "" {
		return r.machine(ctx, reason)
	}
	var (
		cls     Classification
		files   []payload.StoredFile
		contact Contact
	)
	_, contactKnown := r.run.Steps[StepContact]
	// Classification, uploads and the contact look-up do not depend on each other. The contact
	// may therefore exist in the CRM when an upload fails; no ticket or note does.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		cls, err = step(gctx, r, StepClassify, func(ctx context.Context) (Classification, error) {
			return d.Classifier.Classify(ctx, req), nil
		})
		return err
	})
	if len(req.Fichiers) > 0 {
		g.Go(func() (err error) {
			files, err = step(gctx, r, StepUpload, func(ctx context.Context) ([]payload.StoredFile, error) {
				return d.Files.Upload(ctx, r.run.Key, req.ReceivedAt, req.Fichiers)
			})
			return err
		})
	}
	g.Go(func() (err error) {
		contact, err = step(gctx, r, StepContact, func(ctx context.Context) (Contact, error) {
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
	r.with("contact_id", contact.ID)
	r.resp.Classification = cls.Label
	r.resp.ContactID = contact.ID
	r.resp.Files = append(r.resp.Files, files...)
	r.resp.FilesUploaded = len(files)

	// A contact created by this very attempt has no ticket to find by search (headers and the
	// journal's memory are still looked at).
	r.fresh = contact.Created && !contactKnown
	t, err := r.thread(ctx, contact, cls, files, urls)
	if err != nil {
		return err
	}
	if t.URL == "" {
		t.URL = d.CRM.TicketURL(t.ID)
	}
	r.with("ticket_id", t.ID)
	r.remember(ctx, contact, t)
	r.resp.TicketID, r.resp.TicketURL, r.resp.IsNewTicket = t.ID, t.URL, t.New

	var sub Subtask
	if t.New {
		sub, err = r.newTicket(ctx, t, cls, contact, files, urls)
	} else {
		sub, err = r.followUp(ctx, t, contact, cls, files, urls)
	}
	if err != nil {
		return err
	}
	r.resp.SubtaskID = sub.ID

	switch {
	case t.New && t.Follows != "":
		r.resp.Status = payload.StatusCreated
		r.resp.Message = "Nouveau ticket créé: #" + t.ID + " (suite du ticket #" + t.Follows + ", fermé)"
	case t.New:
		r.resp.Status = payload.StatusCreated
		r.resp.Message = "Nouveau ticket créé: #" + t.ID
	default:
		r.resp.Status = payload.StatusUpdated
		r.resp.Message = "Message ajouté au ticket #" + t.ID
	}
	if len(r.resp.Warnings) > 0 {
		// The status and the warnings say what is left to do; the message stays what was done.
		r.resp.Status = payload.StatusIncomplete
	}
	return nil
}

// thread decides which ticket the message belongs to and, for a new conversation, creates it.
//
// The decision is recorded before the ticket is created: a rerun after a create whose answer was
// lost must not take that ticket for an earlier conversation and file the message as its own
// follow-up. A resumed run whose decision was "new" but whose create was not recorded first looks
// for the ticket its earlier attempt may have made; when there is none the create never happened,
// and the decision is taken again, because a later message of the same conversation may have
// opened the ticket in the meantime.
func (r *runner) thread(ctx context.Context, contact Contact, cls Classification, files []payload.StoredFile, urls []string) (threadStep, error) {
	d, req := r.c.d, r.req
	var t threadStep
	prior, err := r.run.Step(StepThread, &t)
	if err != nil {
		return t, err
	}
	if !prior {
		if t, err = ticketStep(ctx, r, StepThread, func(ctx context.Context) (threadStep, error) {
			t, err := r.c.decide(ctx, contact.ID, req, !r.fresh)
			if err == nil && t.New {
				err = r.earlierCreate(ctx)
			}
			return t, err
		}, threadID); err != nil {
			return t, err
		}
	}
	if !t.New {
		return t, nil
	}
	var created threadStep
	if done, err := r.run.Step(StepTicket, &created); err != nil || done {
		return created, err
	}
	in := TicketInput{ContactID: contact.ID, Subject: req.Subject(), Content: ticketContent(req, files, t.Follows),
		Classification: cls.Label, FileURLs: urls, At: req.ReceivedAt}
	if prior {
		// An earlier attempt decided "new" and did not record a create: unless it was refused,
		// the create may have happened.
		if !t.Refused {
			in.MayExistSince = r.run.CreatedAt
			found, err := d.CRM.FindCreatedTicket(ctx, in)
			if err != nil {
				return t, &StepError{Step: StepTicket, Err: fmt.Errorf("look for an earlier attempt's ticket: %w", err)}
			}
			if found != nil {
				created = threadStep{ID: found.ID, URL: found.URL, New: true, Follows: t.Follows}
				return created, r.record(ctx, StepTicket, created, created.ID)
			}
		}
		again, err := r.c.decide(ctx, contact.ID, req, true)
		if err == nil && again.New {
			err = r.earlierCreate(ctx)
		}
		if err != nil {
			return t, &StepError{Step: StepThread, Err: err}
		}
		if !again.New {
			r.logger().Info("decided again: a later message opened the conversation's ticket", "ticket_id", again.ID)
			return again, r.record(ctx, StepThread, again, again.ID)
		}
		if t.Refused {
			// Recorded before the create goes out again: if its outcome is unknown this time,
			// the next attempt must look for it.
			if err := r.record(ctx, StepThread, again, ""); err != nil {
				return t, err
			}
		}
		t, in.MayExistSince = again, time.Time{}
		in.Content = ticketContent(req, files, t.Follows)
	}
	created, err = ticketStep(ctx, r, StepTicket, func(ctx context.Context) (threadStep, error) {
		tk, err := d.CRM.CreateTicket(ctx, in)
		return threadStep{ID: tk.ID, URL: tk.URL, New: true, Follows: t.Follows}, err
	}, threadID)
	if err != nil && refusal(err) {
		// The CRM refused the create (CRM.CreateTicket's contract): the next attempt goes straight to
		// deciding again, without looking for a ticket no attempt made. A failure to write that
		// down only costs the next attempt the look-up.
		t.Refused = true
		if rerr := r.record(ctx, StepThread, t, ""); rerr != nil {
			r.logger().Warn("journal: record the refused create", "err", rerr)
		}
	}
	return created, err
}

// refusal reports a failure that says the service did not do what was asked: a rate limit, or a
// call refused for good. A failure of unknown outcome (a 5xx, a timeout, no answer) is not one.
func refusal(err error) bool {
	f := Classify(err)
	return f == FailureRateLimited || f.Permanent()
}

func threadID(t threadStep) string { return t.ID }

// ErrEarlierCreate: an earlier message of the contact, inside the window, decided to open a ticket
// and has not recorded it yet — its create failed, or happened with its answer lost. Opening a
// ticket now could make a second one for the conversation, and the ticket it may have made is
// not visible yet (search lags writes); so this message waits, as a temporary failure, for the
// earlier one's retry to settle the conversation's ticket.
var ErrEarlierCreate = errors.New("an earlier message of the conversation has not settled its ticket yet")

// earlierCreate returns ErrEarlierCreate (naming the earlier request) when the contact has such a
// run.
func (r *runner) earlierCreate(ctx context.Context) error {
	runs, err := r.c.d.Journal.ContactRuns(ctx, r.run.Email)
	if err != nil {
		return err
	}
	for _, o := range runs {
		if o.ID >= r.run.ID {
			break
		}
		var decided, created threadStep
		if ok, err := o.Step(StepThread, &decided); err != nil || !ok || !decided.New || decided.Refused {
			continue // no decision "new", or its create was refused: no ticket can exist unseen
		}
		if ok, _ := o.Step(StepTicket, &created); ok {
			continue
		}
		first, err := DecodeRequest(o)
		if err != nil {
			continue // it cannot be resumed either: nothing to wait for
		}
		if gap := r.req.ReceivedAt.Sub(first.ReceivedAt); gap.Abs() > r.c.o.Window {
			continue
		}
		return fmt.Errorf("request %s: %w", o.Key, ErrEarlierCreate)
	}
	return nil
}

// subjectRef finds a ticket reference such as "[#1234]" in a subject.
var subjectRef = regexp.MustCompile(`\[#([0-9]{1,20})\]`)

// decide applies the threading rules in order:
//  1. headers: a message whose In-Reply-To or References names a message of a ticket (received, or
//     sent by figsupport) joins that ticket while it is open, whoever sends it and however old;
//  2. a subject reference "[#N]", only from that ticket's own contact (a number is guessable, a
//     Message-ID figsupport generated is not);
//  3. time: the contact's ticket in an open stage active within the window, at received_at.
//
// A message that rules 1 or 2 tie to a closed ticket opens a new ticket that follows it. search
// false skips the CRM's search in rule 3 (a contact just created has no ticket to find there).
func (c *Chain) decide(ctx context.Context, contactID string, req *payload.Request, search bool) (threadStep, error) {
	ids := req.Mail.Thread()
	if len(ids) > maxThreadIDs {
		ids = ids[:maxThreadIDs]
	}
	for _, id := range ids {
		tid, ok, err := c.d.Journal.MemoGet(ctx, memoMessageKey(id))
		if err != nil {
			return threadStep{}, err
		}
		if !ok {
			continue
		}
		t, err := c.d.CRM.GetTicket(ctx, tid)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return threadStep{}, err
		case c.open(t):
			return found(t, "headers"), nil
		}
		// The newest message named decides: its ticket is closed.
		return threadStep{New: true, Follows: t.ID}, nil
	}
	if m := subjectRef.FindStringSubmatch(req.Objet); m != nil {
		t, err := c.d.CRM.GetTicket(ctx, m[1])
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return threadStep{}, err
		case t.ContactID != contactID:
			// Someone else's ticket: the number proves nothing.
		case c.open(t):
			return found(t, "subject"), nil
		default:
			return threadStep{New: true, Follows: t.ID}, nil
		}
	}
	t, err := c.findTicket(ctx, contactID, req.ReceivedAt, search)
	if err != nil || t == nil {
		return threadStep{New: true}, err
	}
	return found(*t, "recent"), nil
}

func found(t Ticket, by string) threadStep {
	return threadStep{ID: t.ID, URL: t.URL, SubtaskID: t.SubtaskID, ContactID: t.ContactID, By: by}
}

func (c *Chain) open(t Ticket) bool { return slices.Contains(c.o.OpenStages, t.Stage) }

// FindOpenTicket is the ticket a message the contact wrote at would join by the time rule, or nil:
// what `ticket find` shows.
func (c *Chain) FindOpenTicket(ctx context.Context, contactID string, at time.Time) (*Ticket, error) {
	return c.findTicket(ctx, contactID, at, true)
}

// RememberTicket makes ticketID the contact's current conversation (a ticket created by hand).
func (c *Chain) RememberTicket(ctx context.Context, contactID, ticketID string) error {
	return c.d.Journal.MemoPut(ctx, memoTicketKey(contactID), ticketID)
}

// findTicket applies the time rule at the customer's time: an open stage and activity inside the
// window. The ticket remembered for the contact is confirmed by id first (consistent), search only
// after (it lags writes), and only when search is true.
func (c *Chain) findTicket(ctx context.Context, contactID string, at time.Time, search bool) (*Ticket, error) {
	since := at.Add(-c.o.Window)
	if id, ok, err := c.d.Journal.MemoGet(ctx, memoTicketKey(contactID)); err != nil {
		return nil, err
	} else if ok {
		t, err := c.d.CRM.GetTicket(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		case c.open(t) && !t.LastActivity.Before(since):
			return &t, nil
		}
	}
	if !search {
		return nil, nil
	}
	return c.d.CRM.FindOpenTicket(ctx, contactID, c.o.OpenStages, since)
}

// remember records what later messages thread by: the contact's current ticket (search lags
// writes) and this message's Message-ID. A failure costs only a later message's threading by
// that route, so it is a warning in the log, not a failed step.
func (r *runner) remember(ctx context.Context, contact Contact, t threadStep) {
	j := r.c.d.Journal
	if err := j.MemoPut(ctx, memoTicketKey(contact.ID), t.ID); err != nil {
		r.logger().Warn("journal: remember the contact's ticket", "err", err)
	}
	if m := r.req.Mail; m != nil && m.MessageID != "" {
		if err := j.MemoPut(ctx, memoMessageKey(m.MessageID), t.ID); err != nil {
			r.logger().Warn("journal: remember the message's ticket", "err", err)
		}
	}
}

// newTicket does what a new ticket needs, side by side: the subtask (then its link to the ticket
// and the follow-ups that came before it), the note of files on the contact, the note on a closed
// ticket this one follows, the admin notification (it waits only for the subtask's id) and the
// acknowledgement.
func (r *runner) newTicket(ctx context.Context, t threadStep, cls Classification, contact Contact, files []payload.StoredFile, urls []string) (Subtask, error) {
	d, req := r.c.d, r.req
	var sub Subtask
	subReady := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	if cls.Label == payload.Modelisation {
		g.Go(func() error {
			var err error
			sub, err = step(gctx, r, StepSubtask, func(ctx context.Context) (Subtask, error) {
				return d.Tasks.CreateSubtask(ctx, SubtaskInput{
					Name: SubtaskName(cls.Label, req), Markdown: SubtaskMarkdown(req, t.ID, t.URL, files),
					Ref: r.run.Key, MayExistSince: r.mayExistSince(),
				})
			})
			close(subReady)
			if err != nil {
				r.warn(StepSubtask, err)
				return nil
			}
			if _, err := step(gctx, r, StepSubtaskLink, func(ctx context.Context) (bool, error) {
				return true, d.CRM.SetSubtaskID(ctx, t.ID, sub.ID)
			}); err != nil {
				r.warn(StepSubtaskLink, err)
				return nil
			}
			if _, err := step(gctx, r, StepFollowUps, func(ctx context.Context) (int, error) {
				return r.pendingFollowUps(ctx, t.ID, sub.ID)
			}); err != nil {
				r.warn(StepFollowUps, err)
			}
			return nil
		})
	} else {
		close(subReady)
	}
	if len(files) > 0 {
		g.Go(func() error {
			_, err := step(gctx, r, StepNote, func(ctx context.Context) (string, error) {
				return d.CRM.AddNote(ctx, Note{ContactID: contact.ID, Title: "Fichiers reçus — ticket #" + t.ID,
					Body: req.Text(), FileURLs: urls, At: req.ReceivedAt, MayExistSince: r.mayExistSince()})
			})
			return err
		})
	}
	if t.Follows != "" {
		g.Go(func() error {
			// The closed ticket points at its continuation, so the agent reading either sees both.
			if _, err := step(gctx, r, StepLinkNote, func(ctx context.Context) (string, error) {
				return d.CRM.AddNote(ctx, Note{TicketID: t.Follows, Title: "Suite dans le ticket #" + t.ID,
					Body: "Le client a répondu après la clôture de ce ticket ; la conversation continue dans le ticket #" + t.ID + ".",
					At:   req.ReceivedAt, MayExistSince: r.mayExistSince()})
			}); err != nil {
				r.warn(StepLinkNote, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		select {
		case <-subReady:
		case <-gctx.Done():
			return nil
		}
		// The run's context, not the group's: see notify.
		r.notify(ctx, cls, t, sub, files)
		return nil
	})
	g.Go(func() error {
		r.acknowledge(ctx, t)
		return nil
	})
	return sub, g.Wait()
}

// pendingFollowUps appends to a new subtask the follow-ups that joined its ticket before the
// subtask existed (its create failed and was retried, or its link to the ticket was not yet
// written): each block is marked with its request's key, so none is added twice.
func (r *runner) pendingFollowUps(ctx context.Context, ticketID, subtaskID string) (int, error) {
	runs, err := r.c.d.Journal.TicketRuns(ctx, ticketID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, run := range runs {
		var t threadStep
		if run.ID == r.run.ID {
			continue
		}
		if ok, err := run.Step(StepThread, &t); err != nil || !ok || t.New || t.ID != ticketID {
			continue
		}
		req, err := DecodeRequest(run)
		if err != nil {
			return n, err
		}
		var files []payload.StoredFile
		if _, err := run.Step(StepUpload, &files); err != nil {
			return n, err
		}
		if _, err := r.c.d.Tasks.AppendSubtask(ctx, subtaskID, FollowUpMarkdown(req, files), run.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// followUp does what a follow-up needs, side by side: the note, the ticket's last message time
// with the new file URLs, the subtask's new block, and the admin notification (which needs only
// the subtask's id).
func (r *runner) followUp(ctx context.Context, t threadStep, contact Contact, cls Classification, files []payload.StoredFile, urls []string) (Subtask, error) {
	d, req := r.c.d, r.req
	var sub Subtask
	if t.SubtaskID != "" {
		sub = Subtask{ID: t.SubtaskID, URL: d.Tasks.SubtaskURL(t.SubtaskID)}
	}
	title := "Nouveau message du client"
	if t.ContactID != "" && t.ContactID != contact.ID {
		// A colleague in Cc, or someone the customer forwarded to: say who wrote.
		title = "Nouveau message de " + customer(req)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := step(gctx, r, StepNote, func(ctx context.Context) (string, error) {
			return d.CRM.AddNote(ctx, Note{TicketID: t.ID, Title: title, Body: req.Text(),
				FileURLs: urls, At: req.ReceivedAt, MayExistSince: r.mayExistSince()})
		})
		return err
	})
	// The message's time is the ticket's last activity (a note is not activity on HubSpot),
	// written with the new file URLs in one update.
	g.Go(func() error {
		_, err := step(gctx, r, StepUpdate, func(ctx context.Context) (bool, error) {
			return true, d.CRM.UpdateTicket(ctx, t.ID, TicketUpdate{MessageAt: req.ReceivedAt, AddFileURLs: urls})
		})
		return err
	})
	if t.SubtaskID != "" {
		g.Go(func() error {
			if _, err := step(gctx, r, StepSubtask, func(ctx context.Context) (Subtask, error) {
				return d.Tasks.AppendSubtask(ctx, t.SubtaskID, FollowUpMarkdown(req, files), r.run.Key)
			}); err != nil {
				r.warn(StepSubtask, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		r.notify(ctx, cls, t, sub, files) // the run's context, not the group's: see notify
		return nil
	})
	return sub, g.Wait()
}

// notify tells the admin. Its Message-ID is derived from the request's key, so a repeat after a
// lost answer is recognisable, and it is remembered with the ticket so that a reply to it threads.
// It runs under the run's context, never one a failing step beside it cancels: an e-mail has no
// idempotency, and one cut off after the server stored it would be sent again by the retry. The
// acknowledgement likewise.
func (r *runner) notify(ctx context.Context, cls Classification, t threadStep, sub Subtask, files []payload.StoredFile) {
	d, req := r.c.d, r.req
	id := r.messageID("notify")
	if _, err := step(ctx, r, StepNotify, func(ctx context.Context) (string, error) {
		if err := d.Journal.MemoPut(ctx, memoMessageKey(id), t.ID); err != nil {
			return "", err
		}
		return id, d.Notifier.Notify(ctx, Notification{
			Classification: cls.Label, CustomerEmail: req.UserEmail, CustomerName: req.UserName,
			Subject: req.Subject(), Body: req.Text(), TicketID: t.ID, TicketURL: t.URL, IsNewTicket: t.New,
			SubtaskID: sub.ID, SubtaskURL: sub.URL, Files: files, ReceivedAt: req.ReceivedAt, RequestKey: r.run.Key,
			MessageID: id,
		})
	}); err != nil {
		r.warn(StepNotify, err)
	}
}

// ackStep is what the acknowledgement step recorded.
type ackStep struct {
	MessageID string `json:"message_id,omitempty"`
	Skipped   string `json:"skipped,omitempty"` // why none was sent
}

// acknowledge tells the customer their message opened a ticket, when acknowledgements are on: at
// most AckPerAddress per address within AckWindow, never to an address that looks automated.
// Its Message-ID is remembered with the ticket, so the customer's reply threads by its headers.
func (r *runner) acknowledge(ctx context.Context, t threadStep) {
	d, req := r.c.d, r.req
	if d.Ack == nil {
		return
	}
	if _, err := step(ctx, r, StepAck, func(ctx context.Context) (ackStep, error) {
		if why := automatedAddress(req.UserEmail); why != "" {
			return ackStep{Skipped: why}, nil
		}
		now := time.Now()
		recent, err := r.recentAcks(ctx, now)
		if err != nil {
			return ackStep{}, err
		}
		if len(recent) >= r.c.o.AckPerAddress {
			return ackStep{Skipped: fmt.Sprintf("%d acknowledgements to this address in the last %s", len(recent), r.c.o.AckWindow)}, nil
		}
		id := r.messageID("ack")
		if err := d.Journal.MemoPut(ctx, memoMessageKey(id), t.ID); err != nil {
			return ackStep{}, err
		}
		a := Ack{To: req.UserEmail, Name: req.UserName, TicketID: t.ID, TicketRef: "[#" + t.ID + "]",
			Subject: req.Subject(), ReceivedAt: req.ReceivedAt, MessageID: id}
		if req.Mail != nil {
			a.InReplyTo = req.Mail.MessageID
		}
		if err := d.Ack.Acknowledge(ctx, a); err != nil {
			return ackStep{}, err
		}
		recent = append(recent, strconv.FormatInt(now.UnixMilli(), 10))
		return ackStep{MessageID: id}, d.Journal.MemoPut(ctx, memoAckKey(req.UserEmail), strings.Join(recent, " "))
	}); err != nil {
		r.warn(StepAck, err)
	}
}

// recentAcks are the times (Unix ms, as text) of the acknowledgements sent to the request's
// address within the window. The contact's lock is held, so the read and the later write do not race.
func (r *runner) recentAcks(ctx context.Context, now time.Time) ([]string, error) {
	v, _, err := r.c.d.Journal.MemoGet(ctx, memoAckKey(r.req.UserEmail))
	if err != nil {
		return nil, err
	}
	var out []string
	for f := range strings.FieldsSeq(v) {
		ms, err := strconv.ParseInt(f, 10, 64)
		if err == nil && now.Sub(time.UnixMilli(ms)) < r.c.o.AckWindow {
			out = append(out, f)
		}
	}
	return out, nil
}

// automatedLocalParts are mailbox names that machines send from.
var automatedLocalParts = []string{"noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon", "postmaster",
	"bounce", "bounces", "notifications", "notification", "daemon"}

// automatedAddress says why an address looks automated ("" when it does not).
func automatedAddress(email string) string {
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	for _, p := range automatedLocalParts {
		if local == p || strings.HasPrefix(local, p+"+") || strings.HasPrefix(local, p+"-") || strings.HasPrefix(local, p+".") {
			return "the address looks automated (" + p + ")"
		}
	}
	return ""
}

// automatic says why req was written by a machine ("" for a person): what the e-mail's headers
// say (out-of-office, bulk, lists, delivery reports), or one of figsupport's own messages come back.
func (c *Chain) automatic(req *payload.Request) string {
	m := req.Mail
	if m == nil {
		return ""
	}
	if m.Automatic != "" {
		return m.Automatic
	}
	for _, own := range c.o.OwnAddresses {
		if own != "" && (strings.EqualFold(m.From, own) || strings.EqualFold(req.UserEmail, own)) {
			return "sent from figsupport's own address " + own
		}
	}
	if _, domain, ok := strings.Cut(m.MessageID, "@"); ok && strings.EqualFold(domain, c.o.MessageIDDomain) {
		return "written by figsupport (Message-ID at " + domain + ")"
	}
	return ""
}

// machine handles a message written by a machine: a delivery report about a message figsupport
// sent is noted on that message's ticket; anything else is skipped, with its reason recorded.
func (r *runner) machine(ctx context.Context, reason string) error {
	d, req := r.c.d, r.req
	r.resp.Reason = reason
	if m := req.Mail; m != nil && m.BounceOf != "" {
		tid, ok, err := d.Journal.MemoGet(ctx, memoMessageKey(m.BounceOf))
		if err != nil {
			return &StepError{Step: StepBounce, Err: err}
		}
		if ok {
			if _, err := ticketStep(ctx, r, StepBounce, func(ctx context.Context) (string, error) {
				_, err := d.CRM.AddNote(ctx, Note{TicketID: tid, Title: "Message non distribué", Body: req.Text(),
					At: req.ReceivedAt, MayExistSince: r.mayExistSince()})
				return tid, err
			}, func(id string) string { return id }); err != nil {
				return err
			}
			r.resp.Status, r.resp.TicketID, r.resp.TicketURL = payload.StatusUpdated, tid, d.CRM.TicketURL(tid)
			r.resp.Message = "Avis de non-distribution ajouté au ticket #" + tid
			return nil
		}
	}
	r.logger().Info("message skipped", "reason", reason)
	r.resp.Status = payload.StatusSkipped
	r.resp.Message = "Message automatique ignoré"
	return nil
}

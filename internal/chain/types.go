// Package chain runs a customer request through classification, file upload, the CRM, the task
// tracker and the admin notification. It declares the small interfaces it needs and knows no
// concrete backend: cmd/ picks them.
package chain

import (
	"context"
	"errors"
	"time"

	"github.com/figurative/figsupport/internal/payload"
)

// Contact is a CRM contact.
type Contact struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Created bool   `json:"created"` // true when this call created it
}

// Ticket is a CRM ticket as the chain sees it.
type Ticket struct {
	ID             string    `json:"id"`
	Subject        string    `json:"subject"`
	Stage          string    `json:"stage"`
	ContactID      string    `json:"contact_id,omitempty"`
	Classification string    `json:"classification,omitempty"`
	FileURLs       []string  `json:"fichiers_urls,omitempty"`
	SubtaskID      string    `json:"clickup_subtask_id,omitempty"`
	LastActivity   time.Time `json:"last_activity"`
	URL            string    `json:"url"`
}

// TicketInput is what creating a ticket needs.
type TicketInput struct {
	ContactID      string
	Subject        string
	Content        string
	Classification string
	FileURLs       []string
	At             time.Time // when the customer wrote
	// MayExistSince, when set, says an earlier run of this request may have created the ticket
	// after that time without recording it (a crash, a lost answer): the backend looks for it
	// before creating another.
	MayExistSince time.Time
}

// Note is a note on a ticket or, when TicketID is empty, on a contact. Body is plain text: a backend
// that stores HTML escapes it.
type Note struct {
	TicketID  string
	ContactID string
	Title     string
	Body      string
	FileURLs  []string
	At        time.Time
	// MayExistSince: as in TicketInput, for a note an earlier run may have added.
	MayExistSince time.Time
}

// ErrNotFound is returned (wrapped) by backends when an object does not exist.
var ErrNotFound = errors.New("not found")

// CRM is the customer database: HubSpot, or the embedded SQLite one.
type CRM interface {
	// FindOrCreateContact returns the contact with that (normalised) e-mail, creating it if needed.
	FindOrCreateContact(ctx context.Context, email, name string) (Contact, error)
	// FindOpenTicket returns the contact's most recently active ticket whose stage is in stages and
	// whose last activity is at or after since; nil when there is none.
	FindOpenTicket(ctx context.Context, contactID string, stages []string, since time.Time) (*Ticket, error)
	// GetTicket reads one ticket by id, consistently (no search index); ErrNotFound when absent.
	GetTicket(ctx context.Context, id string) (Ticket, error)
	// CreateTicket creates the ticket. An error Classify calls rate_limited, rejected, credentials or
	// input means no ticket was made (the service refused the call, every retry included): the
	// next attempt does not look for it. Any other error leaves the outcome unknown.
	CreateTicket(ctx context.Context, in TicketInput) (Ticket, error)
	// FindCreatedTicket looks for the ticket an earlier attempt of the same create may have made
	// after in.MayExistSince (same contact, subject and content): nil when there is none. A
	// resumed run asks before it decides again whether to create.
	FindCreatedTicket(ctx context.Context, in TicketInput) (*Ticket, error)
	// UpdateTicket records a follow-up on the ticket in one write: the time of the customer's
	// message (threading's last activity) and the new file URLs appended to fichiers_urls.
	UpdateTicket(ctx context.Context, ticketID string, u TicketUpdate) error
	SetSubtaskID(ctx context.Context, ticketID, subtaskID string) error
	AddNote(ctx context.Context, n Note) (id string, err error)
	TicketURL(ticketID string) string
}

// TicketUpdate is what a follow-up changes on its ticket. A note is not activity for HubSpot's
// hs_lastmodifieddate, so the time of the last message is kept in a property of figsupport's own,
// and every CRM reads a ticket's LastActivity as the latest of that time and its own activity dates.
type TicketUpdate struct {
	// MessageAt is when the customer wrote the follow-up; an earlier value never replaces a later one.
	MessageAt time.Time
	// AddFileURLs are appended to fichiers_urls, earlier ones kept and repeats dropped.
	AddFileURLs []string
}

// Subtask is a task-tracker subtask.
type Subtask struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// SubtaskInput is what creating a subtask needs.
type SubtaskInput struct {
	Name     string
	Markdown string // the description
	// Ref identifies the request the subtask is for (its key): the tracker marks the subtask with
	// it so that a repeated create can be recognised. Empty for a one-off subtask.
	Ref string
	// MayExistSince: as in TicketInput, an earlier run may have created this subtask after then.
	MayExistSince time.Time
}

// Tasks is the task tracker: ClickUp, or the embedded one.
type Tasks interface {
	// CreateSubtask creates a subtask under the configured parent.
	CreateSubtask(ctx context.Context, in SubtaskInput) (Subtask, error)
	// AppendSubtask adds markdown to the end of the subtask's description, keeping what was there.
	// ref identifies the request the block is for (its key): the tracker marks the block with it
	// and does not append a block whose ref is already anywhere in the description, so a repeat
	// after a lost answer adds nothing even when other blocks were appended since. Empty ref: an
	// unmarked, one-off append.
	AppendSubtask(ctx context.Context, id, markdown, ref string) (Subtask, error)
	// SubtaskURL is the subtask's page, without a call.
	SubtaskURL(id string) string
}

// Files stores a request's attachments and returns where they are.
type Files interface {
	// Upload stores every file under a prefix made of the request's key and time, in parallel and
	// streamed; a failed file fails the call with the file's name in the error.
	Upload(ctx context.Context, requestKey string, at time.Time, files []payload.File) ([]payload.StoredFile, error)
}

// Notification is what the admin is told about a processed request.
type Notification struct {
	Classification string
	CustomerEmail  string
	CustomerName   string
	Subject        string
	Body           string
	TicketID       string
	TicketURL      string
	IsNewTicket    bool
	SubtaskID      string
	SubtaskURL     string
	Files          []payload.StoredFile
	ReceivedAt     time.Time
	RequestKey     string
	// MessageID is the Message-ID the e-mail must carry (without angle brackets), derived from the
	// request's key: a repeat after a lost answer is recognisable, and a reply to it threads.
	MessageID string
}

// Notifier tells the admin.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Ack is the acknowledgement a customer gets when a new ticket opens for their message.
type Ack struct {
	To         string // the customer's address
	Name       string
	TicketID   string
	TicketRef  string // the reference put in the subject, "[#1234]"
	Subject    string // the customer's subject
	ReceivedAt time.Time
	// MessageID is ours (without angle brackets), recorded so that the customer's reply threads.
	MessageID string
	// InReplyTo is the customer's Message-ID when the request came by e-mail.
	InReplyTo string
}

// Acknowledger sends acknowledgements to customers (optional: off unless configured).
type Acknowledger interface {
	Acknowledge(ctx context.Context, a Ack) error
}

// Classification is a classifier's answer; its JSON is what the journal keeps of the step.
type Classification struct {
	Label     string   `json:"classification"`
	Ambiguous bool     `json:"ambiguous"`
	Method    string   `json:"method"` // rules, llm or fallback
	Reasons   []string `json:"reasons"`
}

// Classifier decides SUPPORT or MODELISATION.
type Classifier interface {
	Classify(ctx context.Context, r *payload.Request) Classification
}

package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/rest"
)

var _ chain.CRM = (*CRM)(nil)

// HubSpot-defined association type ids.
const (
	assocTicketToContact = 16
	assocNoteToContact   = 202
	assocNoteToTicket    = 228
)

// Custom ticket properties this backend owns.
const (
	PropSubtaskID = "clickup_subtask_id"
	PropFileURLs  = "fichiers_urls"
	// PropLastMessageAt is when the customer last wrote (a datetime): a note is not activity for
	// hs_lastmodifieddate, so threading keeps its own.
	PropLastMessageAt = "figsupport_last_message_at"
)

// HubSpot's own activity dates on tickets, read into LastActivity where the portal has them
// (they are computed asynchronously and not present everywhere), most telling first.
var hubspotActivityProps = []string{"hs_last_message_received_at", "hs_lastactivitydate", "notes_last_updated"}

// Config is the HubSpot backend's configuration, as plain values. cmd/ fills every field from
// internal/config.Keys; the defaults below (the same values, checked by a test) serve only when the
// package is used on its own.
type Config struct {
	Token           string        // HUBSPOT_API_KEY (private app access token)
	BaseURL         string        // HUBSPOT_BASE_URL; default https://api.hubapi.com
	HubID           string        // HUBSPOT_HUB_ID, the portal id used in ticket links
	AppDomain       string        // HUBSPOT_APP_DOMAIN; default app.hubspot.com (EU: app-eu1.hubspot.com)
	PipelineID      string        // HUBSPOT_PIPELINE_ID; default "0"
	StageNew        string        // HUBSPOT_STAGE_NEW; default "1"
	StageClosed     string        // HUBSPOT_STAGE_CLOSED; default "4"
	OpenStages      []string      // HUBSPOT_OPEN_STAGES; default 1,2 (doctor checks they exist)
	RequestsPer10s  int           // HUBSPOT_RATE_LIMIT; default DefaultRequestsPer10s
	SearchPerSecond int           // default DefaultSearchPerSecond
	Timeout         time.Duration // HUBSPOT_TIMEOUT, per HTTP attempt; default DefaultTimeout

	Retry      backoff.Policy                                   // zero: backoff.Default
	Retries    rest.RetryObserver                               // metrics; nil for none
	HTTPClient *http.Client                                     // tests; nil for the default
	Now        func() time.Time                                 // note timestamps when a note has no time; default time.Now
	Sleep      func(ctx context.Context, d time.Duration) error // tests: waits between attempts; nil sleeps
}

// Defaults of the package used on its own: the values of internal/config.Keys.
const (
	DefaultAppDomain   = "app.hubspot.com"
	DefaultPipelineID  = "0"
	DefaultStageNew    = "1"
	DefaultStageClosed = "4"
)

// DefaultOpenStages is HUBSPOT_OPEN_STAGES' default.
var DefaultOpenStages = []string{"1", "2"}

func (c *Config) defaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.AppDomain == "" {
		c.AppDomain = DefaultAppDomain
	}
	if c.PipelineID == "" {
		c.PipelineID = DefaultPipelineID
	}
	if c.StageNew == "" {
		c.StageNew = DefaultStageNew
	}
	if c.StageClosed == "" {
		c.StageClosed = DefaultStageClosed
	}
	if len(c.OpenStages) == 0 {
		c.OpenStages = slices.Clone(DefaultOpenStages)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// CRM is the HubSpot implementation of chain.CRM.
type CRM struct {
	cfg  Config
	c    *Client
	memo Memo

	propsMu    sync.Mutex
	propsReady bool
	// searchDates are the datetime properties FindOpenTicket searches on, once the properties are
	// known: ours, hs_lastmodifieddate and HubSpot's activity dates the portal has.
	searchDates []string

	views viewCache
}

// New builds the backend. memo remembers that the custom properties exist (the journal in
// production, NewMemoryMemo in tests); nil means "check once per process".
func New(cfg Config, memo Memo) (*CRM, error) {
	cfg.defaults()
	c, err := NewClient(ClientConfig{
		Token: cfg.Token, BaseURL: cfg.BaseURL, Timeout: cfg.Timeout, RequestsPer10s: cfg.RequestsPer10s,
		SearchPerSecond: cfg.SearchPerSecond, Retry: cfg.Retry, HTTPClient: cfg.HTTPClient, Sleep: cfg.Sleep, Retries: cfg.Retries,
	})
	if err != nil {
		return nil, err
	}
	if memo == nil {
		memo = NewMemoryMemo()
	}
	return &CRM{cfg: cfg, c: c, memo: memo}, nil
}

// Client is the underlying API client.
func (m *CRM) Client() *Client { return m.c }

// object is a CRM record as the API answers it.
type object struct {
	ID           string             `json:"id"`
	Properties   map[string]*string `json:"properties"`
	CreatedAt    time.Time          `json:"createdAt"`
	UpdatedAt    time.Time          `json:"updatedAt"`
	Archived     bool               `json:"archived"`
	Associations map[string]struct {
		Results []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"results"`
	} `json:"associations"`
}

func (o *object) prop(name string) string {
	if v := o.Properties[name]; v != nil {
		return *v
	}
	return ""
}

type assocType struct {
	Category string `json:"associationCategory"`
	TypeID   int    `json:"associationTypeId"`
}

type assocTo struct {
	ID string `json:"id"`
}

type association struct {
	To    assocTo     `json:"to"`
	Types []assocType `json:"types"`
}

func assoc(id string, typeID int) []association {
	return []association{{To: assocTo{ID: id}, Types: []assocType{{Category: "HUBSPOT_DEFINED", TypeID: typeID}}}}
}

type createInput struct {
	Properties   map[string]string `json:"properties"`
	Associations []association     `json:"associations,omitempty"`
}

// ---------------------------------------------------------------------------------------------
// contacts

// FindOrCreateContact creates the contact and, when the e-mail exists (409), takes the id HubSpot
// names in the conflict: one call either way.
func (m *CRM) FindOrCreateContact(ctx context.Context, email, name string) (chain.Contact, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return chain.Contact{}, errors.New("hubspot: contact e-mail is empty")
	}
	props := map[string]string{"email": email}
	if first, last := chain.SplitName(name); first != "" {
		props["firstname"] = first
		if last != "" {
			props["lastname"] = last
		}
	}
	var o object
	err := m.c.api.Send(ctx, http.MethodPost, "/crm/v3/objects/contacts", createInput{Properties: props}, &o)
	if err == nil {
		return chain.Contact{ID: o.ID, Email: email, Created: true}, nil
	}
	if id, ok := conflictID(err); ok {
		return chain.Contact{ID: id, Email: email}, nil
	}
	if statusOf(err) == http.StatusConflict {
		// A 409 without an id: read it by e-mail, which is consistent (not the search index).
		if err := m.c.api.Get(ctx, "/crm/v3/objects/contacts/"+url.PathEscape(email), url.Values{"idProperty": {"email"}}, &o); err != nil {
			return chain.Contact{}, fmt.Errorf("find contact after conflict: %w", err)
		}
		return chain.Contact{ID: o.ID, Email: email}, nil
	}
	return chain.Contact{}, fmt.Errorf("create contact: %w", err)
}

// FindContact reads the contact by e-mail (consistent, unlike search) and never creates one; nil
// when there is none. `ticket find` uses it.
func (m *CRM) FindContact(ctx context.Context, email string) (*chain.Contact, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var o object
	err := m.c.api.Get(ctx, "/crm/v3/objects/contacts/"+url.PathEscape(email), url.Values{"idProperty": {"email"}}, &o)
	if statusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find contact: %w", err)
	}
	return &chain.Contact{ID: o.ID, Email: email}, nil
}

// ---------------------------------------------------------------------------------------------
// tickets

var ticketProps = append([]string{"subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_lastmodifieddate", "createdate",
	PropFileURLs, PropSubtaskID, PropLastMessageAt}, hubspotActivityProps...)

func (m *CRM) ticket(o *object, contactID string) chain.Ticket {
	t := chain.Ticket{
		ID:        o.ID,
		Subject:   o.prop("subject"),
		Stage:     o.prop("hs_pipeline_stage"),
		ContactID: contactID,
		FileURLs:  splitURLs(o.prop(PropFileURLs)),
		SubtaskID: o.prop(PropSubtaskID),
		URL:       m.TicketURL(o.ID),
	}
	t.Classification, _ = parseClassification(t.Subject)
	t.LastActivity = lastActivity(o)
	if c := o.Associations["contacts"]; t.ContactID == "" && len(c.Results) > 0 {
		t.ContactID = c.Results[0].ID
	}
	return t
}

// lastActivity is the latest of the customer's last message (ours), hs_lastmodifieddate (an
// agent's change of stage or owner, our own writes) and HubSpot's activity dates where present.
func lastActivity(o *object) time.Time {
	last := parseTime(o.prop("hs_lastmodifieddate"))
	if last.IsZero() {
		last = o.UpdatedAt
	}
	for _, p := range append([]string{PropLastMessageAt}, hubspotActivityProps...) {
		if t := parseTime(o.prop(p)); t.After(last) {
			last = t
		}
	}
	return last
}

// parseTime reads HubSpot datetimes: ISO 8601 in object answers, epoch milliseconds in some places.
func parseTime(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC()
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

// The classification lives in the subject ("[MODELISATION] …"), visible in every HubSpot list and
// search without a third custom property.
func subjectWith(classification, subject string) string {
	if classification == "" {
		return subject
	}
	prefix := "[" + classification + "] "
	if strings.HasPrefix(subject, prefix) {
		return subject
	}
	return prefix + subject
}

func parseClassification(subject string) (string, string) {
	if rest, ok := strings.CutPrefix(subject, "["); ok {
		if i := strings.Index(rest, "] "); i > 0 && !strings.ContainsAny(rest[:i], " []") {
			return rest[:i], rest[i+2:]
		}
	}
	return "", subject
}

func splitURLs(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func mergeURLs(old, add []string) []string {
	out := append([]string(nil), old...)
	for _, u := range add {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// CreateTicket creates the ticket associated with its contact in one call, its last message time
// set to in.At. A create whose answer was lost is looked for among the contact's tickets before it
// is repeated.
func (m *CRM) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	if in.ContactID == "" {
		return chain.Ticket{}, errors.New("hubspot: ticket needs a contact")
	}
	if err := m.EnsureProperties(ctx); err != nil {
		return chain.Ticket{}, err
	}
	at := in.At
	if at.IsZero() {
		at = m.cfg.Now()
	}
	props := map[string]string{
		"subject":           subjectWith(in.Classification, in.Subject),
		"content":           in.Content,
		"hs_pipeline":       m.cfg.PipelineID,
		"hs_pipeline_stage": m.cfg.StageNew,
		PropLastMessageAt:   epochMs(at),
	}
	if urls := mergeURLs(nil, in.FileURLs); len(urls) > 0 {
		props[PropFileURLs] = strings.Join(urls, "\n")
	}
	var o object
	started := m.cfg.Now()
	created := func(ctx context.Context, since time.Time) (bool, error) {
		return m.findTicket(ctx, in.ContactID, props["subject"], in.Content, since, &o)
	}
	if !in.MayExistSince.IsZero() {
		if found, err := created(ctx, in.MayExistSince); err != nil {
			return chain.Ticket{}, fmt.Errorf("create ticket: look for an earlier attempt: %w", err)
		} else if found {
			return m.ticketFrom(&o, in.ContactID, props), nil
		}
	}
	body := createInput{Properties: props, Associations: assoc(in.ContactID, assocTicketToContact)}
	lookup := func(ctx context.Context) (bool, error) { return created(ctx, started) }
	if err := m.c.api.Create(ctx, "/crm/v3/objects/tickets", body, &o, lookup); err != nil {
		return chain.Ticket{}, fmt.Errorf("create ticket: %w", err)
	}
	return m.ticketFrom(&o, in.ContactID, props), nil
}

// FindCreatedTicket looks, through the associations API (consistent, unlike search), for a ticket
// of the contact with the same subject and content created since in.MayExistSince.
func (m *CRM) FindCreatedTicket(ctx context.Context, in chain.TicketInput) (*chain.Ticket, error) {
	var o object
	found, err := m.findTicket(ctx, in.ContactID, subjectWith(in.Classification, in.Subject), in.Content, in.MayExistSince, &o)
	if err != nil || !found {
		return nil, err
	}
	t, err := m.GetTicket(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// findTicket looks for the contact's ticket of that subject and content created since.
func (m *CRM) findTicket(ctx context.Context, contactID, subject, content string, since time.Time, out *object) (bool, error) {
	return m.findCreated(ctx, "contacts", contactID, "tickets", []string{"subject", "content", "createdate"}, since, out,
		func(x *object) bool { return x.prop("subject") == subject && x.prop("content") == content })
}

func epochMs(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// ticketFrom is the created ticket; the create answer may omit properties it was given.
func (m *CRM) ticketFrom(o *object, contactID string, props map[string]string) chain.Ticket {
	if o.Properties == nil {
		o.Properties = map[string]*string{}
	}
	for _, k := range []string{PropFileURLs, PropLastMessageAt} {
		if v, ok := props[k]; ok && o.prop(k) == "" {
			o.Properties[k] = &v
		}
	}
	m.views.put(o)
	return m.ticket(o, contactID)
}

// findCreated looks, through the associations API and a batch read (both consistent, unlike
// search), for an object of toType associated with fromType/fromID, created since (minus clock
// skew) and matching. It fills out when found.
func (m *CRM) findCreated(ctx context.Context, fromType, fromID, toType string, props []string, since time.Time, out *object, match func(*object) bool) (bool, error) {
	var as struct {
		Results []struct {
			ToObjectID json.Number `json:"toObjectId"`
		} `json:"results"`
	}
	if err := m.c.api.Get(ctx, "/crm/v4/objects/"+fromType+"/"+url.PathEscape(fromID)+"/associations/"+toType, url.Values{"limit": {"500"}}, &as); err != nil {
		return false, err
	}
	if len(as.Results) == 0 {
		return false, nil
	}
	// Ids grow with time: the newest are the candidates.
	ids := make([]string, 0, len(as.Results))
	for _, r := range as.Results {
		ids = append(ids, r.ToObjectID.String())
	}
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(b, a)
	})
	if len(ids) > 20 {
		ids = ids[:20]
	}
	type input struct {
		ID string `json:"id"`
	}
	body := struct {
		Properties []string `json:"properties"`
		Inputs     []input  `json:"inputs"`
	}{Properties: props}
	for _, id := range ids {
		body.Inputs = append(body.Inputs, input{ID: id})
	}
	var res struct {
		Results []object `json:"results"`
	}
	if err := m.c.api.Send(ctx, http.MethodPost, "/crm/v3/objects/"+toType+"/batch/read", body, &res); err != nil {
		return false, err
	}
	for i := range res.Results {
		o := &res.Results[i]
		if o.CreatedAt.After(since.Add(-5*time.Minute)) && match(o) {
			*out = *o
			return true, nil
		}
	}
	return false, nil
}

type searchFilter struct {
	PropertyName string   `json:"propertyName"`
	Operator     string   `json:"operator"`
	Value        string   `json:"value,omitempty"`
	Values       []string `json:"values,omitempty"`
}

type filterGroup struct {
	Filters []searchFilter `json:"filters"`
}

type searchSort struct {
	PropertyName string `json:"propertyName"`
	Direction    string `json:"direction"`
}

type searchRequest struct {
	FilterGroups []filterGroup `json:"filterGroups"`
	Sorts        []searchSort  `json:"sorts"`
	Properties   []string      `json:"properties"`
	Limit        int           `json:"limit"`
}

// HubSpot's search limits (DESIGN section 9): filter groups, filters in all, characters of a body.
const (
	maxFilterGroups = 5
	maxFilters      = 18
	maxSearchBody   = 3000
	// searchLimit is how many candidates FindOpenTicket compares: a contact rarely has more than
	// one or two open tickets, and the sort brings the recently touched ones first.
	searchLimit = 10
)

// FindOpenTicket finds the contact's ticket of the pipeline whose stage is in stages and whose last
// activity is at or after since, the most recently active when several are. The search ORs one
// filter group per activity date (ours, hs_lastmodifieddate, HubSpot's own where the portal has
// them) and the latest LastActivity is picked here. Search lags writes by seconds: the chain
// confirms a ticket it remembers with GetTicket before it relies on this.
func (m *CRM) FindOpenTicket(ctx context.Context, contactID string, stages []string, since time.Time) (*chain.Ticket, error) {
	if len(stages) == 0 {
		stages = m.cfg.OpenStages
	}
	sr, err := m.openTicketSearch(m.loadSearchDates(ctx), contactID, stages, since)
	if err != nil {
		return nil, err
	}
	var res struct {
		Total   int      `json:"total"`
		Results []object `json:"results"`
	}
	if err := m.c.api.Send(ctx, http.MethodPost, "/crm/v3/objects/tickets/search", sr, &res); err != nil {
		return nil, fmt.Errorf("search open ticket: %w", err)
	}
	var best *chain.Ticket
	for i := range res.Results {
		t := m.ticket(&res.Results[i], contactID)
		if t.LastActivity.Before(since) || !slices.Contains(stages, t.Stage) {
			continue
		}
		if best == nil || t.LastActivity.After(best.LastActivity) {
			best = &t
		}
	}
	return best, nil
}

// openTicketSearch builds the search body: one group per date, as many as HubSpot's limits allow
// (with four filters a group, four groups), the dates listed first kept.
func (m *CRM) openTicketSearch(dates []string, contactID string, stages []string, since time.Time) (searchRequest, error) {
	sr := searchRequest{
		Sorts:      []searchSort{{PropertyName: "hs_lastmodifieddate", Direction: "DESCENDING"}},
		Properties: ticketProps,
		Limit:      searchLimit,
	}
	filters := 0
	for _, d := range dates {
		g := filterGroup{Filters: []searchFilter{
			{PropertyName: "associations.contact", Operator: "EQ", Value: contactID},
			{PropertyName: "hs_pipeline", Operator: "EQ", Value: m.cfg.PipelineID},
			{PropertyName: "hs_pipeline_stage", Operator: "IN", Values: stages},
			{PropertyName: d, Operator: "GTE", Value: epochMs(since)},
		}}
		if len(sr.FilterGroups) == maxFilterGroups || filters+len(g.Filters) > maxFilters {
			break
		}
		sr.FilterGroups = append(sr.FilterGroups, g)
		filters += len(g.Filters)
	}
	for len(sr.FilterGroups) > 1 {
		b, err := json.Marshal(sr)
		if err != nil {
			return sr, fmt.Errorf("search open ticket: encode: %w", err)
		}
		if len(b) <= maxSearchBody {
			return sr, nil
		}
		sr.FilterGroups = sr.FilterGroups[:len(sr.FilterGroups)-1]
	}
	if b, _ := json.Marshal(sr); len(b) > maxSearchBody {
		return sr, fmt.Errorf("search open ticket: %d open stages make a search body of %d characters, more than HubSpot's %d: list fewer in HUBSPOT_OPEN_STAGES", len(stages), len(b), maxSearchBody)
	}
	return sr, nil
}

// GetTicket reads a ticket by id (consistent, unlike search), with its contact association in the
// same call.
func (m *CRM) GetTicket(ctx context.Context, id string) (chain.Ticket, error) {
	o, err := m.getTicket(ctx, id, true)
	if err != nil {
		return chain.Ticket{}, err
	}
	return m.ticket(o, ""), nil
}

func (m *CRM) getTicket(ctx context.Context, id string, withContacts bool) (*object, error) {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return nil, fmt.Errorf("get ticket %q: %w", id, chain.ErrNotFound)
	}
	q := url.Values{"properties": {strings.Join(ticketProps, ",")}}
	if withContacts {
		q.Set("associations", "contacts")
	}
	var o object
	if err := m.c.api.Get(ctx, "/crm/v3/objects/tickets/"+url.PathEscape(id), q, &o); err != nil {
		if statusOf(err) == http.StatusNotFound {
			return nil, fmt.Errorf("get ticket %s: %w (%w)", id, chain.ErrNotFound, err)
		}
		return nil, fmt.Errorf("get ticket %s: %w", id, err)
	}
	if o.Archived {
		return nil, fmt.Errorf("get ticket %s: archived: %w", id, chain.ErrNotFound)
	}
	m.views.put(&o)
	return &o, nil
}

func (m *CRM) update(ctx context.Context, id string, props map[string]string) error {
	var o object
	if err := m.c.api.Send(ctx, http.MethodPatch, "/crm/v3/objects/tickets/"+url.PathEscape(id), createInput{Properties: props}, &o); err != nil {
		if statusOf(err) == http.StatusNotFound {
			return fmt.Errorf("update ticket %s: %w (%w)", id, chain.ErrNotFound, err)
		}
		return fmt.Errorf("update ticket %s: %w", id, err)
	}
	return nil
}

// UpdateTicket records a follow-up in one PATCH: figsupport_last_message_at when the message is
// later than the stored time (never moved back: a resumed old request may come after a newer
// one), and fichiers_urls merged with its current value when files came. Nothing to change, no
// PATCH. The current values come from a consistent read: the one the chain's threading made just
// before (GetTicket, at most viewTTL old) when there is one, else a GET. The chain serialises a
// contact's requests, so nothing of figsupport's writes the ticket between that read and the PATCH.
func (m *CRM) UpdateTicket(ctx context.Context, ticketID string, u chain.TicketUpdate) error {
	add := mergeURLs(nil, u.AddFileURLs)
	if u.MessageAt.IsZero() && len(add) == 0 {
		return nil
	}
	if err := m.EnsureProperties(ctx); err != nil {
		return err
	}
	cur, ok := m.views.get(ticketID)
	if !ok {
		o, err := m.getTicket(ctx, ticketID, false)
		if err != nil {
			return err
		}
		cur = viewOf(o)
	}
	props := map[string]string{}
	if !u.MessageAt.IsZero() && u.MessageAt.After(cur.lastMessage) {
		props[PropLastMessageAt] = epochMs(u.MessageAt)
	}
	if merged := mergeURLs(cur.fileURLs, add); len(merged) > len(cur.fileURLs) {
		props[PropFileURLs] = strings.Join(merged, "\n")
	}
	if len(props) == 0 {
		return nil
	}
	if err := m.update(ctx, ticketID, props); err != nil {
		return err
	}
	m.views.wrote(ticketID, props)
	return nil
}

// SetSubtaskID stores the ClickUp subtask id on the ticket.
func (m *CRM) SetSubtaskID(ctx context.Context, ticketID, subtaskID string) error {
	if err := m.EnsureProperties(ctx); err != nil {
		return err
	}
	return m.update(ctx, ticketID, map[string]string{PropSubtaskID: subtaskID})
}

// CloseTicket moves the ticket to the closed stage.
func (m *CRM) CloseTicket(ctx context.Context, ticketID string) error {
	return m.update(ctx, ticketID, map[string]string{"hs_pipeline_stage": m.cfg.StageClosed})
}

// TicketURL is the ticket's page in the HubSpot web app.
func (m *CRM) TicketURL(ticketID string) string {
	return "https://" + m.cfg.AppDomain + "/contacts/" + url.PathEscape(m.cfg.HubID) + "/record/0-5/" + url.PathEscape(ticketID)
}

// ---------------------------------------------------------------------------------------------
// notes

// AddNote creates an HTML note on the ticket (or the contact when TicketID is empty), every piece
// of customer text escaped, timestamped when the customer wrote.
func (m *CRM) AddNote(ctx context.Context, n chain.Note) (string, error) {
	target, typeID, fromType := n.TicketID, assocNoteToTicket, "tickets"
	if target == "" {
		target, typeID, fromType = n.ContactID, assocNoteToContact, "contacts"
	}
	if target == "" {
		return "", errors.New("hubspot: note needs a ticket or a contact")
	}
	at := n.At
	if at.IsZero() {
		at = m.cfg.Now()
	}
	props := map[string]string{
		"hs_note_body": NoteBody(n.Title, n.Body, n.FileURLs, MaxNoteChars),
		"hs_timestamp": strconv.FormatInt(at.UnixMilli(), 10),
	}
	var o object
	started := m.cfg.Now()
	created := func(ctx context.Context, since time.Time) (bool, error) {
		return m.findCreated(ctx, fromType, target, "notes", []string{"hs_note_body", "hs_timestamp"}, since, &o,
			func(x *object) bool {
				return x.prop("hs_note_body") == props["hs_note_body"] && parseTime(x.prop("hs_timestamp")).Equal(time.UnixMilli(at.UnixMilli()).UTC())
			})
	}
	if !n.MayExistSince.IsZero() {
		if found, err := created(ctx, n.MayExistSince); err != nil {
			return "", fmt.Errorf("add note: look for an earlier attempt: %w", err)
		} else if found {
			return o.ID, nil
		}
	}
	body := createInput{Properties: props, Associations: assoc(target, typeID)}
	lookup := func(ctx context.Context) (bool, error) { return created(ctx, started) }
	if err := m.c.api.Create(ctx, "/crm/v3/objects/notes", body, &o, lookup); err != nil {
		return "", fmt.Errorf("add note: %w", err)
	}
	return o.ID, nil
}

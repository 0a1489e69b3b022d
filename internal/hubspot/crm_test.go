package hubspot_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/hubspot"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

type portal struct {
	srv   *hubspotfake.Server
	clock *hubspotfake.Clock
	crm   *hubspot.CRM
	memo  *hubspot.MemoryMemo

	mu    sync.Mutex
	waits []time.Duration // every wait between attempts the backends asked for
}

// sleep records a wait and returns at once (or with the context's end).
func (p *portal) sleep(ctx context.Context, d time.Duration) error {
	p.mu.Lock()
	p.waits = append(p.waits, d)
	p.mu.Unlock()
	return ctx.Err()
}

func newPortal(t *testing.T, o hubspotfake.Options) *portal {
	t.Helper()
	if o.Clock == nil {
		o.Clock = hubspotfake.NewClock(t0)
	}
	srv := hubspotfake.New(o)
	t.Cleanup(srv.Close)
	p := &portal{srv: srv, clock: o.Clock, memo: hubspot.NewMemoryMemo()}
	p.crm = p.backend(t, p.memo)
	return p
}

func (p *portal) backend(t *testing.T, memo hubspot.Memo) *hubspot.CRM {
	t.Helper()
	m, err := hubspot.New(hubspot.Config{
		Token: p.srv.Options().Token, BaseURL: p.srv.URL, HubID: "12345",
		RequestsPer10s: 1_000_000, SearchPerSecond: 1_000_000,
		Retry: backoff.Policy{Attempts: 10, Base: time.Microsecond, Max: time.Millisecond},
		Now:   p.clock.Now,
		// The servers' hints (a second and more) are honoured whole: recorded, not slept.
		Sleep: p.sleep,
	}, memo)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestContacts(t *testing.T) {
	ctx := context.Background()
	for _, shape := range []string{hubspotfake.ConflictMessage, hubspotfake.ConflictIdentityProfile} {
		t.Run("409 "+shape, func(t *testing.T) {
			p := newPortal(t, hubspotfake.Options{ConflictShape: shape})
			c1, err := p.crm.FindOrCreateContact(ctx, " Jean.Dupont@Example.com ", "Jean  Dupont")
			if err != nil {
				t.Fatal(err)
			}
			if !c1.Created || c1.Email != "jean.dupont@example.com" {
				t.Errorf("first = %+v, want created with the normalised e-mail", c1)
			}
			o, _ := p.srv.Object("contacts", c1.ID)
			if o.Properties["firstname"] != "Jean" || o.Properties["lastname"] != "Dupont" {
				t.Errorf("names = %q %q", o.Properties["firstname"], o.Properties["lastname"])
			}
			p.srv.ResetCalls()
			c2, err := p.crm.FindOrCreateContact(ctx, "jean.dupont@example.com", "")
			if err != nil {
				t.Fatal(err)
			}
			if c2.ID != c1.ID || c2.Created {
				t.Errorf("second = %+v, want found %s", c2, c1.ID)
			}
			if n := len(p.srv.Calls()); n != 1 {
				t.Errorf("existing contact cost %d calls, want 1", n)
			}
			if n := len(p.srv.Objects("contacts")); n != 1 {
				t.Errorf("%d contacts, want 1", n)
			}
		})
	}
}

func TestTicketLifecycle(t *testing.T) {
	ctx := context.Background()
	p := newPortal(t, hubspotfake.Options{SearchLag: 30 * time.Second})
	c, err := p.crm.FindOrCreateContact(ctx, "a@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := p.crm.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "Modèle 3D", Content: "Voici les photos",
		Classification: "MODELISATION", FileURLs: []string{"https://f/1.jpg", "https://f/2.glb", "https://f/1.jpg"}, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := p.srv.Object("tickets", tk.ID)
	want := map[string]string{"subject": "[MODELISATION] Modèle 3D", "content": "Voici les photos", "hs_pipeline": "0",
		"hs_pipeline_stage": "1", "fichiers_urls": "https://f/1.jpg\nhttps://f/2.glb", "figsupport_last_message_at": strconv.FormatInt(t0.UnixMilli(), 10)}
	for k, v := range want {
		if o.Properties[k] != v {
			t.Errorf("ticket %s = %q, want %q", k, o.Properties[k], v)
		}
	}
	if types := o.Assoc["contacts"][c.ID]; len(types) != 1 || types[0] != 16 {
		t.Errorf("ticket associations = %v, want contact %s type 16", o.Assoc, c.ID)
	}
	if tk.URL != "https://app.hubspot.com/contacts/12345/record/0-5/"+tk.ID || tk.Classification != "MODELISATION" {
		t.Errorf("ticket = %+v", tk)
	}

	// Search lags: not found at once, found after the lag; GET by id is consistent at once.
	since := t0.Add(-14 * 24 * time.Hour)
	if got, err := p.crm.FindOpenTicket(ctx, c.ID, []string{"1", "2"}, since); err != nil || got != nil {
		t.Fatalf("search right after create = %v, %v; want nothing yet (lag)", got, err)
	}
	g, err := p.crm.GetTicket(ctx, tk.ID)
	if err != nil || g.Stage != "1" || g.ContactID != c.ID || len(g.FileURLs) != 2 || !g.LastActivity.Equal(t0) {
		t.Fatalf("GetTicket = %+v, %v", g, err)
	}
	p.clock.Advance(31 * time.Second)
	got, err := p.crm.FindOpenTicket(ctx, c.ID, []string{"1", "2"}, since)
	if err != nil || got == nil || got.ID != tk.ID {
		t.Fatalf("search after the lag = %+v, %v; want %s", got, err, tk.ID)
	}

	// A follow-up's files are merged with the earlier URLs, repeats dropped; nothing new means no write.
	if err := p.crm.UpdateTicket(ctx, tk.ID, chain.TicketUpdate{AddFileURLs: []string{"https://f/2.glb", "https://f/3.usdz"}}); err != nil {
		t.Fatal(err)
	}
	o, _ = p.srv.Object("tickets", tk.ID)
	if o.Properties["fichiers_urls"] != "https://f/1.jpg\nhttps://f/2.glb\nhttps://f/3.usdz" {
		t.Errorf("fichiers_urls = %q", o.Properties["fichiers_urls"])
	}
	p.srv.ResetCalls()
	if err := p.crm.UpdateTicket(ctx, tk.ID, chain.TicketUpdate{AddFileURLs: []string{"https://f/3.usdz"}, MessageAt: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n := p.srv.Count("PATCH", ""); n != 0 {
		t.Errorf("%d PATCH for nothing new (known URL, older message), want 0", n)
	}
	if o, _ = p.srv.Object("tickets", tk.ID); o.Properties["figsupport_last_message_at"] != strconv.FormatInt(t0.UnixMilli(), 10) {
		t.Errorf("figsupport_last_message_at = %q, want the create's %d", o.Properties["figsupport_last_message_at"], t0.UnixMilli())
	}

	if err := p.crm.SetSubtaskID(ctx, tk.ID, "86abc"); err != nil {
		t.Fatal(err)
	}
	p.clock.Advance(time.Hour)
	if err := p.crm.CloseTicket(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	g, _ = p.crm.GetTicket(ctx, tk.ID)
	if g.Stage != "4" || g.SubtaskID != "86abc" || !g.LastActivity.Equal(p.clock.Now()) {
		t.Errorf("after close = %+v", g)
	}
	p.clock.Advance(time.Minute)
	if got, _ := p.crm.FindOpenTicket(ctx, c.ID, []string{"1", "2"}, since); got != nil {
		t.Errorf("closed ticket found open: %+v", got)
	}
	if _, err := p.crm.GetTicket(ctx, "424242"); !errors.Is(err, chain.ErrNotFound) {
		t.Errorf("GetTicket(missing) = %v, want ErrNotFound", err)
	}
	if err := p.crm.CloseTicket(ctx, "424242"); !errors.Is(err, chain.ErrNotFound) {
		t.Errorf("CloseTicket(missing) = %v, want ErrNotFound", err)
	}
}

func TestFindOpenTicketFilters(t *testing.T) {
	ctx := context.Background()
	p := newPortal(t, hubspotfake.Options{})
	c := p.srv.SeedContact("a@example.com")
	other := p.srv.SeedContact("b@example.com")
	p.srv.SeedTicket(c, "old", "1", t0.Add(-20*24*time.Hour))        // outside the window
	p.srv.SeedTicket(c, "closed", "4", t0.Add(-time.Hour))           // closed
	p.srv.SeedTicket(other, "someone else", "1", t0.Add(-time.Hour)) // another contact
	waiting := p.srv.SeedTicket(c, "waiting", "2", t0.Add(-3*24*time.Hour))
	newest := p.srv.SeedTicket(c, "newest", "1", t0.Add(-2*24*time.Hour))

	got, err := p.crm.FindOpenTicket(ctx, c, []string{"1", "2"}, t0.Add(-14*24*time.Hour))
	if err != nil || got == nil || got.ID != newest {
		t.Fatalf("FindOpenTicket = %+v, %v; want %s (most recently modified)", got, err, newest)
	}
	got, _ = p.crm.FindOpenTicket(ctx, c, []string{"2"}, t0.Add(-14*24*time.Hour))
	if got == nil || got.ID != waiting {
		t.Errorf("stage 2 only = %+v, want %s", got, waiting)
	}
	got, _ = p.crm.FindOpenTicket(ctx, c, []string{"1", "2"}, t0.Add(-24*time.Hour))
	if got != nil {
		t.Errorf("1-day window = %+v, want none", got)
	}
	var body struct {
		FilterGroups []struct {
			Filters []map[string]any `json:"filters"`
		} `json:"filterGroups"`
		Sorts []map[string]string `json:"sorts"`
		Limit int                 `json:"limit"`
	}
	calls := p.srv.Calls()
	if err := json.Unmarshal(calls[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Limit < 1 || body.Limit > 20 || body.Sorts[0]["propertyName"] != "hs_lastmodifieddate" || body.Sorts[0]["direction"] != "DESCENDING" {
		t.Errorf("search body = %s", calls[0].Body)
	}
	ms := strconv.FormatInt(t0.Add(-14*24*time.Hour).UnixMilli(), 10)
	if !strings.Contains(string(calls[0].Body), `"propertyName":"hs_lastmodifieddate","operator":"GTE","value":"`+ms+`"`) ||
		!strings.Contains(string(calls[0].Body), `"propertyName":"associations.contact","operator":"EQ","value":"`+c+`"`) {
		t.Errorf("search filters = %s", calls[0].Body)
	}
	// Before the properties are known only hs_lastmodifieddate is searched; after, one group per
	// activity date, ORed, within HubSpot's limits (5 groups, 6 filters a group, 18 in all).
	if len(body.FilterGroups) != 1 {
		t.Errorf("%d filter groups before the properties are known, want 1", len(body.FilterGroups))
	}
	if err := p.crm.EnsureProperties(ctx); err != nil {
		t.Fatal(err)
	}
	p.srv.ResetCalls()
	if got, _ := p.crm.FindOpenTicket(ctx, c, []string{"1", "2"}, t0.Add(-14*24*time.Hour)); got == nil || got.ID != newest {
		t.Fatalf("FindOpenTicket with every date = %+v, want %s", got, newest)
	}
	body.FilterGroups = nil
	raw := p.srv.Calls()[0].Body
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	var dates []string
	total := 0
	for _, g := range body.FilterGroups {
		total += len(g.Filters)
		if len(g.Filters) > 6 {
			t.Errorf("group of %d filters", len(g.Filters))
		}
		for _, f := range g.Filters {
			if f["operator"] == "GTE" {
				dates = append(dates, f["propertyName"].(string))
			}
		}
	}
	if want := "figsupport_last_message_at,hs_lastmodifieddate,hs_last_message_received_at,hs_lastactivitydate"; strings.Join(dates, ",") != want ||
		total > 18 || len(raw) > 3000 {
		t.Errorf("dates searched %v (%d filters, %d characters), want %s", dates, total, len(raw), want)
	}
}

// TestFindOpenTicketByActivityDates: a ticket whose hs_lastmodifieddate is old is found through
// any other activity date inside the window, and the most recently active of several is chosen.
func TestFindOpenTicketByActivityDates(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    hubspotfake.Options
		prop    string
		wantHit bool
	}{
		{name: "figsupport's last message", prop: "figsupport_last_message_at", wantHit: true},
		{name: "HubSpot's last message received", prop: "hs_last_message_received_at", wantHit: true},
		{name: "HubSpot's last activity", prop: "hs_lastactivitydate", wantHit: true},
		// Past the search's four groups: read on the ticket, not searched.
		{name: "notes_last_updated is not searched", prop: "notes_last_updated"},
		{name: "portal without HubSpot's dates", opts: hubspotfake.Options{NoActivityDates: true}, prop: "figsupport_last_message_at", wantHit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPortal(t, tt.opts)
			if err := p.crm.EnsureProperties(ctx); err != nil {
				t.Fatal(err)
			}
			c := p.srv.SeedContact("a@example.com")
			old := p.srv.SeedTicket(c, "old", "1", t0.Add(-30*24*time.Hour))
			other := p.srv.SeedTicket(c, "other", "2", t0.Add(-5*24*time.Hour))
			if tt.prop == "figsupport_last_message_at" {
				// Written the way UpdateTicket writes it, then hs_lastmodifieddate set back as if
				// the PATCH were old: only the property itself can match.
				if err := p.crm.UpdateTicket(ctx, old, chain.TicketUpdate{MessageAt: t0.Add(-2 * 24 * time.Hour)}); err != nil {
					t.Fatal(err)
				}
				p.srv.SeedModified(old, t0.Add(-30*24*time.Hour))
			} else if !p.srv.SetActivityDate(old, tt.prop, t0.Add(-2*24*time.Hour)) {
				t.Fatalf("%s not on the fake portal", tt.prop)
			}
			p.clock.Advance(time.Minute) // past the search lag
			got, err := p.crm.FindOpenTicket(ctx, c, []string{"1", "2"}, t0.Add(-14*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			want := other
			if tt.wantHit {
				want = old // active 2 days ago, later than the other's 5
			}
			if got == nil || got.ID != want {
				t.Fatalf("FindOpenTicket = %+v, want %s", got, want)
			}
			if tt.wantHit && !got.LastActivity.Equal(t0.Add(-2*24*time.Hour)) {
				t.Errorf("LastActivity = %v, want %v", got.LastActivity, t0.Add(-2*24*time.Hour))
			}
			// GetTicket reads every date, searched or not.
			if g, _ := p.crm.GetTicket(ctx, old); !g.LastActivity.Equal(t0.Add(-2*24*time.Hour)) || g.ContactID != c {
				t.Errorf("GetTicket = %+v, want last activity %v and contact %s", g, t0.Add(-2*24*time.Hour), c)
			}
		})
	}
}

var entity = regexp.MustCompile(`&[a-zA-Z#0-9]+;`)

func TestNotes(t *testing.T) {
	ctx := context.Background()
	p := newPortal(t, hubspotfake.Options{})
	c := p.srv.SeedContact("a@example.com")
	tk := p.srv.SeedTicket(c, "s", "1", t0.Add(-time.Hour))
	at := t0.Add(-5 * time.Minute)

	hostile := `<script>alert("x")</script> & <img src=x onerror=1>` + "\nligne 2"
	id, err := p.crm.AddNote(ctx, chain.Note{TicketID: tk, Title: `Re: <b>urgent</b>`, Body: hostile,
		FileURLs: []string{`https://f/a.jpg?x=1&y="2"`}, At: at})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := p.srv.Object("notes", id)
	body := n.Properties["hs_note_body"]
	for _, bad := range []string{"<script", "<img", "<b>urgent", `"2"`} {
		if strings.Contains(body, bad) {
			t.Errorf("note body contains %q unescaped: %s", bad, body)
		}
	}
	for _, good := range []string{"&lt;script&gt;", "<br>ligne 2", "&amp;y=&#34;2&#34;", "<strong>Re: &lt;b&gt;urgent&lt;/b&gt;</strong>"} {
		if !strings.Contains(body, good) {
			t.Errorf("note body lacks %q: %s", good, body)
		}
	}
	if n.Properties["hs_timestamp"] != strconv.FormatInt(at.UnixMilli(), 10) {
		t.Errorf("hs_timestamp = %q, want %d", n.Properties["hs_timestamp"], at.UnixMilli())
	}
	if types := n.Assoc["tickets"][tk]; len(types) != 1 || types[0] != 228 {
		t.Errorf("note associations = %v, want ticket type 228", n.Assoc)
	}
	// As on a real portal, a note does not move the ticket's hs_lastmodifieddate: threading cannot
	// count on it, which is why follow-ups write figsupport_last_message_at.
	if g, _ := p.crm.GetTicket(ctx, tk); !g.LastActivity.Equal(t0.Add(-time.Hour)) {
		t.Errorf("ticket last activity = %v, want %v (unchanged by the note)", g.LastActivity, t0.Add(-time.Hour))
	}

	id, err = p.crm.AddNote(ctx, chain.Note{ContactID: c, Title: "Fichiers", Body: "x", At: at})
	if err != nil {
		t.Fatal(err)
	}
	n, _ = p.srv.Object("notes", id)
	if types := n.Assoc["contacts"][c]; len(types) != 1 || types[0] != 202 {
		t.Errorf("contact note associations = %v, want type 202", n.Assoc)
	}

	// Over the limit: cut cleanly, marked, accepted by the fake (which refuses > 65,536).
	long := strings.Repeat("é & <😀> ", 20000)
	id, err = p.crm.AddNote(ctx, chain.Note{TicketID: tk, Title: "long", Body: long, FileURLs: []string{"https://f/z.glb"}, At: at})
	if err != nil {
		t.Fatal(err)
	}
	n, _ = p.srv.Object("notes", id)
	checkCut(t, n.Properties["hs_note_body"], hubspot.MaxNoteChars)
}

func checkCut(t *testing.T, body string, limit int) {
	t.Helper()
	if u := len(utf16.Encode([]rune(body))); u > limit {
		t.Errorf("body is %d UTF-16 units, limit %d", u, limit)
	}
	if !strings.Contains(body, "message tronqué") {
		t.Errorf("no truncation marker")
	}
	if !strings.HasSuffix(body, "</ul>") || !strings.Contains(body, "https://f/z.glb") {
		t.Errorf("file links lost: …%s", body[max(0, len(body)-200):])
	}
	// Every & starts a whole entity; every < starts a tag we wrote.
	for i := 0; i < len(body); i++ {
		if body[i] == '&' && entity.FindStringIndex(body[i:]) == nil {
			t.Fatalf("broken entity at %d: %q", i, body[i:min(len(body), i+10)])
		}
		if body[i] == '&' {
			if loc := entity.FindStringIndex(body[i:]); loc[0] != 0 {
				t.Fatalf("broken entity at %d: %q", i, body[i:min(len(body), i+10)])
			}
		}
	}
	if strings.Count(body, "<p>") != strings.Count(body, "</p>") {
		t.Errorf("unbalanced paragraphs")
	}
}

func TestNoteBody(t *testing.T) {
	tests := []struct {
		name                string
		title, text         string
		urls                []string
		limit               int
		want                string // exact, when short
		wantCut, wantPrefix bool
		prefix              string
	}{
		{name: "plain", title: "T", text: "a\r\nb", want: "<p><strong>T</strong></p><p>a<br>b</p>"},
		{name: "no text", title: "T", urls: []string{"https://x/a b"}, want: `<p><strong>T</strong></p><p>Fichiers :</p><ul><li><a href="https://x/a b">https://x/a b</a></li></ul>`},
		{name: "cut between entities", title: "T", text: strings.Repeat("&", 500), limit: 300, wantCut: true},
		{name: "cut between surrogate pairs", title: "T", text: strings.Repeat("😀", 500), limit: 300, wantCut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := tt.limit
			if limit == 0 {
				limit = hubspot.MaxNoteChars
			}
			got := hubspot.NoteBody(tt.title, tt.text, tt.urls, limit)
			if tt.want != "" && got != tt.want {
				t.Errorf("NoteBody = %q\nwant %q", got, tt.want)
			}
			if tt.wantCut {
				if u := len(utf16.Encode([]rune(got))); u > limit {
					t.Errorf("%d units > %d", u, limit)
				}
				if !strings.Contains(got, "message tronqué") {
					t.Errorf("no marker: %q", got)
				}
				if strings.Contains(got, "&amp&") || strings.Contains(got, "&am<") || strings.Contains(got, "&a<") || strings.Contains(got, "&<") {
					t.Errorf("entity cut: %q", got)
				}
				if !strings.Contains(got, "omis") {
					t.Errorf("marker should say how much was left out: %q", got)
				}
			}
		})
	}
}

func TestPropertiesCreatedOnce(t *testing.T) {
	ctx := context.Background()
	p := newPortal(t, hubspotfake.Options{})
	if p.srv.HasProperty("tickets", "fichiers_urls") {
		t.Fatal("fake starts with the custom property")
	}
	c := p.srv.SeedContact("a@example.com")
	in := chain.TicketInput{ContactID: c, Subject: "s", FileURLs: []string{"https://f/1"}}
	if _, err := p.crm.CreateTicket(ctx, in); err != nil {
		t.Fatal(err)
	}
	// One GET lists the ticket properties; one POST per missing one.
	if p.srv.Count("POST", "/crm/v3/properties/tickets") != 3 || p.srv.Count("GET", "/crm/v3/properties/tickets") != 1 {
		t.Errorf("property calls: %v", p.srv.Calls())
	}
	want := map[string][2]string{
		"fichiers_urls": {"string", "textarea"}, "clickup_subtask_id": {"string", "textarea"}, "figsupport_last_message_at": {"datetime", "date"},
	}
	for name := range want {
		if !p.srv.HasProperty("tickets", name) {
			t.Errorf("%s not created", name)
		}
	}
	for _, def := range p.srv.Bodies("POST", "/crm/v3/properties/tickets") {
		w, ok := want[def["name"].(string)]
		if !ok || def["type"] != w[0] || def["fieldType"] != w[1] || def["groupName"] != "ticketinformation" {
			t.Errorf("property definition = %v", def)
		}
	}

	// Same process: remembered in memory. Another process sharing the memo (the journal): too.
	p.srv.ResetCalls()
	if _, err := p.crm.CreateTicket(ctx, in); err != nil {
		t.Fatal(err)
	}
	other := p.backend(t, p.memo)
	if err := other.SetSubtaskID(ctx, p.srv.Objects("tickets")[0].ID, "1"); err != nil {
		t.Fatal(err)
	}
	if n := p.srv.Count("", "/crm/v3/properties"); n != 0 {
		t.Errorf("%d property calls once known, want 0", n)
	}
	// A fresh memo on a portal where they exist: checked (one GET), not created.
	p.srv.ResetCalls()
	fresh := p.backend(t, hubspot.NewMemoryMemo())
	if err := fresh.EnsureProperties(ctx); err != nil {
		t.Fatal(err)
	}
	if p.srv.Count("GET", "/crm/v3/properties") != 1 || p.srv.Count("POST", "/crm/v3/properties") != 0 {
		t.Errorf("calls = %v", p.srv.Calls())
	}
}

func TestTicketURL(t *testing.T) {
	m, err := hubspot.New(hubspot.Config{Token: "pat-x", HubID: "147476643", AppDomain: "app-eu1.hubspot.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.TicketURL("42"); got != "https://app-eu1.hubspot.com/contacts/147476643/record/0-5/42" {
		t.Errorf("TicketURL = %s", got)
	}
	if _, err := hubspot.New(hubspot.Config{}, nil); err == nil {
		t.Error("New without a token should fail")
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	status := func(cs []health.Check) map[string]health.Check {
		m := map[string]health.Check{}
		for _, c := range cs {
			if c.Service != "hubspot" {
				t.Errorf("service = %q", c.Service)
			}
			m[c.Name] = c
		}
		return m
	}
	t.Run("healthy portal, properties created", func(t *testing.T) {
		p := newPortal(t, hubspotfake.Options{})
		got := status(p.crm.Check(ctx))
		for _, name := range []string{"config", "token and contacts access", "tickets access", "custom properties", "pipeline"} {
			if got[name].Status != health.OK {
				t.Errorf("%s = %+v, want ok", name, got[name])
			}
		}
		if !strings.Contains(got["custom properties"].Detail, "created") || !p.srv.HasProperty("tickets", "fichiers_urls") {
			t.Errorf("properties = %+v", got["custom properties"])
		}
		if got := status(p.crm.Check(ctx)); !strings.Contains(got["custom properties"].Detail, "present") {
			t.Errorf("second check = %+v", got["custom properties"])
		}
	})
	t.Run("missing scope is named", func(t *testing.T) {
		p := newPortal(t, hubspotfake.Options{Scopes: []string{"tickets", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.schemas.tickets.read"}})
		got := status(p.crm.Check(ctx))
		c := got["custom properties"]
		if c.Status != health.Fail || !strings.Contains(c.Detail, "crm.schemas.tickets.write") {
			t.Errorf("custom properties = %+v, want a failure naming crm.schemas.tickets.write", c)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		p := newPortal(t, hubspotfake.Options{Token: "pat-other"})
		m, _ := hubspot.New(hubspot.Config{Token: "pat-wrong-secret", BaseURL: p.srv.URL, HubID: "1"}, nil)
		cs := m.Check(ctx)
		got := status(cs)
		if c := got["token and contacts access"]; c.Status != health.Fail || !strings.Contains(c.Detail, "HUBSPOT_API_KEY") {
			t.Errorf("token = %+v", c)
		}
		for _, c := range cs {
			if strings.Contains(c.Detail, "secret") {
				t.Errorf("check leaks the token: %+v", c)
			}
		}
		if _, ok := got["pipeline"]; ok {
			t.Errorf("pipeline checked with a bad token")
		}
	})
	t.Run("stage missing from the pipeline", func(t *testing.T) {
		p := newPortal(t, hubspotfake.Options{})
		p.srv.RemoveStage("2")
		got := status(p.crm.Check(ctx))
		if c := got["pipeline"]; c.Status != health.Fail || !strings.Contains(c.Detail, "stage 2") {
			t.Errorf("pipeline = %+v", c)
		}
	})
}

func TestDailyLimitFailsFast(t *testing.T) {
	p := newPortal(t, hubspotfake.Options{DailyLimitReached: true})
	_, err := p.crm.FindOrCreateContact(context.Background(), "a@example.com", "")
	if !errors.Is(err, hubspot.ErrDailyLimit) {
		t.Fatalf("err = %v, want ErrDailyLimit", err)
	}
	if n := len(p.srv.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

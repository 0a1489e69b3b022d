package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/figurative/figsupport/internal/fakes/clickupfake"
	"github.com/figurative/figsupport/internal/fakes/faults"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/fakes/smtpfake"
	"github.com/figurative/figsupport/internal/server"
)

// The helpers of the fault, crash and load scenarios: the outside services as fakes failing as a
// plan says, a workload of conversations, a sender that keeps sending until each request is
// acknowledged, and the check of what the services hold at the end.

const (
	faultToken  = "tok-faults-0123456789abcdef"
	faultBucket = "figurative-support"
	publicBase  = "https://pub.example.r2.dev"
)

// services are the fakes of one scenario, each failing as its own plan says.
type services struct {
	plans map[string]*faults.Plan // by service: hubspot, clickup, s3, smtp
	hs    *hubspotfake.Server
	cu    *clickupfake.Server
	s3    *s3mem.Backend
	mail  *smtpfake.Server
	proxy *smtpProxy
	env   []string // the daemon's configuration for them
}

// startServices starts HubSpot, ClickUp, S3 (gofakes3) and SMTP fakes; each gets a plan of the
// given rate, with a seed of its own derived from seed, and the given latency on every answer.
func startServices(t *testing.T, seed uint64, rate float64, latency time.Duration) *services {
	t.Helper()
	plan := func(i uint64) *faults.Plan {
		// A slow answer outlasts HUBSPOT_TIMEOUT (a timeout there) and only delays the others.
		return &faults.Plan{Seed: seed*10 + i, Rate: rate, Delay: 1500 * time.Millisecond, Latency: latency}
	}
	sv := &services{plans: map[string]*faults.Plan{"hubspot": plan(1), "clickup": plan(2), "s3": plan(3), "smtp": plan(4)}}

	// HubSpot's clock runs with the machine's: the daemon's journal stamps runs with the real time,
	// and a resumed create looks for what it may have made since then.
	sv.hs = hubspotfake.New(hubspotfake.Options{Clock: hubspotfake.NewRealClock(), SearchLag: 2 * time.Second, Faults: sv.plans["hubspot"]})
	t.Cleanup(sv.hs.Close)
	sv.cu = clickupfake.New(t)
	sv.cu.SetLimit(1 << 20)
	sv.cu.SetFaults(sv.plans["clickup"])

	sv.s3 = s3mem.New()
	if err := sv.s3.CreateBucket(faultBucket); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(faults.Wrap(gofakes3.New(sv.s3).Server(), func() *faults.Plan { return sv.plans["s3"] }, s3Error))
	t.Cleanup(s3.Close)

	sv.mail = smtpfake.Start(t, smtpfake.Options{NoTLS: true})
	sv.proxy = startSMTPProxy(t, sv.mail.Addr(), sv.plans["smtp"])
	host, port, _ := strings.Cut(sv.proxy.addr(), ":")

	sv.env = []string{
		"HUBSPOT_API_KEY=" + sv.hs.Options().Token, "HUBSPOT_BASE_URL=" + sv.hs.URL, "HUBSPOT_HUB_ID=12345",
		"HUBSPOT_TIMEOUT=1s", "HUBSPOT_RATE_LIMIT=100000",
		"CLICKUP_API_KEY=" + clickupfake.Token, "CLICKUP_BASE_URL=" + sv.cu.URL, "CLICKUP_PARENT_TASK_ID=" + clickupfake.ParentID,
		"CLICKUP_RATE_LIMIT=100000",
		"R2_ENDPOINT_URL=" + s3.URL, "R2_ACCESS_KEY_ID=AKIDTEST", "R2_SECRET_ACCESS_KEY=r2-secret-key-0123456789",
		"R2_BUCKET_NAME=" + faultBucket, "R2_PUBLIC_URL=" + publicBase,
		"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_AUTH=none", "SMTP_TLS=none", "SMTP_FROM=support@figurative.fr",
		"NOTIFICATION_EMAIL=admin@figurative.fr",
	}
	return sv
}

// s3Error is S3's error document, so that the SDK reads an injected status as S3 would send it.
func s3Error(w http.ResponseWriter, status int) {
	code := "InternalError"
	if status == http.StatusServiceUnavailable {
		code = "SlowDown"
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>injected</Message><RequestId>fake</RequestId></Error>`, code)
}

// faultLog sums the plans up for the test log.
func (sv *services) faultLog() string {
	var b strings.Builder
	for _, name := range []string{"hubspot", "clickup", "s3", "smtp"} {
		fmt.Fprintf(&b, "\n  %-8s %s", name, sv.plans[name])
	}
	return b.String()
}

// wreq is one request of a workload.
type wreq struct {
	key     string // its request_id
	contact int
	email   string
	model   bool   // a modelling request (source "modelisation"), else support
	marker  string // a word only this request's text holds
	file    []byte // uploaded as multipart when set
	at      time.Time
}

// workload is conversations: each contact writes several messages, all of one kind. The first
// bursty contacts send all theirs at once; the others one after the other.
type workload struct {
	reqs     []*wreq
	contacts int
	bursty   int
}

func (w *workload) byContact(c int) []*wreq {
	var out []*wreq
	for _, r := range w.reqs {
		if r.contact == c {
			out = append(out, r)
		}
	}
	return out
}

// newWorkload makes n requests from contacts contacts (half of them modelling), the first bursty
// contacts with burst requests each, every fourth request with an uploaded file. Everything
// follows from seed.
func newWorkload(seed uint64, n, contacts, bursty, burst int, base time.Time) *workload {
	rng := rand.New(rand.NewPCG(seed, 99))
	w := &workload{contacts: contacts, bursty: bursty}
	counts := make([]int, contacts)
	left := n
	for c := range bursty {
		counts[c] = burst
		left -= burst
	}
	for i := 0; left > 0; i++ {
		counts[bursty+i%(contacts-bursty)]++
		left--
	}
	i := 0
	for c := range contacts {
		for k := range counts[c] {
			r := &wreq{key: fmt.Sprintf("s%d-r%03d", seed, i), contact: c, email: fmt.Sprintf("client%02d@example.com", c),
				model: c%2 == 0, marker: fmt.Sprintf("mk%03dq%d", i, seed), at: base.Add(time.Duration(k)*time.Minute + time.Duration(c)*time.Second)}
			if rng.IntN(4) == 0 {
				r.file = append([]byte("\x89PNG\r\n\x1a\n"), []byte(r.marker+strings.Repeat(".", rng.IntN(2000)))...)
			}
			w.reqs = append(w.reqs, r)
			i++
		}
	}
	return w
}

// body is the request as the form sends it, and its Content-Type.
func (r *wreq) body() ([]byte, string) {
	source, objet := "support", "Problème de paiement sur ma commande"
	if r.model {
		source, objet = "modelisation", "Modèle 3D de la chaise"
	}
	desc := "Bonjour, voici mon message " + r.marker + "."
	fields := map[string]string{"source": source, "objet": objet, "description": desc, "user_email": r.email,
		"user_name": "Client " + r.email[6:8], "received_at": r.at.UTC().Format(time.RFC3339), "request_id": r.key}
	if r.file == nil {
		b, _ := json.Marshal(fields)
		return b, "application/json"
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		mw.WriteField(k, fields[k])
	}
	fw, _ := mw.CreateFormFile("fichiers", "photo.png")
	fw.Write(r.file)
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// sender sends requests as a webhook sender does: until one is acknowledged (2xx), again after a
// 429, a 503 or no answer at all, to whatever address the daemon has now.
type sender struct {
	url    func() string
	client *http.Client
	// pace, when set, spaces the requests' first sends: one per tick, whoever sends.
	pace <-chan time.Time

	mu    sync.Mutex
	acked map[string]int // key → the 2xx status that acknowledged it
	tries int
	codes map[int]int // every answer's status, 0 for none
}

func newSender(url func() string) *sender {
	return &sender{url: url, client: &http.Client{Timeout: 30 * time.Second}, acked: map[string]int{}, codes: map[int]int{}}
}

// send sends r until it is acknowledged or stop is closed; a refusal that resending cannot mend
// (400, 409, 422…) fails the test.
func (s *sender) send(t *testing.T, r *wreq, stop <-chan struct{}) bool {
	body, ctype := r.body()
	if s.pace != nil {
		select {
		case <-s.pace:
		case <-stop:
			return false
		}
	}
	for {
		select {
		case <-stop:
			return false
		default:
		}
		code := s.once(body, ctype)
		s.mu.Lock()
		s.tries++
		s.codes[code]++
		if code >= 200 && code < 300 {
			s.acked[r.key] = code
		}
		s.mu.Unlock()
		switch {
		case code >= 200 && code < 300:
			return true
		case code == 0 || code == 429 || code == 503:
			select {
			case <-stop:
				return false
			case <-time.After(100 * time.Millisecond):
			}
		default:
			t.Errorf("request %s: status %d", r.key, code)
			return false
		}
	}
}

func (s *sender) once(body []byte, ctype string) int {
	req, err := http.NewRequest("POST", s.url()+server.WebhookPath, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+faultToken)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (s *sender) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := slices.Sorted(maps.Keys(s.codes))
	var b strings.Builder
	fmt.Fprintf(&b, "%d sends:", s.tries)
	for _, c := range codes {
		fmt.Fprintf(&b, " %d×%d", s.codes[c], c)
	}
	return b.String()
}

// sendWorkload sends every request: a bursty contact's all at once, another's one after the other
// (each once the previous was acknowledged), all contacts side by side.
func (s *sender) sendWorkload(t *testing.T, w *workload, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for c := range w.contacts {
		reqs := w.byContact(c)
		if c < w.bursty {
			for _, r := range reqs {
				wg.Go(func() { s.send(t, r, stop) })
			}
			continue
		}
		wg.Go(func() {
			for _, r := range reqs {
				if !s.send(t, r, stop) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// state reads GET /requests/{key}.
func state(client *http.Client, base, key string) (*server.RequestState, error) {
	req, _ := http.NewRequest("GET", base+"/requests/"+key, nil)
	req.Header.Set("Authorization", "Bearer "+faultToken)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /requests/%s: %d %s", key, resp.StatusCode, b)
	}
	var st server.RequestState
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitDone polls GET /requests/{key} until every key is done, and fails the test with where each
// other one stands when that takes longer than limit.
func waitDone(t *testing.T, base string, keys []string, limit time.Duration) map[string]*server.RequestState {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	out := map[string]*server.RequestState{}
	deadline := time.Now().Add(limit)
	for {
		for _, k := range keys {
			if st := out[k]; st != nil && st.Status == "done" {
				continue
			}
			st, err := state(client, base, k)
			if err != nil {
				t.Fatalf("%v", err)
			}
			out[k] = st
			// Every injected failure passes: one taken for permanent is never retried by itself.
			if (st.Status == "failed" || st.Status == "incomplete") && st.Failure != "" && st.Failure != "unavailable" && st.Failure != "rate_limited" {
				t.Fatalf("request %s %s, taken for a permanent failure (%s): %s", k, st.Status, st.Failure, st.LastError)
			}
		}
		var left []string
		for _, k := range keys {
			if out[k].Status != "done" {
				left = append(left, fmt.Sprintf("%s %s after %d attempts: %s", k, out[k].Status, out[k].Attempts, out[k].LastError))
			}
		}
		if len(left) == 0 {
			return out
		}

		if time.Now().After(deadline) {
			t.Fatalf("%d requests not done after %v:\n%s", len(left), limit, strings.Join(left, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// figures are what a scenario measured.
type figures struct {
	repeats      int // admin e-mails sent more than once
	lostAnswers  int // SMTP 250s lost after the message was stored
	crashRepeats int // repeats of requests a crash interrupted, beyond lost answers
}

// checkServices checks what the services hold after w was processed and every request is done:
// one contact and one ticket per conversation, one note per follow-up (and per first message with
// a file), one subtask per modelling conversation holding each of its messages exactly once, every
// uploaded file in the bucket, and one admin e-mail per request — a second copy only where the
// SMTP answer was lost or, for the requests in interrupted, where a crash stopped the run.
func checkServices(t *testing.T, sv *services, w *workload, states map[string]*server.RequestState, interrupted map[string]bool) figures {
	t.Helper()
	var fig figures
	// The journal: one new ticket per contact, every other message joins it.
	ticketOf := map[int]string{}
	for _, r := range w.reqs {
		resp := states[r.key].Response
		if resp == nil {
			t.Fatalf("%s: done without a response", r.key)
		}
		wantLabel := "SUPPORT"
		if r.model {
			wantLabel = "MODELISATION"
		}
		if resp.Classification != wantLabel {
			t.Errorf("%s classified %s, want %s", r.key, resp.Classification, wantLabel)
		}
		if resp.Status == "created" {
			if prev, ok := ticketOf[r.contact]; ok {
				t.Errorf("contact %d: two requests created tickets (%s and %s)", r.contact, prev, resp.TicketID)
			}
			ticketOf[r.contact] = resp.TicketID
		}
	}
	for _, r := range w.reqs {
		resp := states[r.key].Response
		if want := ticketOf[r.contact]; resp.TicketID != want || (resp.Status != "created" && resp.Status != "updated") {
			t.Errorf("%s: %s on ticket %s, want on the contact's ticket %q", r.key, resp.Status, resp.TicketID, want)
		}
	}

	// HubSpot: one contact per address, one ticket per conversation.
	contactOf := map[string]int{}
	for _, c := range sv.hs.Objects("contacts") {
		var n int
		if _, err := fmt.Sscanf(c.Properties["email"], "client%02d@example.com", &n); err != nil {
			t.Errorf("unexpected contact %v", c.Properties)
			continue
		}
		if _, dup := contactOf[c.ID]; dup {
			continue
		}
		contactOf[c.ID] = n
	}
	if got := len(sv.hs.Objects("contacts")); got != w.contacts {
		t.Errorf("%d contacts in HubSpot, want %d", got, w.contacts)
	}
	tickets := map[int][]string{}
	subtaskOf, urlsOf := map[string]string{}, map[string]string{}
	for _, tk := range sv.hs.Objects("tickets") {
		for cid := range tk.Assoc["contacts"] {
			tickets[contactOf[cid]] = append(tickets[contactOf[cid]], tk.ID)
		}
		subtaskOf[tk.ID] = tk.Properties["clickup_subtask_id"]
		urlsOf[tk.ID] = tk.Properties["fichiers_urls"]
	}
	if got := len(sv.hs.Objects("tickets")); got != w.contacts {
		t.Errorf("%d tickets in HubSpot, want one per conversation: %d", got, w.contacts)
	}
	for c := range w.contacts {
		if len(tickets[c]) != 1 || tickets[c][0] != ticketOf[c] {
			t.Errorf("contact %d: tickets %v in HubSpot, want only %s", c, tickets[c], ticketOf[c])
		}
	}

	// Notes: one per follow-up, one per first message with a file (on the contact), nothing else.
	notes := sv.hs.Objects("notes")
	wantNotes := 0
	for _, r := range w.reqs {
		want := 0
		if states[r.key].Response.Status == "updated" || r.file != nil {
			want = 1
		}
		wantNotes += want
		got := 0
		for _, n := range notes {
			if strings.Contains(n.Properties["hs_note_body"], r.marker) {
				got++
			}
		}
		if got != want {
			t.Errorf("%s (%s): %d notes, want %d", r.key, states[r.key].Response.Status, got, want)
		}
	}
	if len(notes) != wantNotes {
		t.Errorf("%d notes in HubSpot, want %d", len(notes), wantNotes)
	}

	// ClickUp: one subtask per modelling conversation, linked from its ticket, holding each of the
	// conversation's messages exactly once; no support message in any.
	subs := sv.cu.Subtasks(clickupfake.ParentID)
	byID := map[string]clickupfake.Task{}
	for _, s := range subs {
		byID[s.ID] = s
	}
	models := 0
	for c := range w.contacts {
		if c%2 == 0 {
			models++
		}
	}
	if len(subs) != models {
		t.Errorf("%d subtasks, want one per modelling conversation: %d", len(subs), models)
	}
	followUps := map[int]int{}
	for _, r := range w.reqs {
		if states[r.key].Response.Status == "updated" {
			followUps[r.contact]++
		}
	}
	for c := range w.contacts {
		sub, ok := byID[subtaskOf[ticketOf[c]]]
		if n := strings.Count(sub.Markdown, "### Nouveau message"); c%2 == 0 && ok && n != followUps[c] {
			t.Errorf("contact %d: %d follow-up headings in subtask %s, want one per follow-up: %d", c, n, sub.ID, followUps[c])
		}
	}
	for _, r := range w.reqs {
		inAll := 0
		for _, s := range subs {
			inAll += strings.Count(s.Markdown, r.marker)
		}
		sub, linked := byID[subtaskOf[ticketOf[r.contact]]]
		switch {
		case !r.model && inAll != 0:
			t.Errorf("support request %s is in a subtask %d times", r.key, inAll)
		case r.model && !linked:
			t.Errorf("ticket %s of %s links subtask %q, which does not exist", ticketOf[r.contact], r.key, subtaskOf[ticketOf[r.contact]])
		case r.model && (strings.Count(sub.Markdown, r.marker) != 1 || inAll != 1):
			var where []string
			for _, s := range subs {
				if n := strings.Count(s.Markdown, r.marker); n > 0 {
					where = append(where, fmt.Sprintf("%s×%d", s.ID, n))
				}
			}
			t.Errorf("modelling request %s (%s on ticket %s) is %d times in its subtask %s, want once; found in %v",
				r.key, states[r.key].Response.Status, ticketOf[r.contact], strings.Count(sub.Markdown, r.marker), sub.ID, where)
		}
	}

	// S3: every uploaded file, whole, where the response says.
	for _, r := range w.reqs {
		if r.file == nil {
			continue
		}
		files := states[r.key].Response.Files
		if len(files) != 1 {
			t.Errorf("%s: files %+v, want the one uploaded", r.key, files)
			continue
		}
		// The ticket lists the file once, whichever message of the conversation brought it.
		if n := strings.Count(urlsOf[ticketOf[r.contact]], files[0].URL); n != 1 {
			t.Errorf("%s: file %s is %d times in its ticket's fichiers_urls", r.key, files[0].URL, n)
		}
		key := strings.TrimPrefix(files[0].URL, publicBase+"/")
		obj, err := sv.s3.GetObject(faultBucket, key, nil)
		if err != nil {
			t.Errorf("%s: object %s: %v", r.key, key, err)
			continue
		}
		b, _ := io.ReadAll(obj.Contents)
		obj.Contents.Close()
		if !bytes.Equal(b, r.file) {
			t.Errorf("%s: object %s holds %d bytes, not the %d uploaded", r.key, key, len(b), len(r.file))
		}
	}

	// SMTP: one admin e-mail per request; a repeat only where its answer was lost (or a crash
	// interrupted the request). That a repeat keeps its Message-ID is TestNotificationRepeatKeepsItsMessageID.
	copies := map[string]int{}
	for _, m := range sv.mail.Sessions() {
		msg, err := mail.ReadMessage(strings.NewReader(m.Data))
		if err != nil {
			t.Errorf("stored message: %v", err)
			continue
		}
		copies[msg.Header.Get("X-Figsupport-Request")]++
	}
	lost := sv.proxy.Lost()
	for _, n := range lost {
		fig.lostAnswers += n
	}
	for _, r := range w.reqs {
		// Each lost answer makes exactly one more copy (the message is sent again until an answer
		// comes); a kill may add one, for a message sent but not yet recorded.
		n, want := copies[r.key], 1+lost[r.key]
		switch {
		case interrupted[r.key] && (n < want || n > want+1):
			t.Errorf("%s: %d admin e-mails, %d answers lost, interrupted by the kill: want %d or %d", r.key, n, lost[r.key], want, want+1)
		case !interrupted[r.key] && n != want:
			t.Errorf("%s: %d admin e-mails, %d answers lost: want %d", r.key, n, lost[r.key], want)
		}
		if n > 1 {
			fig.repeats += n - 1
			if extra := n - 1 - lost[r.key]; extra > 0 {
				fig.crashRepeats += extra
			}
		}
	}
	if len(copies) != len(w.reqs) {
		t.Errorf("admin e-mails about %d requests, want %d", len(copies), len(w.reqs))
	}
	return fig
}

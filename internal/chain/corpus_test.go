package chain_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/hubspot"
	"github.com/figurative/figsupport/internal/payload"
)

// corpusAck is the acknowledgement the corpus's replies answer and its bounces return; the test
// puts the Message-ID of the acknowledgement figsupport really sent in its place (and the real
// ticket number in place of 1234).
const corpusAck = "ack.7f3a9c2e@support.figurative.example"

// corpusOutcome is what each corpus message must come to: a note on the conversation's one
// ticket, or skipped.
var corpusOutcome = map[string]string{
	"first": "created", "reply": "note", "reply_all_cc": "note", "forward": "note", "subject_ref": "note",
	"list_group": "note", "dsn_bounce": "bounce", "dsn_headers_only": "bounce",
	"ooo_exchange": "skipped", "ooo_gmail": "skipped", "ooo_rfc3834": "skipped", "ooo_xautoreply": "skipped",
	"list": "skipped", "newsletter": "skipped", "own_notification": "skipped",
}

// The "done when": a conversation of e-mails — replies, a forward, a colleague in Cc, a
// subject reference, out-of-office replies and bounces in the middle — ends as one ticket with one
// note per human message (and one per bounce of figsupport's acknowledgement) and nothing for
// the machines, on the embedded CRM and on HubSpot alike.
func TestMailCorpusConversation(t *testing.T) {
	msgs := corpus(t)
	for _, crm := range []string{"embedded", "hubspot"} {
		t.Run(crm, func(t *testing.T) {
			ctx := context.Background()
			acks := &ackRec{}
			o := chaintest.Options{Ack: acks, Chain: chain.Options{
				MessageIDDomain: "support.figurative.example", OwnAddresses: []string{"support@figurative.example"}}}
			var fake *hubspotfake.Server
			if crm == "hubspot" {
				fake = hubspotfake.New(hubspotfake.Options{Clock: hubspotfake.NewClock(msgs[0].at)})
				t.Cleanup(fake.Close)
				c, err := hubspot.New(hubspot.Config{Token: fake.Options().Token, BaseURL: fake.URL, HubID: "12345"}, hubspot.NewMemoryMemo())
				if err != nil {
					t.Fatal(err)
				}
				o.CRM = c
			}
			h := chaintest.New(t, o)
			ticket, ack := "", ""
			notes := 0
			for _, m := range msgs {
				raw := m.raw
				if ack != "" {
					raw = bytes.ReplaceAll(raw, []byte(corpusAck), []byte(ack))
					raw = bytes.ReplaceAll(raw, []byte("[#1234]"), []byte("[#"+ticket+"]"))
				}
				if fake != nil {
					fake.Options().Clock.Set(m.at)
				}
				req, err := payload.ParseEmail(bytes.NewReader(raw), payload.DefaultLimits, time.Now(), t.TempDir(), 10<<20)
				if err != nil {
					t.Fatalf("%s: %v", m.name, err)
				}
				resp, err := h.Chain.Process(ctx, req, chain.RunOptions{})
				if err != nil {
					t.Fatalf("%s: %v", m.name, err)
				}
				want := corpusOutcome[m.name]
				got := resp.Status
				switch {
				case resp.Status == payload.StatusUpdated && resp.Reason != "":
					got = "bounce"
				case resp.Status == payload.StatusUpdated:
					got = "note"
				}
				t.Logf("%-17s %-8s ticket %-3s %s %s", m.name, got, resp.TicketID, resp.Message, resp.Reason)
				if got != want || (want != "skipped" && ticket != "" && resp.TicketID != ticket) {
					t.Errorf("%s: %s on ticket %q (%s), want %s on ticket %s", m.name, got, resp.TicketID, resp.Message, want, ticket)
				}
				if want == "note" || want == "bounce" {
					notes++
				}
				if m.name == "first" {
					ticket = resp.TicketID
					if len(acks.sent) != 1 {
						t.Fatalf("first: %d acknowledgements, want 1", len(acks.sent))
					}
					ack = acks.sent[0].MessageID
				}
			}
			if len(acks.sent) != 1 {
				t.Errorf("%d acknowledgements: only the first message opens a ticket", len(acks.sent))
			}
			if crm == "embedded" {
				if _, tickets, _, _ := counts(t, h); tickets != 1 {
					t.Errorf("%d tickets, want 1", tickets)
				}
				got, err := h.Local.Notes(ctx, ticket, "")
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != notes {
					t.Errorf("%d notes on the ticket, want %d", len(got), notes)
				}
				return
			}
			if n := len(fake.Objects("tickets")); n != 1 {
				t.Errorf("%d HubSpot tickets, want 1", n)
			}
			onTicket := 0
			for _, n := range fake.Objects("notes") {
				if _, ok := n.Assoc["tickets"][ticket]; ok {
					onTicket++
				}
			}
			if onTicket != notes {
				t.Errorf("%d notes on the HubSpot ticket, want %d", onTicket, notes)
			}
		})
	}
}

type corpusMsg struct {
	name string
	raw  []byte
	at   time.Time
}

// corpus reads testdata/mail in the order the messages were written (their Date).
func corpus(t *testing.T) []corpusMsg {
	t.Helper()
	files, err := filepath.Glob("../../testdata/mail/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("the corpus: %v", err)
	}
	var out []corpusMsg
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		req, err := payload.ParseEmail(bytes.NewReader(raw), payload.DefaultLimits, time.Now(), t.TempDir(), 10<<20)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".eml")
		if _, ok := corpusOutcome[name]; !ok {
			t.Fatalf("%s has no expected outcome in corpusOutcome", name)
		}
		out = append(out, corpusMsg{name: name, raw: raw, at: req.ReceivedAt})
	}
	slices.SortStableFunc(out, func(a, b corpusMsg) int { return a.at.Compare(b.at) })
	if out[0].name != "first" {
		t.Fatalf("the corpus starts with %s, want first (%s)", out[0].name, fmt.Sprint(out[0].at))
	}
	return out
}

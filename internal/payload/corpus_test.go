package payload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/golden"
)

// mailCorpus is the repository's corpus of e-mails written for the tests (testdata/mail, see its
// README), shared with the chain's and the end-to-end tests.
var mailCorpus = filepath.Join("..", "..", "testdata", "mail")

// ackID is the Message-ID of our acknowledgement in the corpus: the message the bounces return
// and the replies answer.
const ackID = "ack.7f3a9c2e@support.figurative.example"

// emlOutcome is what the corpus' golden files keep of a parsed message: the request's fields
// (files by name, size and content hash, not by their temporary path) and its Mail.
type emlOutcome struct {
	UserEmail   string     `json:"user_email"`
	UserName    string     `json:"user_name,omitempty"`
	Objet       string     `json:"objet,omitempty"`
	Description string     `json:"description,omitempty"`
	ReceivedAt  time.Time  `json:"received_at"`
	RequestID   string     `json:"request_id,omitempty"`
	Files       []emlFileO `json:"fichiers,omitempty"`
	Mail        *Mail      `json:"mail"`
}

type emlFileO struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type corpusCase struct {
	file      string
	automatic string // the start of Mail.Automatic; "" for a person's message
	bounceOf  string
	thread    []string // Mail.Thread(), when the message answers one
}

func TestMailCorpus(t *testing.T) {
	tests := []corpusCase{
		{file: "first.eml"},
		{file: "reply.eml", thread: []string{ackID, "CAJm1.first.7Qx2@mail.atelier-lumiere.example"}},
		{file: "reply_all_cc.eml", thread: []string{"CAJm1.reply.9Lp4@mail.atelier-lumiere.example", ackID, "CAJm1.first.7Qx2@mail.atelier-lumiere.example"}},
		{file: "forward.eml"},
		{file: "subject_ref.eml"},
		{file: "list_group.eml"},
		{file: "ooo_exchange.eml", automatic: "Auto-Submitted: auto-generated", thread: []string{ackID}},
		{file: "ooo_gmail.eml", automatic: "Auto-Submitted: auto-replied", thread: []string{ackID}},
		{file: "ooo_rfc3834.eml", automatic: "Auto-Submitted: auto-replied", thread: []string{ackID}},
		{file: "ooo_xautoreply.eml", automatic: "X-Autoreply header", thread: []string{ackID}},
		{file: "dsn_bounce.eml", automatic: "delivery status notification", bounceOf: ackID},
		{file: "dsn_headers_only.eml", automatic: "delivery status notification", bounceOf: ackID, thread: []string{ackID}},
		{file: "list.eml", automatic: "Precedence: list"},
		{file: "newsletter.eml", automatic: "Precedence: bulk"},
		{file: "own_notification.eml", automatic: "Auto-Submitted: auto-generated"},
	}
	files, err := filepath.Glob(filepath.Join(mailCorpus, "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", mailCorpus, err)
	}
	for _, f := range files {
		if !slices.ContainsFunc(tests, func(tt corpusCase) bool { return tt.file == filepath.Base(f) }) {
			t.Errorf("%s has no expectation in TestMailCorpus", filepath.Base(f))
		}
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".eml"), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(mailCorpus, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			spool := t.TempDir()
			r, err := ParseEmail(bytes.NewReader(raw), DefaultLimits, emlNow.Add(30*24*time.Hour), spool, emlMaxFile)
			if err != nil {
				t.Fatalf("ParseEmail: %v", err)
			}
			m := r.Mail
			if m == nil {
				t.Fatal("no Mail")
			}
			if !strings.HasPrefix(m.Automatic, tt.automatic) || (tt.automatic == "") != (m.Automatic == "") {
				t.Errorf("automatic %q, want %q", m.Automatic, tt.automatic)
			}
			if m.BounceOf != tt.bounceOf {
				t.Errorf("bounce of %q, want %q", m.BounceOf, tt.bounceOf)
			}
			if got := m.Thread(); !slices.Equal(got, tt.thread) {
				t.Errorf("thread %q, want %q", got, tt.thread)
			}
			// Whoever wrote it, the request is valid: the chain records a machine's message too.
			if c := *r; c.Normalize(DefaultLimits, emlNow.Add(30*24*time.Hour)) != nil {
				t.Errorf("the request does not re-validate")
			}
			out := emlOutcome{UserEmail: r.UserEmail, UserName: r.UserName, Objet: r.Objet, Description: r.Description,
				ReceivedAt: r.ReceivedAt, RequestID: r.RequestID, Mail: m}
			for _, f := range r.Fichiers {
				content, err := os.ReadFile(f.Path)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(content)
				out.Files = append(out.Files, emlFileO{Name: f.Name, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])})
			}
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false) // addresses in <> stay readable
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join(mailCorpus, strings.TrimSuffix(tt.file, ".eml")+".golden.json"), b.String())
		})
	}
}

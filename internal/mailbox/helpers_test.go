package mailbox_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"sync"
	"testing"

	"github.com/figurative/figsupport/internal/mailbox"
)

// raw is a small customer e-mail with a Message-ID.
func raw(id, subject string) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf(`From: Client <client@example.com>
To: support@figurative.fr
Subject: %s
Date: Mon, 05 Jan 2026 09:00:00 +0100
Message-ID: <%s>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Bonjour, voici ma demande.
`, subject, id), "\n", "\r\n"))
}

// journal stands for the chain: it keys messages by Message-ID like the journal does, processes a
// key once and replays it afterwards; a test scripts failures, rejections and skips by Message-ID.
type journal struct {
	mu        sync.Mutex
	processed map[string]int // real runs by key
	calls     []string       // every hand-over, in order
	sums      map[string]string
	fail      map[string]int // key → failures still to give
	reject    map[string]bool
	skip      map[string]bool
	// after runs once a message is processed (before the answer): a test cancels the pass there.
	after func(key string)
}

func newJournal() *journal {
	return &journal{processed: map[string]int{}, sums: map[string]string{}, fail: map[string]int{}, reject: map[string]bool{}, skip: map[string]bool{}}
}

func (j *journal) handle(ctx context.Context, r io.Reader) (mailbox.Outcome, error) {
	m, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return mailbox.Outcome{}, mailbox.Reject(fmt.Errorf("not an e-mail: %w", err))
	}
	h := sha256.New()
	if _, err := io.Copy(h, m.Body); err != nil {
		return mailbox.Outcome{}, err
	}
	key := strings.Trim(m.Header.Get("Message-Id"), "<>")
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls = append(j.calls, key)
	j.sums[key] = hex.EncodeToString(h.Sum(nil))
	if j.reject[key] {
		return mailbox.Outcome{}, mailbox.Reject(errors.New("unreadable"))
	}
	if j.fail[key] > 0 {
		j.fail[key]--
		return mailbox.Outcome{}, errors.New("hubspot: 503 Service Unavailable")
	}
	if j.processed[key] > 0 {
		return mailbox.Outcome{RequestID: key, TicketID: "T-" + key, Replayed: true}, nil
	}
	j.processed[key]++
	if j.after != nil {
		j.after(key)
	}
	if j.skip[key] {
		return mailbox.Outcome{Status: mailbox.StatusSkipped, RequestID: key}, nil
	}
	return mailbox.Outcome{RequestID: key, TicketID: "T-" + key}, nil
}

func (j *journal) Calls() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.calls...)
}

func (j *journal) Runs(key string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.processed[key]
}

func statuses(s *mailbox.Summary) string {
	var b []string
	for _, m := range s.Messages {
		b = append(b, strings.Trim(m.MessageID, "<>")+"="+m.Status)
	}
	return strings.Join(b, " ")
}

func poll(t *testing.T, p *mailbox.Poller, j *journal, o mailbox.PassOptions) *mailbox.Summary {
	t.Helper()
	var h mailbox.Handler
	if j != nil {
		h = j.handle
	}
	s, err := p.Poll(context.Background(), h, o)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return s
}

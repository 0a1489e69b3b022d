package cmd

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/figurative/figsupport/internal/testsrv/imaptest"
)

// startServe runs `serve` on a free loopback port until the test ends; it returns the address
// once /livez answers, and a function that stops the daemon and gives its exit code.
func startServe(t *testing.T, env map[string]string, args ...string) (string, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g, _, _ := newTestGlobals(t, env)
	g.Now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- Run(ctx, g, append([]string{"serve", "--addr", addr}, args...)) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/livez")
		if err == nil {
			res.Body.Close()
			break
		}
		select {
		case c := <-code:
			cancel()
			t.Fatalf("serve exited with %d before listening", c)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("serve did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	stop := func() int {
		if stopped {
			return ExitOK
		}
		stopped = true
		cancel()
		return <-code
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// The daemon polls the support mailbox: each new message goes through the pool once, is marked
// read, and a second pass touches nothing.
func TestServePollsTheMailbox(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Cleartext: true})
	admin := srv.Admin(t)
	admin.Append("INBOX", customerMail("poll-1@example.com", "Paiement refusé"))
	admin.Append("INBOX", customerMail("poll-2@example.com", "Toujours refusé"))
	env := mailEnv(t, srv)
	env["FIGSUPPORT_MAIL_POLL_INTERVAL"] = "50ms"
	addr, stop := startServe(t, env)

	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, _ := admin.Messages("INBOX")
		seen := 0
		for _, m := range msgs {
			if m.Has(imap.FlagSeen) {
				seen++
			}
		}
		if seen == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s, %d of 2 messages marked read", seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, id := range []string{"poll-1@example.com", "poll-2@example.com"} {
		res, err := http.Get("http://" + addr + "/requests/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Status   string `json:"status"`
			TicketID string `json:"ticket_id"`
		}
		json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		if res.StatusCode != 200 || st.Status != "done" || st.TicketID != "1" {
			t.Errorf("%s: %d %+v, want done on ticket 1", id, res.StatusCode, st)
		}
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("serve exit %d", code)
	}
}

// The poll interval without a mailbox is a configuration error naming the key.
func TestServePollWithoutMailbox(t *testing.T) {
	g, _, errb := newTestGlobals(t, map[string]string{"FIGSUPPORT_DATA_DIR": t.TempDir(), "FIGSUPPORT_MAIL_POLL_INTERVAL": "1m"})
	if code := Run(context.Background(), g, []string{"serve", "--addr", "127.0.0.1:0"}); code != ExitConfig {
		t.Fatalf("exit %d: %s", code, errb)
	}
}

package e2e

import (
	"bufio"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

// smtpProxy sits between the daemon and the SMTP fake (plain SMTP, no TLS, so that it can read the
// conversation) and fails messages as its plan says, at the end of their DATA:
//   - status: the message is not passed on and the client gets 451;
//   - reset: the message is not passed on and both connections are reset;
//   - slow: the server's answer reaches the client after the plan's delay;
//   - lost: the server stores the message and answers 250, then both connections are reset before
//     the 250 reaches the client — the one SMTP failure that makes a second copy, counted in Lost.
//
// Each message is decided on the request it is about (its X-Figsupport-Request header, else its
// Message-ID) and how many times that request's message came before, so a seed fails the same
// notifications whatever order they are sent in.
type smtpProxy struct {
	ln       net.Listener
	upstream string
	plan     *faults.Plan

	mu     sync.Mutex
	lost   map[string]int // request key → answers lost after the server stored the message
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

func startSMTPProxy(t *testing.T, upstream string, plan *faults.Plan) *smtpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &smtpProxy{ln: ln, upstream: upstream, plan: plan, lost: map[string]int{}, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *smtpProxy) addr() string { return p.ln.Addr().String() }

// Lost is how many times the 250 of each request's message was lost after the server stored it.
func (p *smtpProxy) Lost() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.lost)
}

func (p *smtpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *smtpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *smtpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// reset closes c so that its peer reads a reset, not an orderly end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// smtpSession is one proxied connection. The client speaks, then waits for the server's answer, so
// the state the client side sets before passing a line on is in place when the answer comes.
type smtpSession struct {
	mu        sync.Mutex
	awaitData bool            // the client sent DATA: a 354 starts the message
	inData    bool            // the client is sending the message
	fate      faults.Decision // of the message whose end the client just sent
	msgKey    string
	ended     bool // the client sent the final dot: the next answer is the server's verdict
}

func (p *smtpProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		reset(client)
		return
	}
	defer server.Close()
	if !p.track(client) || !p.track(server) {
		return
	}
	defer func() {
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, server)
		p.mu.Unlock()
	}()
	s := &smtpSession{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.answers(s, client, server)
	}()
	p.commands(s, client, server)
	<-done
}

// commands passes the client's lines to the server, deciding each message's fate at its final dot.
func (p *smtpProxy) commands(s *smtpSession, client, server net.Conn) {
	r := bufio.NewReader(client)
	var header []string
	inHeader := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			server.Close()
			return
		}
		s.mu.Lock()
		data := s.inData
		s.mu.Unlock()
		switch {
		case !data && strings.EqualFold(strings.TrimSpace(line), "DATA"):
			s.mu.Lock()
			s.awaitData = true
			s.mu.Unlock()
			header, inHeader = nil, true
		case data && line == ".\r\n":
			id := messageKey(header)
			fate := p.plan.Decide("SMTP", "DATA", []byte(id))
			s.mu.Lock()
			s.inData, s.fate, s.msgKey, s.ended = false, fate, id, true
			s.mu.Unlock()
			switch fate.Kind {
			case faults.Status:
				server.Close() // the server drops the unfinished message
				client.Write([]byte("451 4.3.0 Injected temporary failure\r\n"))
				client.Close()
				return
			case faults.Reset:
				reset(server)
				reset(client)
				return
			}
		case data && inHeader:
			if line == "\r\n" {
				inHeader = false
			} else {
				header = append(header, line)
			}
		}
		if _, err := server.Write([]byte(line)); err != nil {
			client.Close()
			return
		}
	}
}

// answers passes the server's replies to the client, holding back or losing the verdict on a
// message as its fate says.
func (p *smtpProxy) answers(s *smtpSession, client, server net.Conn) {
	r := bufio.NewReader(server)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			client.Close()
			return
		}
		final := len(line) >= 4 && line[3] == ' '
		s.mu.Lock()
		if final && s.awaitData {
			s.awaitData = false
			s.inData = strings.HasPrefix(line, "354")
		}
		ended, fate, id := final && s.ended, s.fate, s.msgKey
		if ended {
			s.ended = false
		}
		s.mu.Unlock()
		if ended {
			time.Sleep(p.plan.Lag())
			switch fate.Kind {
			case faults.Slow:
				time.Sleep(fate.Delay)
			case faults.Lost:
				if strings.HasPrefix(line, "250") {
					p.mu.Lock()
					p.lost[id]++
					p.mu.Unlock()
				}
				reset(client)
				reset(server)
				return
			}
		}
		if _, err := client.Write([]byte(line)); err != nil {
			server.Close()
			return
		}
	}
}

// messageKey names the request a message is about: its X-Figsupport-Request header, else its
// Message-ID (without angle brackets).
func messageKey(header []string) string {
	var id string
	for _, h := range header {
		name, value, ok := strings.Cut(h, ":")
		switch {
		case !ok:
		case strings.EqualFold(strings.TrimSpace(name), "X-Figsupport-Request"):
			return strings.TrimSpace(value)
		case strings.EqualFold(strings.TrimSpace(name), "Message-Id"):
			id = strings.Trim(strings.TrimSpace(value), "<>")
		}
	}
	return id
}

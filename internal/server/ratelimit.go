package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiterEntries bounds the limiter map; past it, idle entries go first, then everything.
const maxLimiterEntries = 100_000

// limiter is a token bucket per client IP (an IPv6 client per /64). An entry idle for longer than
// a full refill is dropped: a fresh bucket is the same as a full one, so eviction loosens nothing.
type limiter struct {
	mu        sync.Mutex
	r         rate.Limit
	burst     int
	idle      time.Duration
	m         map[string]*ipEntry
	lastSweep time.Time
}

type ipEntry struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSec float64, burst int) *limiter {
	idle := time.Duration(float64(burst) / perSec * float64(time.Second))
	if idle < time.Minute {
		idle = time.Minute
	}
	return &limiter{r: rate.Limit(perSec), burst: burst, idle: idle, m: map[string]*ipEntry{}}
}

// allow takes a token for key at now; when there is none it says how long until there is.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.idle {
		l.sweep(now)
	}
	e := l.m[key]
	if e == nil {
		if len(l.m) >= maxLimiterEntries {
			l.sweep(now)
			if len(l.m) >= maxLimiterEntries {
				clear(l.m)
			}
		}
		e = &ipEntry{l: rate.NewLimiter(l.r, l.burst)}
		l.m[key] = e
	}
	e.seen = now
	if e.l.AllowN(now, 1) {
		return true, 0
	}
	res := e.l.ReserveN(now, 1)
	d := res.DelayFrom(now)
	res.CancelAt(now)
	return false, d
}

func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, e := range l.m {
		if now.Sub(e.seen) >= l.idle {
			delete(l.m, k)
		}
	}
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// clientIP is the address requests are limited and logged by: the connection's peer, unless that
// peer is a trusted proxy, in which case the client is read from ClientIPHeader. In an
// X-Forwarded-For list each proxy appends the address it received from, so the client is the
// rightmost entry that is not itself a trusted proxy; entries further left are whatever the
// client claimed, and are ignored. A header from a peer that is not trusted is ignored too.
func (s *Server) clientIP(r *http.Request) string {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if s.cfg.ClientIPHeader == "" || !s.trusted(peer) {
		return peer.String()
	}
	vals := r.Header.Values(s.cfg.ClientIPHeader)
	var list []string
	for _, v := range vals {
		list = append(list, strings.Split(v, ",")...)
	}
	for i := len(list) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(list[i]))
		if err != nil {
			break // a malformed entry: stop at the last proxy
		}
		a = a.Unmap()
		if !s.trusted(a) || i == 0 {
			return a.String()
		}
	}
	return peer.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// limitKey groups an IPv6 client by its /64 (one host usually owns the whole prefix).
func limitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

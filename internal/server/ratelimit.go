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

// clientIP is the address requests are limited and logged by.
func (s *Server) clientIP(r *http.Request) string {
	if h := s.cfg.ClientIPHeader; h != "" {
		v := r.Header.Values(h)
		if len(v) > 0 {
			last := v[len(v)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a.Unmap().String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return host
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

// Package fetch downloads customer-supplied file URLs without letting them reach anything but the
// public internet (DESIGN section 8): http(s) only, every dialled address checked in the dialer's
// Control hook (so DNS rebinding and redirects cannot slip past), redirects bounded and re-checked,
// no proxy from the environment, timeouts, and a size cap enforced while the body streams.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"
)

// Errors callers test with errors.Is. None of them carries the URL's query string, which may hold a
// signed token.
var (
	// ErrForbiddenAddress: the URL (or a redirect) leads to a non-public address.
	ErrForbiddenAddress = errors.New("address not allowed")
	// ErrScheme: not http or https.
	ErrScheme = errors.New("only http and https URLs are allowed")
	// ErrTooLarge: the body is larger than the cap (announced or while streaming).
	ErrTooLarge = errors.New("file too large")
	// ErrTooManyRedirects: more redirects than allowed.
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrStatus: the server answered something else than 200.
	ErrStatus = errors.New("unexpected HTTP status")
)

// StatusError is an answer other than 200; errors.Is(err, ErrStatus) holds for it.
type StatusError struct {
	Code   int
	Status string // "404 Not Found"
}

func (e *StatusError) Error() string        { return ErrStatus.Error() + ": " + e.Status }
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// Temporary reports an answer that may change if asked again: a server error, a timeout, a rate limit.
func (e *StatusError) Temporary() bool {
	return e.Code >= 500 || e.Code == http.StatusRequestTimeout || e.Code == http.StatusTooManyRequests
}

// Config bounds one fetcher. Zero values take the defaults.
type Config struct {
	MaxBytes      int64         // per file; default 200 MiB
	Timeout       time.Duration // whole fetch, body included; default 10 min
	HeaderTimeout time.Duration // until the response headers; default 30 s
	DialTimeout   time.Duration // per TCP connection attempt; default 10 s
	MaxRedirects  int           // default 5; negative means none followed
	UserAgent     string        // default "figsupport-fetch/1"
	TLSHandshake  time.Duration // default 10 s

	// LookupNetIP resolves host names; nil means the system resolver. Tests inject one to map a
	// name to a private address.
	LookupNetIP func(ctx context.Context, host string) ([]netip.Addr, error)

	// AllowLoopback is for TESTS ONLY, so that httptest servers can be fetched. No configuration
	// key sets it; every other forbidden range stays forbidden even when it is true.
	AllowLoopback bool
}

// Defaults.
const (
	DefaultMaxBytes      int64 = 200 << 20
	DefaultTimeout             = 10 * time.Minute
	DefaultHeaderTimeout       = 30 * time.Second
	DefaultDialTimeout         = 10 * time.Second
	DefaultMaxRedirects        = 5
)

func (c Config) withDefaults() Config {
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.TLSHandshake <= 0 {
		c.TLSHandshake = 10 * time.Second
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = DefaultMaxRedirects
	}
	if c.UserAgent == "" {
		c.UserAgent = "figsupport-fetch/1"
	}
	if c.LookupNetIP == nil {
		c.LookupNetIP = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return c
}

// Fetcher downloads URLs safely. Safe for concurrent use.
type Fetcher struct {
	cfg    Config
	client *http.Client
}

// New returns a fetcher with its own transport (no proxy, compression left alone so the stored
// bytes are the served bytes).
func New(cfg Config) *Fetcher {
	cfg = cfg.withDefaults()
	f := &Fetcher{cfg: cfg}
	dialer := &net.Dialer{
		Timeout:   cfg.DialTimeout,
		KeepAlive: 30 * time.Second,
		// The last word: whatever resolved the name, the socket may only connect to a public address.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: unparsable dial address", ErrForbiddenAddress)
			}
			return checkAddr(ap.Addr(), cfg.AllowLoopback)
		},
	}
	tr := &http.Transport{
		Proxy:                 nil, // never HTTP(S)_PROXY: a proxy would dial for us, past the Control hook
		DialContext:           f.dialContext(dialer),
		TLSHandshakeTimeout:   cfg.TLSHandshake,
		ResponseHeaderTimeout: cfg.HeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}
	f.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects || cfg.MaxRedirects < 0 {
				return fmt.Errorf("%w (more than %d)", ErrTooManyRedirects, max(cfg.MaxRedirects, 0))
			}
			return checkURL(req.URL)
		},
	}
	return f
}

// dialContext resolves the name itself (through the injectable lookup) and dials the addresses
// one by one; the dialer's Control hook refuses any that is not public. Resolving here, not in the
// dialer, is what lets tests map a name to a private address.
func (f *Fetcher) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else {
			ips, err = f.cfg.LookupNetIP(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("resolve %s: %w", host, err)
			}
			if len(ips) == 0 {
				return nil, fmt.Errorf("resolve %s: no address", host)
			}
		}
		var firstErr error
		for _, ip := range ips {
			// Refuse early, with a clear error, rather than after a syscall; Control still re-checks.
			if err := checkAddr(ip, f.cfg.AllowLoopback); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("%s resolves to a forbidden address: %w", host, err)
				}
				continue
			}
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		return nil, firstErr
	}
}

func checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w (got %q)", ErrScheme, u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("url has no host")
	}
	if u.User != nil {
		return errors.New("url must not carry credentials")
	}
	return nil
}

// Result is a fetched body still streaming, with hints about the file.
type Result struct {
	Body        io.ReadCloser // at most MaxBytes; reading past it fails with ErrTooLarge; Close it
	Size        int64         // Content-Length, or -1 when unknown
	Name        string        // from Content-Disposition, else the last path segment of the final URL
	ContentType string        // the server's Content-Type, "" when absent or generic
	FinalURL    string        // after redirects, without query string
}

// Redact is a URL fit for errors and logs: scheme, host and path, no query (signed URLs carry tokens there).
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// Fetch starts downloading rawURL. On success the caller owns Result.Body and must close it;
// the fetch's total timeout runs until then.
func (f *Fetcher) Fetch(ctx context.Context, rawURL string) (*Result, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	if err := checkURL(u); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", Redact(rawURL), err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fetch %s: %w", Redact(rawURL), err)
	}
	req.Header.Set("User-Agent", f.cfg.UserAgent)
	req.Header.Set("Accept", "*/*")
	resp, err := f.client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fetch %s: %w", Redact(rawURL), unwrapURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("fetch %s: %w", Redact(rawURL), &StatusError{Code: resp.StatusCode, Status: resp.Status})
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("fetch %s: %w: %d bytes announced, at most %d", Redact(rawURL), ErrTooLarge, resp.ContentLength, f.cfg.MaxBytes)
	}
	final := resp.Request.URL
	return &Result{
		Body:        &cappedBody{rc: resp.Body, left: f.cfg.MaxBytes, max: f.cfg.MaxBytes, cancel: cancel},
		Size:        resp.ContentLength,
		Name:        nameHint(resp.Header.Get("Content-Disposition"), final),
		ContentType: typeHint(resp.Header.Get("Content-Type")),
		FinalURL:    Redact(final.String()),
	}, nil
}

// unwrapURLError drops *url.Error's wrapping, which repeats the full URL (query string included).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func nameHint(disposition string, u *url.URL) string {
	if disposition != "" {
		if _, params, err := mime.ParseMediaType(disposition); err == nil && params["filename"] != "" {
			return params["filename"]
		}
	}
	return path.Base(strings.TrimRight(u.Path, "/"))
}

func typeHint(ct string) string {
	if ct == "" {
		return ""
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt == "application/octet-stream" || mt == "binary/octet-stream" {
		return ""
	}
	return mime.FormatMediaType(mt, params)
}

// cappedBody fails as soon as the stream goes past the cap, so an endless or lying server costs at
// most max bytes.
type cappedBody struct {
	rc     io.ReadCloser
	left   int64
	max    int64
	cancel context.CancelFunc
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, b.max)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), fmt.Errorf("%w: more than %d bytes", ErrTooLarge, b.max)
	}
	return n, err
}

func (b *cappedBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

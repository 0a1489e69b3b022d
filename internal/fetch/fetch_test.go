package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr    string
		allowLo bool
		ok      bool
	}{
		{"93.184.216.34", false, true},
		{"1.1.1.1", false, true},
		{"2606:4700:4700::1111", false, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"127.8.9.10", false, false},
		{"::1", false, false},
		{"::1", true, true},
		{"::ffff:127.0.0.1", false, false},
		{"::ffff:127.0.0.1", true, true},
		{"10.0.0.1", false, false},
		{"10.0.0.1", true, false}, // the test switch opens loopback only
		{"172.16.5.4", false, false},
		{"172.32.0.1", false, true},
		{"192.168.1.1", false, false},
		{"169.254.169.254", false, false},
		{"169.254.169.254", true, false},
		{"::ffff:169.254.169.254", false, false},
		{"::ffff:10.1.2.3", false, false},
		{"::ffff:8.8.8.8", false, true},
		{"100.64.0.1", false, false},
		{"100.127.255.254", false, false},
		{"100.128.0.1", false, true},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"255.255.255.255", false, false},
		{"224.0.0.1", false, false},
		{"239.255.255.250", false, false},
		{"::", false, false},
		{"fe80::1", false, false},
		{"fe80::1%eth0", false, false},
		{"fc00::1", false, false},
		{"fd12:3456::1", false, false},
		{"ff02::1", false, false},
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 of 169.254.169.254
		{"64:ff9b::808:808", false, true},    // NAT64 of 8.8.8.8
		{"2002:a00:1::", false, false},       // 6to4 of 10.0.0.1
		{"2002:808:808::", false, true},
		{"::127.0.0.1", false, false}, // IPv4-compatible
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := checkAddr(netip.MustParseAddr(tt.addr), tt.allowLo)
			if (err == nil) != tt.ok {
				t.Fatalf("checkAddr(%s, allowLoopback=%v) = %v, want ok=%v", tt.addr, tt.allowLo, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("error %v is not ErrForbiddenAddress", err)
			}
		})
	}
}

func TestFetchOK(t *testing.T) {
	body := bytes.Repeat([]byte("glTF"), 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/start" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		switch r.URL.Path {
		case "/start":
			http.Redirect(w, r, "/files/model.glb?sig=secret", http.StatusFound)
		case "/files/model.glb":
			w.Header().Set("Content-Type", "model/gltf-binary")
			w.Write(body)
		case "/disp":
			w.Header().Set("Content-Disposition", `attachment; filename="photo 1.jpg"`)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(body)
		}
	}))
	defer srv.Close()
	f := New(Config{AllowLoopback: true})

	tests := []struct {
		path, name, ctype string
	}{
		{"/start", "model.glb", "model/gltf-binary"},
		{"/disp", "photo 1.jpg", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, err := f.Fetch(context.Background(), srv.URL+tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("body: got %d bytes, want %d", len(got), len(body))
			}
			if res.Name != tt.name || res.ContentType != tt.ctype || res.Size != int64(len(body)) {
				t.Fatalf("hints: name %q type %q size %d", res.Name, res.ContentType, res.Size)
			}
			if strings.Contains(res.FinalURL, "secret") {
				t.Fatalf("final url keeps the query: %s", res.FinalURL)
			}
		})
	}
}

func TestFetchRefused(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/to-private":
			http.Redirect(w, r, "http://10.0.0.7/x", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusMovedPermanently)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/to-evil-name":
			http.Redirect(w, r, "http://internal.example.test/admin", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/404":
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "internal.example.test":
			return []netip.Addr{netip.MustParseAddr("10.20.30.40")}, nil
		case "rebind.example.test":
			return []netip.Addr{netip.MustParseAddr("192.168.0.10"), netip.MustParseAddr("::ffff:127.0.0.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]

	tests := []struct {
		name      string
		allowLo   bool
		url       string
		want      error
		wantHits  int32
		lookupSys bool
	}{
		{"loopback with the test switch off", false, srv.URL + "/ok", ErrForbiddenAddress, 0, false},
		{"localhost by name, system resolver", false, "http://localhost" + port + "/ok", ErrForbiddenAddress, 0, true},
		{"ipv6 loopback", false, "http://[::1]" + port + "/ok", ErrForbiddenAddress, 0, false},
		{"metadata address", true, "http://169.254.169.254/latest/meta-data/", ErrForbiddenAddress, 0, false},
		{"name resolving to a private address", true, "http://internal.example.test" + port + "/x", ErrForbiddenAddress, 0, false},
		{"name resolving to private and mapped loopback", false, "http://rebind.example.test" + port + "/x", ErrForbiddenAddress, 0, false},
		{"redirect to a private address", true, srv.URL + "/to-private", ErrForbiddenAddress, 1, false},
		{"redirect to the metadata service", true, srv.URL + "/to-metadata", ErrForbiddenAddress, 1, false},
		{"redirect to a name resolving privately", true, srv.URL + "/to-evil-name", ErrForbiddenAddress, 1, false},
		{"redirect to file scheme", true, srv.URL + "/to-file", ErrScheme, 1, false},
		{"redirect loop", true, srv.URL + "/loop", ErrTooManyRedirects, 6, false},
		{"ftp scheme", true, "ftp://example.com/x", ErrScheme, 0, false},
		{"file scheme", true, "file:///etc/passwd", ErrScheme, 0, false},
		{"not found", true, srv.URL + "/404", ErrStatus, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			cfg := Config{AllowLoopback: tt.allowLo}
			if !tt.lookupSys {
				cfg.LookupNetIP = lookup
			}
			res, err := New(cfg).Fetch(context.Background(), tt.url)
			if err == nil {
				res.Body.Close()
				t.Fatal("fetch succeeded, want refusal")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got := hits.Load(); got != tt.wantHits {
				t.Fatalf("server saw %d requests, want %d", got, tt.wantHits)
			}
		})
	}
}

func TestFetchSizeCap(t *testing.T) {
	const maxBytes = 1000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/announced":
			w.Header().Set("Content-Length", "5000")
			w.Write(make([]byte, 5000))
		case "/chunked":
			// No Content-Length: the cap must bite while streaming.
			for range 10 {
				w.Write(make([]byte, 500))
				w.(http.Flusher).Flush()
			}
		case "/exact":
			w.Write(make([]byte, maxBytes))
		}
	}))
	defer srv.Close()
	f := New(Config{AllowLoopback: true, MaxBytes: maxBytes})

	t.Run("announced too large is refused before reading", func(t *testing.T) {
		_, err := f.Fetch(context.Background(), srv.URL+"/announced")
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
	t.Run("streamed too large fails while reading", func(t *testing.T) {
		res, err := f.Fetch(context.Background(), srv.URL+"/chunked")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		n, err := io.Copy(io.Discard, res.Body)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if n > maxBytes {
			t.Fatalf("read %d bytes past the cap of %d", n, maxBytes)
		}
	})
	t.Run("exactly the cap is fine", func(t *testing.T) {
		res, err := f.Fetch(context.Background(), srv.URL+"/exact")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		n, err := io.Copy(io.Discard, res.Body)
		if err != nil || n != maxBytes {
			t.Fatalf("read %d, %v", n, err)
		}
	})
}

func TestFetchHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	f := New(Config{AllowLoopback: true, HeaderTimeout: 20 * time.Millisecond})
	if _, err := f.Fetch(context.Background(), srv.URL); err == nil {
		t.Fatal("fetch of a server that never answers succeeded")
	}
}

func TestFetchIgnoresProxyEnvironment(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	// A name, not an address: the proxy would receive it, we must resolve it ourselves and refuse.
	f := New(Config{LookupNetIP: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.9.9.9")}, nil
	}})
	if _, err := f.Fetch(context.Background(), "http://files.example.test/a.jpg"); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("err = %v, want ErrForbiddenAddress", err)
	}
	if proxied.Load() != 0 {
		t.Fatal("the request went through the environment's proxy")
	}
}

func TestRedact(t *testing.T) {
	got := Redact("https://user:pw@files.example.com/a/b.jpg?X-Amz-Signature=abc#frag")
	if got != "https://files.example.com/a/b.jpg" {
		t.Fatalf("Redact = %q", got)
	}
}

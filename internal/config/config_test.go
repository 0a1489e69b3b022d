package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/golden"
)

// .env.example is generated from Keys so the two can never disagree.
func TestEnvExampleMatchesKeys(t *testing.T) {
	const path = "../../.env.example"
	if golden.Update() {
		if err := os.WriteFile(path, []byte(Example()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != Example() {
		t.Fatal(".env.example is stale: run go test ./internal/config -update")
	}
}

func lookup(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestTypedReads(t *testing.T) {
	v := New(lookup(map[string]string{
		"FIGSUPPORT_THREAD_WINDOW": "3d",
		"HUBSPOT_OPEN_STAGES":      " 1 , 2,,3 ",
		"FIGSUPPORT_MAX_FILES":     "7",
		"NOTIFICATION_EMAIL":       "a@x.fr; b@y.fr",
		"SMTP_AUTH":                "XOAUTH2",
	}))
	if got := v.Duration("FIGSUPPORT_THREAD_WINDOW"); got != 72*time.Hour {
		t.Errorf("window = %v", got)
	}
	if got := v.Duration("FIGSUPPORT_HASH_TTL"); got != 24*time.Hour {
		t.Errorf("hash ttl default = %v", got)
	}
	if got := v.List("HUBSPOT_OPEN_STAGES"); len(got) != 3 || got[2] != "3" {
		t.Errorf("stages = %q", got)
	}
	if got := v.Int("FIGSUPPORT_MAX_FILES"); got != 7 {
		t.Errorf("max files = %d", got)
	}
	if got := v.Emails("NOTIFICATION_EMAIL"); len(got) != 2 {
		t.Errorf("emails = %q", got)
	}
	if got := v.OneOf("SMTP_AUTH", "login", "plain", "xoauth2", "none"); got != "xoauth2" {
		t.Errorf("auth = %q", got)
	}
	if err := v.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBool(t *testing.T) {
	tests := []struct {
		val  string
		set  bool
		want bool
	}{
		{"", false, false}, // the default, off
		{"on", true, true}, {"ON", true, true}, {"true", true, true}, {"yes", true, true}, {"1", true, true},
		{"off", true, false}, {"false", true, false}, {"no", true, false}, {"0", true, false}, {" ", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.val, func(t *testing.T) {
			m := map[string]string{}
			if tt.set {
				m["FIGSUPPORT_ACK"] = tt.val
			}
			v := New(lookup(m))
			if got := v.Bool("FIGSUPPORT_ACK"); got != tt.want || v.Err() != nil {
				t.Fatalf("Bool(%q) = %v, %v; want %v", tt.val, got, v.Err(), tt.want)
			}
		})
	}
}

func TestBadValuesNameTheKey(t *testing.T) {
	tests := []struct {
		key, val string
		read     func(*Values)
	}{
		{"FIGSUPPORT_THREAD_WINDOW", "two weeks", func(v *Values) { v.Duration("FIGSUPPORT_THREAD_WINDOW") }},
		{"FIGSUPPORT_MAX_FILES", "-1", func(v *Values) { v.Int("FIGSUPPORT_MAX_FILES") }},
		{"HUBSPOT_BASE_URL", "ftp://x", func(v *Values) { v.URL("HUBSPOT_BASE_URL") }},
		{"NOTIFICATION_EMAIL", "admin", func(v *Values) { v.Emails("NOTIFICATION_EMAIL") }},
		{"SMTP_AUTH", "cram-md5", func(v *Values) { v.OneOf("SMTP_AUTH", "login", "plain", "xoauth2", "none") }},
		{"FIGSUPPORT_ACK", "maybe", func(v *Values) { v.Bool("FIGSUPPORT_ACK") }},
		{"FIGSUPPORT_LEASE", "2s", func(v *Values) { v.DurationAtLeast("FIGSUPPORT_LEASE", 3*time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			v := New(lookup(map[string]string{tt.key: tt.val}))
			tt.read(v)
			var ce *Error
			if err := v.Err(); !errors.As(err, &ce) || ce.Key != tt.key || !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want a config error naming %s", err, tt.key)
			}
		})
	}
}

func TestDurationAtLeast(t *testing.T) {
	for val, want := range map[string]time.Duration{"": time.Minute, "3s": 3 * time.Second, "2m": 2 * time.Minute} {
		v := New(lookup(map[string]string{"FIGSUPPORT_LEASE": val}))
		if got := v.DurationAtLeast("FIGSUPPORT_LEASE", 3*time.Second); got != want || v.Err() != nil {
			t.Errorf("%q: got %v, err %v; want %v", val, got, v.Err(), want)
		}
	}
}

func TestOptionalDuration(t *testing.T) {
	tests := []struct {
		val  string
		set  bool
		want time.Duration
		bad  bool
	}{
		{set: false, want: 0},
		{val: "0", set: true, want: 0},
		{val: "off", set: true, want: 0},
		{val: "2m", set: true, want: 2 * time.Minute},
		{val: "1d", set: true, want: 24 * time.Hour},
		{val: "soon", set: true, bad: true},
		{val: "-5m", set: true, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.val, func(t *testing.T) {
			m := map[string]string{}
			if tt.set {
				m["FIGSUPPORT_MAIL_POLL_INTERVAL"] = tt.val
			}
			v := New(lookup(m))
			got := v.OptionalDuration("FIGSUPPORT_MAIL_POLL_INTERVAL")
			if err := v.Err(); (err != nil) != tt.bad || got != tt.want {
				t.Fatalf("got %v, err %v", got, err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	v := New(lookup(map[string]string{"HUBSPOT_API_KEY": "pat-na1-secret", "HUBSPOT_HUB_ID": "1234"}))
	if got := v.Redact("token pat-na1-secret for hub 1234"); got != "token *** for hub 1234" {
		t.Fatalf("Redact = %q", got)
	}
}

// The README's configuration table is generated from Keys too.
func TestREADMEConfigTable(t *testing.T) {
	const path = "../../README.md"
	const begin, end = "<!-- config-table: generated from internal/config.Keys; TestREADMEConfigTable checks it -->\n", "<!-- /config-table -->"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the config-table markers")
	}
	want := s[:i+len(begin)] + Table() + s[j:]
	if golden.Update() {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		s = want
	}
	if s != want {
		t.Fatal("README.md's configuration table is stale: run go test ./internal/config -update")
	}
}

// Each part of the wiring sees its own problems (Mark, ErrSince); a key read twice with the same
// bad value is one problem; Errors lists them all, each naming its key.
func TestErrorsByPart(t *testing.T) {
	v := New(func(k string) (string, bool) {
		switch k {
		case "FIGSUPPORT_MAX_FILES":
			return "many", true
		case "SMTP_PORT":
			return "x", true
		}
		return "", false
	})
	v.Int("FIGSUPPORT_MAX_FILES")
	v.Int("FIGSUPPORT_MAX_FILES")
	mark := v.Mark()
	if err := v.ErrSince(mark); err != nil {
		t.Fatalf("nothing since the mark, got %v", err)
	}
	v.Int("SMTP_PORT")
	var ce *Error
	if err := v.ErrSince(mark); !errors.As(err, &ce) || ce.Key != "SMTP_PORT" || strings.Contains(err.Error(), "FIGSUPPORT_MAX_FILES") {
		t.Fatalf("ErrSince = %v, want SMTP_PORT only", err)
	}
	all := v.Errors()
	if len(all) != 2 || all[0].Key != "FIGSUPPORT_MAX_FILES" || all[1].Key != "SMTP_PORT" {
		t.Fatalf("Errors = %v", all)
	}
	if !errors.Is(v.Err(), ErrConfig) {
		t.Fatal("Err is not a configuration error")
	}
}

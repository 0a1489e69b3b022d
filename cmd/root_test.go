package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/clickup"
	"github.com/figurative/figsupport/internal/hubspot"
	"github.com/figurative/figsupport/internal/notify"
)

func newTestGlobals(t *testing.T, env map[string]string) (*Globals, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &Globals{
		IO:  IO{In: strings.NewReader(""), Out: &out, ErrOut: &errb},
		Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) },
	}
	return g, &out, &errb
}

// flags > environment > .env > config file > defaults, key by key.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "figsupport.yaml")
	envFile := filepath.Join(dir, "test.env")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfgFile, "figsupport_thread_window: 1d\nhubspot_stage_new: cfg\nhubspot_pipeline_id: cfg\nFIGSUPPORT_DATA_DIR: /from/config\nsmtp_port: 2525\n")
	write(envFile, "FIGSUPPORT_THREAD_WINDOW=2d\nHUBSPOT_STAGE_NEW=dotenv\nFIGSUPPORT_DATA_DIR=/from/dotenv\n")
	env := map[string]string{"FIGSUPPORT_THREAD_WINDOW": "3d", "FIGSUPPORT_DATA_DIR": "/from/env"}

	tests := []struct {
		name, key, want string
		flags           []string
	}{
		{"environment beats .env and config", "FIGSUPPORT_THREAD_WINDOW", "3d", nil},
		{".env beats config", "HUBSPOT_STAGE_NEW", "dotenv", nil},
		{"config beats default", "HUBSPOT_PIPELINE_ID", "cfg", nil},
		{"config keys in any case", "SMTP_PORT", "2525", nil},
		{"default when unset", "HUBSPOT_STAGE_CLOSED", "4", nil},
		{"flag beats everything", "FIGSUPPORT_DATA_DIR", "/from/flag", []string{"--data-dir", "/from/flag"}},
		{"environment without flag", "FIGSUPPORT_DATA_DIR", "/from/env", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _, _ := newTestGlobals(t, env)
			root := NewRootCmd(g)
			args := append([]string{"--config", cfgFile, "--env-file", envFile}, tt.flags...)
			if err := root.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			if err := g.load(root); err != nil {
				t.Fatal(err)
			}
			if got := g.Values.String(tt.key); got != tt.want {
				t.Fatalf("%s = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestClassifyJSONContract(t *testing.T) {
	g, out, _ := newTestGlobals(t, nil)
	g.In = strings.NewReader(`{"user_email":"a@b.fr","objet":"Paiement refusé à l'étape 3D Secure"}`)
	if code := Run(context.Background(), g, []string{"classify", "-o", "json", "-"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := "{\n  \"classification\": \"SUPPORT\",\n  \"ambiguous\": false,\n  \"method\": \"rules\",\n  \"reasons\": ["
	if !strings.HasPrefix(out.String(), want) {
		t.Fatalf("classify -o json =\n%s\nwant it to start with\n%s", out, want)
	}
}

// With -o json, a failure is one JSON object on stdout (the answer), naming the field; stderr
// says nothing more.
func TestErrorsAsJSONOnStdout(t *testing.T) {
	g, out, errb := newTestGlobals(t, map[string]string{"FIGSUPPORT_DATA_DIR": t.TempDir()})
	g.In = strings.NewReader(`{"user_email":"not-an-address","objet":"x"}`)
	code := Run(context.Background(), g, []string{"process", "-o", "json", "-"})
	if code != ExitUsage || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
	var e errorJSON
	dec := json.NewDecoder(out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() {
		t.Fatalf("stdout is not one JSON error: %v\n%s", err, out)
	}
	if e.Field != "user_email" || e.ExitCode != 2 || !strings.Contains(e.Error, "user_email") {
		t.Fatalf("error = %+v", e)
	}
}

func TestSecretsRedactedFromErrors(t *testing.T) {
	env := map[string]string{"FIGSUPPORT_DATA_DIR": t.TempDir(), "HUBSPOT_API_KEY": "pat-eu1-supersecret", "HUBSPOT_HUB_ID": "1", "HUBSPOT_BASE_URL": "not a url pat-eu1-supersecret"}
	g, _, errb := newTestGlobals(t, env)
	code := Run(context.Background(), g, []string{"ticket", "close", "1"})
	if code != ExitConfig {
		t.Fatalf("exit %d, want %d; stderr %s", code, ExitConfig, errb)
	}
	if strings.Contains(errb.String(), "supersecret") || !strings.Contains(errb.String(), "HUBSPOT_BASE_URL") {
		t.Fatalf("stderr = %q: want the key named and the secret redacted", errb)
	}
}

// Every service's refusal of our credentials is exit 4, whatever the service.
func TestCredentialErrorsExit4(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"hubspot 401", &hubspot.APIError{Status: 401}, ExitConfig},
		{"hubspot 403 scope", &hubspot.APIError{Status: 403}, ExitConfig},
		{"hubspot 500", &hubspot.APIError{Status: 500}, ExitFailed},
		{"clickup 401", &clickup.APIError{Status: 401}, ExitConfig},
		{"clickup 429", &clickup.APIError{Status: 429}, ExitFailed},
		{"graph 403", &notify.GraphError{Status: 403}, ExitConfig},
		{"graph 503", &notify.GraphError{Status: 503}, ExitFailed},
		{"smtp 535 at auth", &notify.SMTPError{Stage: "auth", Code: 535}, ExitConfig},
		{"smtp 550 at rcpt", &notify.SMTPError{Stage: "rcpt", Code: 550}, ExitFailed},
		{"wrapped in a step", &chain.StepError{Step: "contact", Err: fmt.Errorf("create contact: %w", &hubspot.APIError{Status: 401})}, ExitConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCodeOf(tt.err); got != tt.want {
				t.Fatalf("exit %d, want %d", got, tt.want)
			}
		})
	}
}

package e2e

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/figurative/figsupport/internal/fakes/clickupfake"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/fakes/llmfake"
	"github.com/figurative/figsupport/internal/fakes/smtpfake"
)

// The whole chain with every real backend configured, each talking to a faithful server started
// here: HubSpot and ClickUp fakes, a real S3 protocol server (gofakes3), a real SMTP server with
// STARTTLS and LOGIN, and an OpenAI-compatible LLM for the ambiguous request.
func TestProcessWithEveryService(t *testing.T) {
	hs := hubspotfake.New(hubspotfake.Options{Clock: hubspotfake.NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)), SearchLag: time.Hour})
	defer hs.Close()
	cu := clickupfake.New(t)

	mem := s3mem.New()
	if err := mem.CreateBucket("figurative-support"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(mem).Server())
	defer s3.Close()

	mail := smtpfake.Start(t, smtpfake.Options{Mechs: []string{"LOGIN"}, User: "support@figurative.fr", Pass: "mail-password"})

	llm := llmfake.New("sk-test")
	defer llm.Close()
	llm.Set(llmfake.Behavior{Answer: "MODELISATION"})

	host, port, _ := strings.Cut(mail.Addr(), ":")
	env := []string{
		"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"SSL_CERT_FILE=" + mail.CAFile(t),
		"HUBSPOT_API_KEY=" + hs.Options().Token, "HUBSPOT_BASE_URL=" + hs.URL, "HUBSPOT_HUB_ID=12345",
		"CLICKUP_API_KEY=" + clickupfake.Token, "CLICKUP_BASE_URL=" + cu.URL, "CLICKUP_PARENT_TASK_ID=" + clickupfake.ParentID,
		"R2_ENDPOINT_URL=" + s3.URL, "R2_ACCESS_KEY_ID=AKIDTEST", "R2_SECRET_ACCESS_KEY=r2-secret-key-0123456789",
		"R2_BUCKET_NAME=figurative-support", "R2_PUBLIC_URL=https://pub.example.r2.dev",
		"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_USER=support@figurative.fr", "SMTP_PASSWORD=mail-password",
		"NOTIFICATION_EMAIL=admin@figurative.fr, second@figurative.fr",
		"LLM_BASE_URL=" + llm.BaseURL(), "LLM_MODEL=test-model", "LLM_API_KEY=sk-test",
	}

	r := runEnv(t, env, "", "process", "-o", "json", "testdata/payloads/modelisation.json")
	first := decode(t, r)
	if !first.IsNewTicket || first.SubtaskID == "" {
		t.Fatalf("first = %+v, want a new ticket with a subtask", first)
	}
	second := decode(t, runEnv(t, env, "", "process", "-o", "json", "testdata/payloads/followup.json"))
	if second.TicketID != first.TicketID || second.SubtaskID != first.SubtaskID || second.Status != "updated" {
		t.Fatalf("follow-up = %+v, want it on ticket %s / subtask %s", second, first.TicketID, first.SubtaskID)
	}

	// HubSpot: one ticket with both files' public URLs and the subtask id.
	tickets := hs.Objects("tickets")
	if len(tickets) != 1 {
		t.Fatalf("%d tickets, want 1", len(tickets))
	}
	urls := tickets[0].Properties["fichiers_urls"]
	for _, want := range []string{
		"https://pub.example.r2.dev/requests/2026/01/demo-modelisation-1/chaise.glb",
		"https://pub.example.r2.dev/requests/2026/01/demo-modelisation-2/vue-de-face.png",
	} {
		if !strings.Contains(urls, want) {
			t.Errorf("fichiers_urls = %q, want %s", urls, want)
		}
	}
	if got := tickets[0].Properties["clickup_subtask_id"]; got != first.SubtaskID {
		t.Errorf("clickup_subtask_id = %q, want %s", got, first.SubtaskID)
	}
	// ClickUp: one subtask whose description has both messages; every request valid for the spec.
	subs := cu.Subtasks(clickupfake.ParentID)
	if len(subs) != 1 {
		t.Fatalf("%d subtasks, want 1", len(subs))
	}
	if v := cu.Violations(); len(v) > 0 {
		t.Errorf("requests that break ClickUp's OpenAPI description: %v", v)
	}
	// R2: the three objects, with their content types.
	for key, ctype := range map[string]string{
		"requests/2026/01/demo-modelisation-1/chaise.glb":      "model/gltf-binary",
		"requests/2026/01/demo-modelisation-1/vue-de-face.png": "image/png",
		"requests/2026/01/demo-modelisation-2/vue-de-face.png": "image/png",
	} {
		obj, err := mem.HeadObject("figurative-support", key)
		if err != nil {
			t.Errorf("object %s: %v", key, err)
			continue
		}
		if got := obj.Metadata["Content-Type"]; got != ctype {
			t.Errorf("object %s content type %q, want %q", key, got, ctype)
		}
	}
	// SMTP: two messages, each to both admins, over TLS with LOGIN.
	sessions := mail.Sessions()
	if len(sessions) != 2 {
		t.Fatalf("%d SMTP sessions, want 2", len(sessions))
	}
	for _, s := range sessions {
		if !s.TLS || s.Mech != "LOGIN" || len(s.To) != 2 || !strings.Contains(s.Data, "ticket #"+first.TicketID) {
			t.Errorf("session = %+v", s)
		}
	}

	// An ambiguous request goes to the LLM, which says MODELISATION.
	amb := `{"user_email":"x@example.com","objet":"Bonjour","description":"Une question sur votre service.","received_at":"2026-01-05T09:30:00Z"}`
	r = runEnv(t, env, amb, "classify", "-o", "json", "-")
	if r.code != 0 || !strings.Contains(r.stdout, `"method": "llm"`) || !strings.Contains(r.stdout, `"classification": "MODELISATION"`) {
		t.Fatalf("classify ambiguous: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if len(llm.Calls()) != 1 {
		t.Errorf("LLM calls = %d, want 1", len(llm.Calls()))
	}

	// doctor sees every service healthy.
	r = runEnv(t, env, "", "doctor", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) {
		t.Fatalf("doctor: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runEnv(t, env, "", "doctor"); !strings.Contains(r.stdout, "crm=hubspot tasks=clickup files=r2 notify=smtp") {
		t.Errorf("doctor does not name the real backends:\n%s", r.stdout)
	}
	for _, secret := range []string{"r2-secret-key-0123456789", "mail-password", "sk-test", clickupfake.Token, hs.Options().Token} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("doctor printed a secret")
		}
	}
}

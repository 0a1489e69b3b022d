package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/fakes/graphfake"
)

// Notifications through Microsoft Graph: a client-credentials token from the (fake) Entra token
// endpoint, then sendMail as the configured mailbox; doctor checks the token without sending.
func TestProcessNotifiesThroughGraph(t *testing.T) {
	g := graphfake.New(t)
	env := []string{
		"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"NOTIFY_TRANSPORT=graph", "GRAPH_SENDER=support@figurative.fr", "GRAPH_BASE_URL=" + g.URL,
		"OAUTH_TENANT_ID=" + graphfake.Tenant, "OAUTH_CLIENT_ID=" + graphfake.ClientID,
		"OAUTH_CLIENT_SECRET=" + graphfake.ClientSecret, "OAUTH_TOKEN_URL=" + g.TokenURL(),
		"NOTIFICATION_EMAIL=admin@figurative.fr",
	}
	resp := decode(t, runEnv(t, env, "", "process", "-o", "json", "testdata/payloads/support.json"))
	mails := g.Mails()
	if len(mails) != 1 || mails[0].Sender != "support@figurative.fr" || mails[0].To[0] != "admin@figurative.fr" ||
		!strings.Contains(mails[0].Subject, "#"+resp.TicketID) {
		t.Fatalf("mails = %+v", mails)
	}
	if reqs := g.TokenRequests(); len(reqs) != 1 || reqs[0].Scope != "https://graph.microsoft.com/.default" {
		t.Fatalf("token requests = %+v", reqs)
	}
	r := runEnv(t, env, "", "doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "notify=graph") || strings.Contains(r.stdout+r.stderr, graphfake.ClientSecret) {
		t.Fatalf("doctor: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if g.SendCalls() != 1 {
		t.Fatalf("doctor sent mail: %d sends", g.SendCalls())
	}
}

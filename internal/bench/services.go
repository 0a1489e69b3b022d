package bench

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/figurative/figsupport/internal/fakes/clickupfake"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/fakes/latency"
	"github.com/figurative/figsupport/internal/fakes/smtpfake"
)

// Latencies are the round trips injected into the fakes, per call.
type Latencies struct {
	HubSpot, ClickUp, S3 time.Duration
}

// Injected are the round trips the figures are measured with (issue 9): about what each service
// answers in from a server in Europe.
var Injected = Latencies{HubSpot: 120 * time.Millisecond, ClickUp: 150 * time.Millisecond, S3: 100 * time.Millisecond}

// Bucket is the S3 bucket the fakes serve.
const Bucket = "figurative-support"

// ServiceOptions vary the fakes.
type ServiceOptions struct {
	// EnforceLimits makes the HubSpot fake answer 429 past 100 calls per 10 s (on the wall clock).
	EnforceLimits bool
	// S3 replaces gofakes3 (which keeps every byte in memory) with this handler, behind the same latency.
	S3 http.Handler
}

// Services are every outside service the chain talks to, each an in-process fake on loopback
// with its latency: HubSpot and ClickUp (the project's fakes), S3 (gofakes3 behind
// latency.Wrap), SMTP (smtpfake, STARTTLS and LOGIN).
type Services struct {
	HubSpot *hubspotfake.Server
	ClickUp *clickupfake.Server
	S3      *latency.Handler
	SMTP    *smtpfake.Server
	s3URL   string
	caFile  string
}

// StartServices starts the fakes; they stop with tb.
func StartServices(tb testing.TB, l Latencies, o ServiceOptions) *Services {
	tb.Helper()
	hs := hubspotfake.New(hubspotfake.Options{Clock: hubspotfake.NewRealClock(), Latency: l.HubSpot, EnforceLimits: o.EnforceLimits})
	tb.Cleanup(hs.Close)
	cu := clickupfake.New(tb)
	cu.SetLatency(l.ClickUp)
	// ClickUp's own limit (100 a minute) is not what is measured here.
	cu.Limit = 1 << 30
	h := o.S3
	if h == nil {
		mem := s3mem.New()
		if err := mem.CreateBucket(Bucket); err != nil {
			tb.Fatal(err)
		}
		h = gofakes3.New(mem).Server()
	}
	s3h := latency.Wrap(h, l.S3)
	s3 := httptest.NewServer(s3h)
	tb.Cleanup(s3.Close)
	mail := smtpfake.Start(tb, smtpfake.Options{Mechs: []string{"LOGIN"}, User: "support@figurative.fr", Pass: "mail-password"})
	return &Services{HubSpot: hs, ClickUp: cu, S3: s3h, SMTP: mail, s3URL: s3.URL, caFile: mail.CAFile(tb)}
}

// Env is the environment that points the binary at the fakes.
func (s *Services) Env() []string {
	return []string{
		"SSL_CERT_FILE=" + s.caFile,
		"HUBSPOT_API_KEY=" + s.HubSpot.Options().Token, "HUBSPOT_BASE_URL=" + s.HubSpot.URL, "HUBSPOT_HUB_ID=12345",
		"CLICKUP_API_KEY=" + clickupfake.Token, "CLICKUP_BASE_URL=" + s.ClickUp.URL, "CLICKUP_PARENT_TASK_ID=" + clickupfake.ParentID,
		"R2_ENDPOINT_URL=" + s.s3URL, "R2_ACCESS_KEY_ID=AKIDTEST", "R2_SECRET_ACCESS_KEY=r2-secret-key-0123456789",
		"R2_BUCKET_NAME=" + Bucket, "R2_PUBLIC_URL=https://pub.example.r2.dev",
		"SMTP_HOST=" + s.SMTP.Host(), "SMTP_PORT=" + strconv.Itoa(s.SMTP.Port()),
		"SMTP_USER=support@figurative.fr", "SMTP_PASSWORD=mail-password",
		"NOTIFICATION_EMAIL=admin@figurative.fr",
	}
}

// Calls counts the calls each service received.
type Calls struct{ HubSpot, ClickUp, S3 int }

// Calls is how many calls each service received so far.
func (s *Services) Calls() Calls {
	return Calls{HubSpot: len(s.HubSpot.Calls()), ClickUp: len(s.ClickUp.Calls()), S3: int(s.S3.Calls())}
}

// Sub is c minus an earlier count.
func (c Calls) Sub(before Calls) Calls {
	return Calls{HubSpot: c.HubSpot - before.HubSpot, ClickUp: c.ClickUp - before.ClickUp, S3: c.S3 - before.S3}
}

// Sequential is what the calls cost one after another: the sum of their latencies.
func (c Calls) Sequential(l Latencies) time.Duration {
	return time.Duration(c.HubSpot)*l.HubSpot + time.Duration(c.ClickUp)*l.ClickUp + time.Duration(c.S3)*l.S3
}

package cmd

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/health"
)

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

// doctor runs every check and reports each cause once: every bad key, one failure for a host that
// does not answer (HubSpot's four checks and R2's three are not run against it), and R2's public
// URL is never "ok" then. It exits 4, the worst.
func TestDoctorReportsEachCauseOnce(t *testing.T) {
	down := closedURL(t)
	e := newEnv(t,
		"FIGSUPPORT_THREAD_WINDOW=two weeks", "FIGSUPPORT_MAX_FILES=many",
		"HUBSPOT_API_KEY=pat-eu1-secret-token", "HUBSPOT_BASE_URL="+down, "HUBSPOT_HUB_ID=1",
		"CLICKUP_API_KEY=pk_secret_token",
		"R2_ENDPOINT_URL="+down, "R2_ACCESS_KEY_ID=id", "R2_SECRET_ACCESS_KEY=r2-secret-key", "R2_BUCKET_NAME=b", "R2_PUBLIC_URL=https://pub.example.r2.dev",
	)
	r := e.run("", "doctor", "-o", "json")
	var got struct {
		OK     bool           `json:"ok"`
		Checks []health.Check `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if r.code != ExitConfig || got.OK {
		t.Fatalf("exit %d ok %v", r.code, got.OK)
	}
	fails := map[string]int{}
	for _, c := range got.Checks {
		if c.Status == health.Fail {
			fails[c.Service+" "+c.Name]++
		}
		if c.Service == "r2" && c.Name == "public URL" && c.Status == health.OK {
			t.Errorf("R2's public URL ok while R2 is unreachable")
		}
		if strings.Contains(c.Detail, "secret") {
			t.Errorf("a secret in %+v", c)
		}
	}
	want := map[string]int{
		"config FIGSUPPORT_THREAD_WINDOW": 1, "config FIGSUPPORT_MAX_FILES": 1,
		"tasks CLICKUP_PARENT_TASK_ID": 1,
		"hubspot reachable":            1,
	}
	for k, n := range want {
		if fails[k] != n {
			t.Errorf("%q failed %d time(s), want %d; all failures: %v", k, fails[k], n, fails)
		}
	}
	if len(fails) != len(want) {
		t.Errorf("failures %v, want exactly %v", fails, want)
	}
}

// With every service fine (here: all embedded), doctor exits 0 even with warnings.
func TestDoctorWarningsExit0(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "warn  files") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

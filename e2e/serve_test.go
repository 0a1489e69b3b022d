package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/server"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// daemon is a running `figsupport serve`.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	done   chan error
	// exited is closed once the process was waited for.
	exited chan struct{}
}

// lockedBuffer collects the daemon's log while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// reServing finds the daemon's start line: JSON, since its stderr is not a terminal.
var reServing = regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"`)

func startDaemon(t *testing.T, env []string) *daemon {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0")
	cmd.Dir = ".."
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			d.stderr.WriteString(line + "\n")
			if m := reServing.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		err := cmd.Wait()
		close(d.exited)
		d.done <- err
	}()
	select {
	case a := <-addr:
		d.url = "http://" + a
	case err := <-d.done:
		t.Fatalf("serve exited: %v\n%s", err, d.stderr)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve did not start\n%s", d.stderr)
	}
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			cmd.Process.Kill()
			<-d.exited
		}
		// A failed scenario's daemon log is kept for the post-mortem (the test's own dir goes).
		if t.Failed() {
			if f, err := os.CreateTemp("", "figsupport-e2e-*.log"); err == nil {
				f.WriteString(d.stderr.String())
				f.Close()
				t.Logf("daemon log (pid %d): %s", cmd.Process.Pid, f.Name())
			}
		}
	})
	return d
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM\n%s", err, d.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

func post(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("status %d, body not JSON: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// The daemon end to end: signed JSON, a bearer-token multipart upload, the follow-up joining the
// same ticket, bad input and bad signatures refused, and a graceful stop on SIGTERM.
func TestServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, []string{"FIGSUPPORT_DATA_DIR=" + data, "FIGSUPPORT_WEBHOOK_SECRET=" + testSecret, "FIGSUPPORT_WEBHOOK_TOKEN=tok-0123456789abcdef"})

	body := []byte(`{"source":"support","objet":"Paiement refusé","description":"Ma carte est refusée","user_email":"Web@Example.com","received_at":"2026-01-05T09:00:00Z"}`)
	req, _ := http.NewRequest("POST", d.url+"/webhook/request", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := server.SignRequest(req, testSecret, "msg_1", time.Now(), body); err != nil {
		t.Fatal(err)
	}
	code, first := post(t, req)
	if code != 200 || first["status"] != "created" || first["request_id"] != "msg_1" {
		t.Fatalf("signed JSON: %d %v", code, first)
	}

	// Multipart with a file part, authenticated by the bearer token: the follow-up joins the ticket.
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("user_email", "web@example.com")
	w.WriteField("objet", "Voici la photo")
	w.WriteField("received_at", "2026-01-05T10:00:00Z")
	fw, _ := w.CreateFormFile("fichiers", "capture.png")
	png, _ := os.ReadFile("../testdata/files/vue-de-face.png")
	fw.Write(png)
	w.Close()
	req, _ = http.NewRequest("POST", d.url+"/webhook/request", bytes.NewReader(mp.Bytes()))
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
	req.Header.Set("Idempotency-Key", "form-77")
	code, second := post(t, req)
	if code != 200 || second["status"] != "updated" || second["ticket_id"] != first["ticket_id"] || second["files_uploaded"] != float64(1) {
		t.Fatalf("multipart follow-up: %d %v", code, second)
	}
	files := second["files"].([]any)
	stored := strings.TrimPrefix(files[0].(map[string]any)["url"].(string), "file://")
	if b, err := os.ReadFile(stored); err != nil || !bytes.Equal(b, png) {
		t.Fatalf("stored file %s: %v", stored, err)
	}
	if left, _ := filepath.Glob(filepath.Join(data, "spool", "*")); len(left) != 0 {
		t.Errorf("spool not cleaned: %v", left)
	}

	// Refusals.
	for _, tt := range []struct {
		name   string
		body   string
		header map[string]string
		want   int
		field  string
	}{
		{"no credentials", `{}`, map[string]string{"Content-Type": "application/json"}, 401, ""},
		{"wrong token", `{}`, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer nope"}, 401, ""},
		{"bad e-mail", `{"user_email":"nope","objet":"x"}`, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer tok-0123456789abcdef"}, 422, "user_email"},
		{"local path", `{"user_email":"a@example.com","objet":"x","fichiers":[{"path":"/etc/passwd"}]}`, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer tok-0123456789abcdef"}, 422, "fichiers[0].path"},
		{"wrong type", `x`, map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer tok-0123456789abcdef"}, 415, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", d.url+"/webhook/request", strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			code, m := post(t, req)
			if code != tt.want || (tt.field != "" && m["field"] != tt.field) {
				t.Fatalf("%d %v, want %d field %q", code, m, tt.want, tt.field)
			}
		})
	}
	resp, err := http.Get(d.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	d.stop(t)
	log := d.stderr.String()
	for _, secret := range []string{testSecret, "tok-0123456789abcdef"} {
		if strings.Contains(log, secret) {
			t.Errorf("the daemon logged a secret")
		}
	}
	if !strings.Contains(log, `"auth":"webhook signature or bearer token"`) || !strings.Contains(log, `"msg":"stopped"`) {
		t.Errorf("log lacks the start or stop line:\n%s", log)
	}
}

// Without a secret or token the daemon binds loopback only, whatever it was asked, and says so;
// a request it cannot finish is answered 202 queued and kept in the journal.
func TestServeUnauthenticatedIsLoopbackOnly(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(binary, "--dry-run", "serve", "--addr", "0.0.0.0:5999")
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "FIGSUPPORT_DATA_DIR=" + data}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "127.0.0.1:5999") || !strings.Contains(string(out), "loopback only") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}

	// The CRM is unreachable: a temporary failure, answered 202 and kept for the retry loop.
	env := []string{"FIGSUPPORT_DATA_DIR=" + data, "HUBSPOT_API_KEY=pat-test", "HUBSPOT_HUB_ID=1", "HUBSPOT_BASE_URL=http://127.0.0.1:9", "HUBSPOT_TIMEOUT=1s"}
	d := startDaemon(t, env)
	if !strings.HasPrefix(d.url, "http://127.0.0.1:") {
		t.Fatalf("listening on %s", d.url)
	}
	send := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", d.url+"/webhook/request", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return post(t, req)
	}
	code, m := send(`{"user_email":"q@example.com","objet":"Bonjour","request_id":"q-1"}`)
	if code != 202 || m["status"] != "queued" || m["request_id"] != "q-1" {
		t.Fatalf("unfinishable request: %d %v", code, m)
	}
	// A file URL on a refused address can never succeed: 422 naming the field, at once.
	code, m = send(`{"user_email":"r@example.com","objet":"Modèle 3D","fichiers":[{"url":"http://127.0.0.1:9/a.glb"}],"request_id":"r-1"}`)
	if code != 422 || m["field"] != "fichiers" {
		t.Fatalf("refused file URL: %d %v", code, m)
	}
	d.stop(t)
	for _, id := range []string{"q-1", "r-1"} {
		r := runEnv(t, env, "", "requests", "show", id, "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"status": "failed"`) {
			t.Fatalf("journal after the answer for %s: %d\n%s", id, r.code, r.stdout)
		}
	}
}

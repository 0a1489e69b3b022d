package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// request is one webhook request: form values and files.
type request struct {
	values map[string]string
	files  map[string][]byte
}

func (r request) multipart(ctx context.Context, url string) (*http.Request, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, k := range slices.Sorted(maps.Keys(r.values)) {
		if err := mw.WriteField(k, r.values[k]); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.files)) {
		w, err := mw.CreateFormFile("fichiers", name)
		if err != nil {
			return nil, err
		}
		w.Write(r.files[name])
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/webhook/request", &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req, nil
}

// file is n bytes of a file of that kind.
func file(n int) []byte { return bytes.Repeat([]byte("figsupport "), n/11+1)[:n] }

func newModelisation(i int, run string) request {
	return request{
		values: map[string]string{
			"source": "modelisation", "objet": "Demande de modélisation",
			"description": "Je souhaite modéliser ce fauteuil en 3D pour l'afficher en réalité augmentée.",
			"user_email":  fmt.Sprintf("client%d-%s@example.com", i, run), "user_name": "Jean Dupont",
			"request_id": fmt.Sprintf("new-%s-%d", run, i),
		},
		files: map[string][]byte{"fauteuil.glb": file(64 << 10), "vue-de-face.png": file(32 << 10)},
	}
}

func followUp(i int, run string) request {
	return request{
		values: map[string]string{
			"source": "modelisation", "objet": "Re: Demande de modélisation", "description": "Voici aussi la vue de côté.",
			"user_email": fmt.Sprintf("client%d-%s@example.com", i, run), "user_name": "Jean Dupont",
			"request_id": fmt.Sprintf("follow-%s-%d", run, i),
		},
		files: map[string][]byte{"vue-de-cote.png": file(32 << 10)},
	}
}

// answer is the part of the webhook's answer the benchmarks check.
type answer struct {
	Status      string   `json:"status"`
	TicketID    string   `json:"ticket_id"`
	SubtaskID   string   `json:"subtask_id"`
	IsNewTicket bool     `json:"is_new_ticket"`
	Warnings    []string `json:"warnings"`
}

func post(ctx context.Context, c *http.Client, url string, r request) (answer, time.Duration, error) {
	req, err := r.multipart(ctx, url)
	if err != nil {
		return answer{}, 0, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, 0, err
	}
	defer resp.Body.Close()
	var a answer
	err = json.NewDecoder(resp.Body).Decode(&a)
	d := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK {
		return a, d, fmt.Errorf("status %d (%v): %+v", resp.StatusCode, err, a)
	}
	return a, d, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return percentile(s, 50)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// criticalPath reports, for one kind of request, the median wall time, the floor and the
// sequential sum of its graph, the ratio to the floor, and the calls it made per service.
func criticalPath(b *testing.B, name string, walls []time.Duration, g Graph, calls Calls, n int) {
	floor, err := g.Floor(Injected)
	if err != nil {
		b.Fatal(err)
	}
	m := median(walls)
	b.ReportMetric(ms(m), name+"-ms")
	b.ReportMetric(ms(m)/ms(floor), name+"-x-floor")
	b.ReportMetric(ms(floor), name+"-floor-ms")
	b.ReportMetric(ms(g.Sequential(Injected)), name+"-sequential-ms")
	b.ReportMetric(float64(calls.HubSpot)/float64(n), name+"-hubspot-calls")
	b.ReportMetric(float64(calls.ClickUp)/float64(n), name+"-clickup-calls")
	b.ReportMetric(float64(calls.S3)/float64(n), name+"-s3-calls")
	if want := g.Calls(); calls.HubSpot != want.HubSpot*n || calls.ClickUp != want.ClickUp*n || calls.S3 != want.S3*n {
		b.Logf("%s: calls %+v for %d requests, the graph has %+v each", name, calls, n, want)
	}
}

// clickupPlan lifts ClickUp's client-side limit to the Enterprise plan's: at the default (100 a
// minute, the Free to Business plans) a benchmark that sends pair after pair waits for the limiter
// after its first ten calls, which measures the plan, not the path.
const clickupPlan = "CLICKUP_RATE_LIMIT=10000"

// BenchmarkCriticalPath is the wall time of a new MODELISATION request with two files and of its
// follow-up with one file, through `serve --mode sync` (warm: the properties and the list id are
// known) with every service behind its injected latency, beside the floor of its call graph.
//
//	go test -run '^$' -bench CriticalPath -benchtime 10x ./internal/bench
func BenchmarkCriticalPath(b *testing.B) {
	ctx := context.Background()
	bin := binary(b)
	svc := StartServices(b, Injected, ServiceOptions{})
	data := filepath.Join(b.TempDir(), "data")
	env := append(BaseEnv(b.TempDir(), data), svc.Env()...)
	env = append(env, "FIGSUPPORT_RATE_PER_MINUTE=100000000", "FIGSUPPORT_RATE_BURST=100000000", clickupPlan)
	d, err := StartDaemon(ctx, bin, env, "--mode", "sync")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := d.Stop(); err != nil {
			b.Errorf("serve: %v\n%s", err, d.Log())
		}
	}()
	c := Client(2)
	run := fmt.Sprint(time.Now().UnixNano())
	// One pair first, untimed: the daemon's warm-up finishes, connections open.
	if _, _, err := post(ctx, c, d.URL, newModelisation(-1, run)); err != nil {
		b.Fatal(err, d.Log())
	}
	if _, _, err := post(ctx, c, d.URL, followUp(-1, run)); err != nil {
		b.Fatal(err, d.Log())
	}
	var newWalls, followWalls []time.Duration
	var newCalls, followCalls Calls
	i := 0
	for b.Loop() {
		before := svc.Calls()
		a, wall, err := post(ctx, c, d.URL, newModelisation(i, run))
		if err != nil || !a.IsNewTicket || a.SubtaskID == "" || len(a.Warnings) > 0 {
			b.Fatalf("new request: %+v %v\n%s", a, err, d.Log())
		}
		mid := svc.Calls()
		newWalls, newCalls = append(newWalls, wall), addCalls(newCalls, mid.Sub(before))
		f, wall, err := post(ctx, c, d.URL, followUp(i, run))
		if err != nil || f.TicketID != a.TicketID || len(f.Warnings) > 0 {
			b.Fatalf("follow-up: %+v (ticket %s) %v\n%s", f, a.TicketID, err, d.Log())
		}
		followWalls, followCalls = append(followWalls, wall), addCalls(followCalls, svc.Calls().Sub(mid))
		i++
	}
	criticalPath(b, "new", newWalls, NewModelisation, newCalls, i)
	criticalPath(b, "followup", followWalls, FollowUp, followCalls, i)
}

func addCalls(a, b Calls) Calls {
	return Calls{HubSpot: a.HubSpot + b.HubSpot, ClickUp: a.ClickUp + b.ClickUp, S3: a.S3 + b.S3}
}

// BenchmarkCriticalPathCLI is the same pair through `figsupport process`, one process per
// request: what a cron job or a script pays, start-up and database opening included; and a new
// request that is its data dir's first run (new-cold), which also learns the HubSpot properties
// and the ClickUp list.
//
//	go test -run '^$' -bench CriticalPathCLI -benchtime 5x ./internal/bench
func BenchmarkCriticalPathCLI(b *testing.B) {
	ctx := context.Background()
	bin := binary(b)
	svc := StartServices(b, Injected, ServiceOptions{})
	dir := b.TempDir()
	env := append(BaseEnv(b.TempDir(), filepath.Join(dir, "data")), svc.Env()...)
	env = append(env, clickupPlan)
	run := fmt.Sprint(time.Now().UnixNano())
	process := func(env []string, r request) (answer, time.Duration) {
		doc := map[string]any{}
		for k, v := range r.values {
			doc[k] = v
		}
		var files []map[string]string
		for _, name := range slices.Sorted(maps.Keys(r.files)) {
			p := filepath.Join(dir, r.values["request_id"]+"-"+name)
			if err := os.WriteFile(p, r.files[name], 0o600); err != nil {
				b.Fatal(err)
			}
			files = append(files, map[string]string{"name": name, "path": p})
		}
		doc["fichiers"] = files
		body, _ := json.Marshal(doc)
		e, err := Exec(ctx, bin, env, string(body), "process", "-o", "json", "-")
		var a answer
		if err == nil && e.Code == 0 {
			err = json.Unmarshal([]byte(e.Stdout), &a)
		}
		if err != nil || e.Code != 0 || len(a.Warnings) > 0 {
			b.Fatalf("process: exit %d %v %+v\n%s", e.Code, err, a, e.Stderr)
		}
		return a, e.Wall
	}
	process(env, newModelisation(-1, run))
	process(env, followUp(-1, run))
	var newWalls, followWalls, coldWalls []time.Duration
	var newCalls, followCalls Calls
	i := 0
	for b.Loop() {
		before := svc.Calls()
		_, wall := process(env, newModelisation(i, run))
		mid := svc.Calls()
		newWalls, newCalls = append(newWalls, wall), addCalls(newCalls, mid.Sub(before))
		_, wall = process(env, followUp(i, run))
		followWalls, followCalls = append(followWalls, wall), addCalls(followCalls, svc.Calls().Sub(mid))
		// A data dir's first run: HubSpot's properties and ClickUp's list are not in its journal.
		cold := append(BaseEnv(b.TempDir(), filepath.Join(b.TempDir(), "data")), svc.Env()...)
		_, wall = process(append(cold, clickupPlan), newModelisation(i, run+"-cold"))
		coldWalls = append(coldWalls, wall)
		i++
	}
	criticalPath(b, "new", newWalls, NewModelisation, newCalls, i)
	criticalPath(b, "followup", followWalls, FollowUp, followCalls, i)
	floor, _ := NewModelisation.Floor(Injected)
	b.ReportMetric(ms(median(coldWalls)), "new-cold-ms")
	b.ReportMetric(ms(median(coldWalls))/ms(floor), "new-cold-x-floor")
}

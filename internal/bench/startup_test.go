package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// helloWorld builds the smallest Go program, the start-up floor of any Go binary on this machine.
func helloWorld(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build hello: %v\n%s", err, out)
	}
	return bin
}

// BenchmarkStartup is the wall time of `figsupport classify --no-llm FILE` (start, read the
// configuration, classify by the rules, print), beside a Go hello-world measured in the same
// loop: the two are run alternately and the medians reported.
//
//	go test -run '^$' -bench Startup -benchtime 100x ./internal/bench
func BenchmarkStartup(b *testing.B) {
	bin := binary(b)
	hello := helloWorld(b)
	payload := filepath.Join(b.TempDir(), "support.json")
	if err := os.WriteFile(payload, supportRequest("startup", 0), 0o600); err != nil {
		b.Fatal(err)
	}
	env := BaseEnv(b.TempDir(), filepath.Join(b.TempDir(), "data"))
	ctx := context.Background()
	// Warm the page cache: the first run of a binary reads it from disk.
	for range 3 {
		if _, err := Exec(ctx, bin, env, "", "classify", "--no-llm", payload); err != nil {
			b.Fatal(err)
		}
	}
	var figs, hellos []time.Duration
	for b.Loop() {
		e, err := Exec(ctx, bin, env, "", "classify", "--no-llm", payload)
		if err != nil || e.Code != 0 {
			b.Fatalf("classify: exit %d %v\n%s", e.Code, err, e.Stderr)
		}
		figs = append(figs, e.Wall)
		h, err := Exec(ctx, hello, env, "")
		if err != nil || h.Code != 0 {
			b.Fatal(err)
		}
		hellos = append(hellos, h.Wall)
	}
	slices.Sort(figs)
	b.ReportMetric(ms(median(figs)), "classify-ms")
	b.ReportMetric(ms(percentile(figs, 10)), "classify-p10-ms")
	b.ReportMetric(ms(median(hellos)), "hello-world-ms")
}

// Command report turns the output of the benchmarks scripts/bench runs (go test -bench, any number
// of files, several rounds each) into the table of BENCHMARKS.md: each figure, its target, met or
// not. A metric measured in several rounds is shown as its median.
//
//	go run ./internal/bench/report bench-results/latest/*.txt
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results maps a benchmark (without its -GOMAXPROCS suffix) to its metrics' values, one per round.
type results map[string]map[string][]float64

var procs = regexp.MustCompile(`-\d+$`)

func parse(r io.Reader, into results) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procs.ReplaceAllString(f[0], "")
		if into[name] == nil {
			into[name] = map[string][]float64{}
		}
		// f[1] is the iteration count; then value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("%s: value %q: %w", name, f[i], err)
			}
			into[name][f[i+1]] = append(into[name][f[i+1]], v)
		}
	}
	return sc.Err()
}

// get is the median of a metric; ok is false when it was not measured.
func (r results) get(bench, metric string) (float64, bool) {
	vs := slices.Clone(r[bench][metric])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// row is one line of the table: what it shows, computed from the results.
type row struct {
	figure, target string
	show           func(m *metrics) (figure string, met bool)
}

// metrics reads one benchmark's medians, remembering what was missing.
type metrics struct {
	r       results
	missing []string
}

func (m *metrics) v(bench, metric string) float64 {
	v, ok := m.r.get(bench, metric)
	if !ok {
		m.missing = append(m.missing, bench+" "+metric)
	}
	return v
}

func criticalRow(bench, kind, label string) row {
	return row{figure: label, target: "≤ 1.15× the floor", show: func(m *metrics) (string, bool) {
		x := m.v(bench, kind+"-x-floor")
		return fmt.Sprintf("%.0f ms = %.2f× the floor (%.0f ms); sequential %.0f ms (%.2f× faster)",
			m.v(bench, kind+"-ms"), x, m.v(bench, kind+"-floor-ms"), m.v(bench, kind+"-sequential-ms"),
			m.v(bench, kind+"-sequential-ms")/m.v(bench, kind+"-ms")), x <= 1.15
	}}
}

var rows = []row{
	criticalRow("BenchmarkCriticalPath", "new", "new MODELISATION request, 2 files (`serve`, warm)"),
	criticalRow("BenchmarkCriticalPath", "followup", "follow-up with 1 file (`serve`, warm)"),
	criticalRow("BenchmarkCriticalPathCLI", "new", "new MODELISATION request, 2 files (`process`, one process each)"),
	criticalRow("BenchmarkCriticalPathCLI", "followup", "follow-up with 1 file (`process`, one process each)"),
	{figure: "new MODELISATION request, 2 files, a data dir's first `process` run", target: "≤ 1.15× the floor",
		show: func(m *metrics) (string, bool) {
			x := m.v("BenchmarkCriticalPathCLI", "new-cold-x-floor")
			return fmt.Sprintf("%.0f ms = %.2f× the floor", m.v("BenchmarkCriticalPathCLI", "new-cold-ms"), x), x <= 1.15
		}},
	{figure: "calls per request (HubSpot / ClickUp / S3): new MODELISATION with 2 files, follow-up with 1 file", target: "the minimum the APIs allow (4/1/2, 4/2/1)",
		show: func(m *metrics) (string, bool) {
			b := "BenchmarkCriticalPath"
			n := []float64{m.v(b, "new-hubspot-calls"), m.v(b, "new-clickup-calls"), m.v(b, "new-s3-calls")}
			f := []float64{m.v(b, "followup-hubspot-calls"), m.v(b, "followup-clickup-calls"), m.v(b, "followup-s3-calls")}
			return fmt.Sprintf("%.0f/%.0f/%.0f, %.0f/%.0f/%.0f", n[0], n[1], n[2], f[0], f[1], f[2]),
				slices.Equal(n, []float64{4, 1, 2}) && slices.Equal(f, []float64{4, 2, 1})
		}},
	{figure: "`serve --mode async` intake, 50 connections, empty database", target: "≥ 50 % of the yardstick, p99 < 25 ms",
		show: func(m *metrics) (string, bool) {
			b := "BenchmarkIntake/tickets=0"
			pct, p99 := m.v(b, "async-%-of-yardstick"), m.v(b, "async-p99-ms")
			return fmt.Sprintf("%.0f req/s, p99 %.0f ms = %.0f %% of the yardstick's %.0f req/s (p99 %.0f ms)",
				m.v(b, "async-req/s"), p99, pct, m.v(b, "yardstick-req/s"), m.v(b, "yardstick-p99-ms")), pct >= 50 && p99 < 25
		}},
	{figure: "`serve --mode sync` (chain on the embedded backends), 50 connections", target: "≥ 2,000 req/s",
		show: func(m *metrics) (string, bool) {
			v := m.v("BenchmarkIntake/tickets=0", "sync-req/s")
			return fmt.Sprintf("%.0f req/s, p99 %.0f ms", v, m.v("BenchmarkIntake/tickets=0", "sync-p99-ms")), v >= 2000
		}},
	{figure: "intake from an empty database to 100,000 tickets (async / sync)", target: "flat, ±15 %",
		show: func(m *metrics) (string, bool) {
			a0, a1 := m.v("BenchmarkIntake/tickets=0", "async-req/s"), m.v("BenchmarkIntake/tickets=100000", "async-req/s")
			s0, s1 := m.v("BenchmarkIntake/tickets=0", "sync-req/s"), m.v("BenchmarkIntake/tickets=100000", "sync-req/s")
			y0, y1 := m.v("BenchmarkIntake/tickets=0", "yardstick-req/s"), m.v("BenchmarkIntake/tickets=100000", "yardstick-req/s")
			da, ds := (a1/a0-1)*100, (s1/s0-1)*100
			return fmt.Sprintf("async %.0f → %.0f req/s (%+.0f %%), sync %.0f → %.0f (%+.0f %%); yardstick in the same rounds %.0f → %.0f",
				a0, a1, da, s0, s1, ds, y0, y1), da >= -15 && da <= 15 && ds >= -15 && ds <= 15
		}},
	backlogRow("BenchmarkBacklog/refused-at-first-call", "backlog of 60, refused at their first call (1 process)"),
	backlogRow("BenchmarkBacklog/refused-at-create", "backlog of 60, refused at the ticket's create (1 process)"),
	backlogRow("BenchmarkBacklog/refused-at-first-call/2-processes", "backlog of 60 split between 2 processes"),
	rssRow("BenchmarkUploadRSS/process", "peak RSS uploading 1 GiB: `process`"),
	rssRow("BenchmarkUploadRSS/serve-multipart", "peak RSS uploading 1 GiB: `serve` multipart"),
	{figure: "daemon RSS over 50,000 requests (`serve --mode sync`)", target: "flat, ±10 %",
		show: func(m *metrics) (string, bool) {
			b := "BenchmarkDaemonRSS"
			g := m.v(b, "growth-%")
			return fmt.Sprintf("%.1f → %.1f MiB (%+.1f %%), largest %.1f MiB", m.v(b, "RSS-warm-MiB"), m.v(b, "RSS-end-MiB"), g, m.v(b, "RSS-max-MiB")),
				g >= -10 && g <= 10
		}},
	{figure: "`classify --no-llm` start-up", target: "< 10 ms",
		show: func(m *metrics) (string, bool) {
			v := m.v("BenchmarkStartup", "classify-ms")
			return fmt.Sprintf("%.1f ms (a Go hello-world: %.1f ms)", v, m.v("BenchmarkStartup", "hello-world-ms")), v < 10
		}},
}

func backlogRow(bench, label string) row {
	return row{figure: label, target: "≥ 90 % of HubSpot's limit, 0 failures, the fewest calls",
		show: func(m *metrics) (string, bool) {
			pct, failed := m.v(bench, "%-of-limit"), m.v(bench, "failed")
			return fmt.Sprintf("%.0f %% of the limit, %.1f calls per request, %.0f 429s, %.0f failed, %.1f s",
				pct, m.v(bench, "calls/request"), m.v(bench, "429s"), failed, m.v(bench, "s")), pct >= 90 && failed == 0
		}}
}

func rssRow(bench, label string) row {
	return row{figure: label, target: "< 48 MiB on every run",
		show: func(m *metrics) (string, bool) {
			mx := m.v(bench, "peak-RSS-max-MiB")
			return fmt.Sprintf("%.1f MiB at most (median %.1f)", mx, m.v(bench, "peak-RSS-median-MiB")), mx < 48
		}}
}

func main() {
	r := results{}
	for _, path := range os.Args[1:] {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		err = parse(f, r)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "report: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
	fmt.Println("| figure | measured | target | met |")
	fmt.Println("|---|---|---|---|")
	for _, row := range rows {
		m := metrics{r: r}
		fig, met := row.show(&m)
		verdict := "no"
		switch {
		case len(m.missing) > 0:
			fig, verdict = "not measured", "—"
		case met:
			verdict = "yes"
		}
		fmt.Printf("| %s | %s | %s | %s |\n", row.figure, fig, row.target, verdict)
	}
}

// Package bench measures figsupport against its limits (issue 9; the figures are in
// BENCHMARKS.md, scripts/bench runs them all): the critical path of a request beside the floor of
// its call graph, the daemon's intake beside a bare durable yardstick, the clearing of a backlog
// under HubSpot's rate limit, the memory of large uploads and of a long-running daemon, and the
// start-up time.
//
// The helpers here start the project's fakes with each service's latency injected (Services),
// build and drive the binary (Build, Exec, StartDaemon), generate load (Run), serve the yardstick
// (Yardstick), seed a large database (Seed), read a process's memory (ReadMemory) and compute the
// floor of a call graph (Graph). The benchmarks themselves are in this package's _test files:
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/bench
package bench

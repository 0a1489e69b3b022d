package bench

import (
	"context"
	"os"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// binary builds the figsupport binary once per test binary, for the benchmarks only: the unit
// tests of this package do not pay for it.
func binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "figsupport-bench")
		if buildErr == nil {
			builtBin, buildErr = Build(context.Background(), buildDir)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	if path := os.Getenv(yardstickEnv); path != "" {
		os.Exit(serveYardstick(path))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

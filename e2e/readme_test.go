package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeExamples are the command lines of the README's blocks marked `<!-- examples -->`, in
// order, each block on its own: `go run .` is the binary; `go test` and `go build` lines are the
// developer's, not examples of the tool.
func readmeExamples(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks [][]string
	marked, in := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<!-- examples"):
			marked = true
		case marked && strings.HasPrefix(line, "```sh"):
			in, marked = true, false
			blocks = append(blocks, nil)
		case in && line == "```":
			in = false
		case in:
			cmd := strings.TrimSpace(line)
			if cmd == "" || strings.HasPrefix(cmd, "go test") || strings.HasPrefix(cmd, "go build") {
				continue
			}
			cmd = strings.Replace(cmd, "go run . ", "figsupport ", 1)
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], cmd)
		}
	}
	if len(blocks) < 3 {
		t.Fatalf("found %d example blocks in the README, want at least 3", len(blocks))
	}
	return blocks
}

// Every example of the README runs as written, on the embedded backends, and exits 0: the quick
// start's blocks share the default data dir (~/.local/share/figsupport), the command examples a
// fresh one of their own.
func TestREADMEExamples(t *testing.T) {
	bin := filepath.Dir(binary)
	home := t.TempDir()
	for i, block := range readmeExamples(t) {
		env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + home, "NO_COLOR=1"}
		if i >= 2 { // past the quick start: the Commands examples start on an empty data dir
			env = append(env, "FIGSUPPORT_DATA_DIR="+filepath.Join(t.TempDir(), "data"))
		}
		for _, line := range block {
			cmd := exec.Command("sh", "-c", line)
			cmd.Dir = ".."
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("README example %q: %v\n%s", line, err, out)
			}
		}
	}
}

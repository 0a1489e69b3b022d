package cmd

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/joho/godotenv"
)

const (
	installedEnvFile = "/etc/figsupport/figsupport.env"
	stateDir         = "/var/lib/figsupport"
	binPath          = "/usr/local/bin/figsupport"
)

// unitService reads deploy/figsupport.service as systemd composes it: the environment (Environment=,
// then EnvironmentFile=, which overrides it) and ExecStart's arguments.
func unitService(t *testing.T) (map[string]string, []string) {
	t.Helper()
	f, err := os.Open("../deploy/figsupport.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{"HOME": stateDir} // User=figsupport, whose home is the state dir (README's useradd)
	var files []string
	var argv []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch {
		case !ok || strings.HasPrefix(k, "#"):
		case k == "Environment":
			ek, ev, _ := strings.Cut(v, "=")
			env[ek] = ev
		case k == "EnvironmentFile":
			files = append(files, strings.TrimPrefix(v, "-"))
		case k == "ExecStart":
			argv = strings.Fields(v)
		}
	}
	for _, file := range files {
		if file != installedEnvFile {
			t.Fatalf("the unit reads %s, the README installs %s", file, installedEnvFile)
		}
		m, err := godotenv.Read("../.env.example") // what the README installs there
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			env[k] = v // systemd: EnvironmentFile= overrides Environment=
		}
	}
	if len(argv) == 0 || argv[0] != binPath {
		t.Fatalf("ExecStart = %v", argv)
	}
	return env, argv[1:]
}

// cronLine is the command line of deploy/figsupport.cron, without its redirections.
func cronLine(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../deploy/figsupport.cron")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 7 || strings.HasPrefix(line, "#") || strings.Contains(fields[0], "=") {
			continue
		}
		if fields[5] != "figsupport" || fields[6] != binPath {
			t.Fatalf("cron runs %v as %s, want %s as figsupport", fields[6:], fields[5], binPath)
		}
		var argv []string
		for _, a := range fields[7:] {
			if strings.ContainsAny(a, "|>&") {
				break
			}
			argv = append(argv, a)
		}
		return argv
	}
	t.Fatal("no job in deploy/figsupport.cron")
	return nil
}

// readmeDoctor is the doctor command of the README's installation.
func readmeDoctor(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if _, rest, ok := strings.Cut(line, "sudo -u figsupport "+binPath+" "); ok && strings.Contains(rest, " doctor") {
			rest, _, _ = strings.Cut(rest, "#")
			return strings.Fields(rest)
		}
	}
	t.Fatal("no `sudo -u figsupport " + binPath + " … doctor` line in the README")
	return nil
}

// dataDirOf resolves the data dir a command line would use, its environment file read from where
// the README installs .env.example.
func dataDirOf(t *testing.T, argv []string, environ map[string]string) string {
	t.Helper()
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.ReplaceAll(a, installedEnvFile, "../.env.example")
	}
	g := &Globals{IO: IO{In: strings.NewReader(""), Out: &strings.Builder{}, ErrOut: &strings.Builder{}},
		Env: func(k string) (string, bool) { v, ok := environ[k]; return v, ok }}
	g.defaults()
	c, rest, err := NewRootCmd(g).Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	if err := g.load(c); err != nil {
		t.Fatal(err)
	}
	dir, err := g.dataDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// The daemon (the unit), doctor (the README) and the retry job (cron) use the one state dir, with
// .env.example installed as the README says — whose FIGSUPPORT_DATA_DIR is empty — and even when
// the environment carries an empty FIGSUPPORT_DATA_DIR (an EnvironmentFile= would give one).
func TestDeploymentUsesOneDataDir(t *testing.T) {
	unitEnv, unitArgs := unitService(t)
	cron := cronLine(t)
	doctor := readmeDoctor(t)
	if cron[len(cron)-1] != "--failed" || doctor[len(doctor)-1] != "doctor" || unitArgs[len(unitArgs)-1] != "serve" {
		t.Fatalf("commands: unit %v, cron %v, doctor %v", unitArgs, cron, doctor)
	}
	example, err := godotenv.Read("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := example["FIGSUPPORT_DATA_DIR"]; ok && v != "" {
		t.Fatalf(".env.example sets FIGSUPPORT_DATA_DIR=%s", v)
	}
	tests := []struct {
		name    string
		argv    []string
		environ map[string]string
	}{
		{"daemon", unitArgs, unitEnv},
		{"doctor", doctor, map[string]string{"HOME": stateDir}}, // sudo -u: the user's home
		{"cron", cron, map[string]string{"HOME": stateDir, "SHELL": "/bin/sh"}},
		{"daemon with an empty FIGSUPPORT_DATA_DIR in its environment", unitArgs, map[string]string{"HOME": stateDir, "FIGSUPPORT_DATA_DIR": ""}},
		{"cron with an empty FIGSUPPORT_DATA_DIR in its environment", cron, map[string]string{"HOME": stateDir, "FIGSUPPORT_DATA_DIR": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dataDirOf(t, tt.argv, tt.environ); got != stateDir {
				t.Fatalf("data dir %s, want %s", got, stateDir)
			}
		})
	}
}

// An empty value is no value, at every level: it does not hide the level below it.
func TestEmptyValueIsUnset(t *testing.T) {
	dotenv := t.TempDir() + "/x.env"
	if err := os.WriteFile(dotenv, []byte("FIGSUPPORT_DATA_DIR=/from/dotenv\nHUBSPOT_STAGE_NEW=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Globals{IO: IO{ErrOut: &strings.Builder{}}, Env: func(k string) (string, bool) {
		return "", k == "FIGSUPPORT_DATA_DIR" || k == "HUBSPOT_STAGE_NEW"
	}}
	g.defaults()
	root := NewRootCmd(g)
	if err := root.ParseFlags([]string{"--env-file", dotenv}); err != nil {
		t.Fatal(err)
	}
	if err := g.load(root); err != nil {
		t.Fatal(err)
	}
	if got := g.Values.String("FIGSUPPORT_DATA_DIR"); got != "/from/dotenv" {
		t.Errorf("FIGSUPPORT_DATA_DIR = %q: an empty environment variable hid the .env value", got)
	}
	if got := g.Values.String("HUBSPOT_STAGE_NEW"); got != "1" {
		t.Errorf("HUBSPOT_STAGE_NEW = %q, want the default", got)
	}
}

// Package dovecot starts Debian's Dovecot (package dovecot-imapd) as a throwaway IMAP server for a
// test: a temporary directory with a minimal dovecot.conf, one user in a passwd-file, maildir
// storage, a certificate of its own for STARTTLS (port imap) and implicit TLS (port imaps), both
// listening on 127.0.0.1 on free ports, optionally XOAUTH2 through OAuth2 token introspection. It
// runs in the foreground (dovecot -F) and is stopped when the test ends.
//
// Dovecot never runs mail processes as root. Run by an unprivileged user, everything runs as that
// user (Dovecot's "non-root" mode: the internal and login users are the current one). Run by root
// (CI), the master runs as root and drops every other process to nobody, which owns the maildir.
//
// When the dovecot binary is absent the test is skipped with a visible message, unless
// FIGSUPPORT_REQUIRE_DOVECOT=1 (set by .ci/run) turns that into a failure.
package dovecot

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/figurative/figsupport/internal/testsrv"
)

// Options shape the server.
type Options struct {
	User, Password string // default support@figurative.fr / s3cret-DOVECOT
	// IntrospectURL enables AUTHENTICATE XOAUTH2: Dovecot POSTs the token there (RFC 7662) and
	// accepts the answer {"active": true, "username": …}.
	IntrospectURL string
}

// Server is a running Dovecot.
type Server struct {
	Host      string // 127.0.0.1
	Port      int    // STARTTLS
	TLSPort   int    // implicit TLS
	User      string
	Password  string
	Cert      *testsrv.Cert
	Dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	exitError error
}

// Binary is where the dovecot binary is, or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start runs Dovecot until the test ends, or skips the test when it is not installed.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "dovecot is not installed (apt-get install dovecot-imapd): this test against a real IMAP server did not run"
		if os.Getenv("FIGSUPPORT_REQUIRE_DOVECOT") == "1" {
			t.Fatal(msg + " and FIGSUPPORT_REQUIRE_DOVECOT=1")
		}
		t.Skip(msg)
	}
	if o.User == "" {
		o.User, o.Password = "support@figurative.fr", "s3cret-DOVECOT"
	}
	// Not t.TempDir(): its parents are private to root, and Dovecot's unprivileged processes must
	// reach the maildir.
	dir, err := os.MkdirTemp("", "figsupport-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run, err := runAs()
	if err != nil {
		t.Skipf("dovecot: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"mail", "run", "state"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "mail"), run.uid, run.gid); err != nil {
		t.Fatal(err)
	}
	s := &Server{Host: "127.0.0.1", User: o.User, Password: o.Password, Dir: dir, Cert: testsrv.NewCert(t, dir), exited: make(chan struct{})}
	// Dovecot's unprivileged processes read the key too (it is a throwaway).
	if err := os.Chmod(s.Cert.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Port, s.TLSPort = freePort(t), freePort(t)
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(o.User+":{PLAIN}"+o.Password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "dovecot.conf")
	var b bytes.Buffer
	if err := confTmpl.Execute(&b, map[string]any{
		"Dir": dir, "Port": s.Port, "TLSPort": s.TLSPort, "Cert": s.Cert.CertFile, "Key": s.Cert.KeyFile,
		"Run": run, "Introspect": o.IntrospectURL,
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if o.IntrospectURL != "" {
		ext := "introspection_mode = post\nintrospection_url = " + o.IntrospectURL + "\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
		if err := os.WriteFile(filepath.Join(dir, "oauth2.conf.ext"), []byte(ext), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.cmd = exec.Command(bin, "-F", "-c", conf)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	// Its own process group, so that nothing it started outlives the test.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("dovecot: %v", err)
	}
	go func() {
		s.exitError = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.stop)
	if err := s.waitReady(15 * time.Second); err != nil {
		s.stop()
		log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		t.Fatalf("dovecot did not start: %v\n%s\n%s", err, out.String(), log)
	}
	return s
}

// Addr is the STARTTLS address; TLSAddr the implicit TLS one.
func (s *Server) Addr() string    { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }
func (s *Server) TLSAddr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.TLSPort)) }

// Log is Dovecot's log so far, for a failing test's message.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	return string(b)
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, addr := range []string{s.Addr(), s.TLSAddr()} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.exited:
				return fmt.Errorf("exited: %v", s.exitError)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not listening after %s", addr, limit)
			}
		}
	}
	return nil
}

// stop sends SIGTERM to the master (it stops its children), then kills the group if needed.
func (s *Server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

type runUser struct {
	Name, Group string
	uid, gid    int
	Root        bool
}

// runAs is who Dovecot's processes run as: the current user, or nobody when that is root.
func runAs() (runUser, error) {
	name := ""
	if os.Geteuid() == 0 {
		name = "nobody"
	} else {
		u, err := user.Current()
		if err != nil {
			return runUser{}, err
		}
		name = u.Username
	}
	u, err := user.Lookup(name)
	if err != nil {
		return runUser{}, fmt.Errorf("user %s: %w", name, err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return runUser{}, fmt.Errorf("group of %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runUser{Name: u.Username, Group: g.Name, uid: uid, gid: gid, Root: os.Geteuid() == 0}, nil
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// confTmpl is Dovecot 2.3's configuration (Debian 12's dovecot-imapd); nothing from /etc/dovecot.
var confTmpl = template.Must(template.New("dovecot.conf").Parse(`# figsupport test server: throwaway, loopback only
protocols = imap
listen = 127.0.0.1
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
info_log_path = {{.Dir}}/dovecot.log
default_internal_user = {{.Run.Name}}
default_internal_group = {{.Run.Group}}
default_login_user = {{.Run.Name}}
first_valid_uid = 1
ssl = yes
ssl_cert = <{{.Cert}}
ssl_key = <{{.Key}}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login{{if .Introspect}} xoauth2{{end}}
mail_location = maildir:{{.Dir}}/mail/%u
{{if .Introspect}}passdb {
  driver = oauth2
  mechanisms = xoauth2
  args = {{.Dir}}/oauth2.conf.ext
}
{{end}}passdb {
  driver = passwd-file
  args = scheme=PLAIN {{.Dir}}/passwd
}
userdb {
  driver = static
  args = uid={{.Run.Name}} gid={{.Run.Group}} home={{.Dir}}/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Port}}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = {{.TLSPort}}
    ssl = yes
  }
}
service anvil {
  chroot =
}
`))

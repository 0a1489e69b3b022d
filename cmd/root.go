// Package cmd is figsupport's command line: flags, configuration, wiring of the backends and
// output. It is the only place that knows cobra and viper.
//
// Each command is built by newXCmd(g, runF): the cobra command parses flags into an options
// struct and hands it to runF, or to its own runX when runF is nil. Tests pass a runF to see what
// the flags became, and call runX with injected streams and backends to see what is printed,
// without building a binary (the GitHub CLI's NewCmdX(f, runF) pattern).
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/joho/godotenv"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/figurative/figsupport/internal/config"
)

// IO is where a command reads and writes; tests inject buffers.
type IO struct {
	In     io.Reader
	Out    io.Writer // data
	ErrOut io.Writer // status and logs
}

// Globals are the root command's flags, what PersistentPreRunE resolved from them, and what the
// commands are given to work with (the "factory"): tests replace Env, Now, Terminal and OpenApp.
type Globals struct {
	IO
	ConfigFile string
	EnvFile    string
	DataDir    string
	Output     string
	DryRun     bool
	Verbose    bool

	Env    func(string) (string, bool) // the process environment
	Values *config.Values
	Log    *slog.Logger
	Now    func() time.Time
	// Terminal reports whether a stream (g.In, g.ErrOut…) is a terminal: colour, progress bars and
	// "no payload" on an interactive stdin depend on it.
	Terminal func(stream any) bool
	// OpenApp wires the backends of one invocation (openApp unless a test injects fakes).
	OpenApp func(ctx context.Context, g *Globals, o appOptions) (*app, error)

	// started is set once cobra hands over to our code: every error before it (an unknown
	// command or flag, wrong arguments) is a usage error.
	started bool
}

// JSON reports whether --output json was asked for.
func (g *Globals) JSON() bool { return g.Output == "json" }

// Execute runs the command line and returns the process exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &Globals{IO: IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, Env: os.LookupEnv, Now: time.Now}
	return Run(ctx, g, os.Args[1:])
}

// Run runs args against g and maps the outcome to an exit code: the one place errors become
// codes and are printed.
func Run(ctx context.Context, g *Globals, args []string) int {
	g.defaults()
	root := NewRootCmd(g)
	root.SetArgs(args)
	root.SetIn(g.In)
	root.SetOut(g.Out)
	root.SetErr(g.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if !g.started && !errors.Is(err, errUsage) {
		// cobra's own checks: an unknown command or flag, the wrong number of arguments.
		err = usageErr(err)
	}
	code := exitCodeOf(err)
	if errors.Is(err, errSilent) {
		return code
	}
	if g.Values != nil {
		err = redacted{err, g.Values.Redact(err.Error())}
	}
	printError(g, err, g.JSON() || jsonRequested(args))
	return code
}

func (g *Globals) defaults() {
	if g.Env == nil {
		g.Env = os.LookupEnv
	}
	if g.Now == nil {
		g.Now = time.Now
	}
	if g.Terminal == nil {
		g.Terminal = isTerminal
	}
	if g.OpenApp == nil {
		g.OpenApp = openApp
	}
	if g.Log == nil {
		g.Log = slog.New(slog.DiscardHandler)
	}
}

// NewRootCmd builds the command tree over g.
func NewRootCmd(g *Globals) *cobra.Command {
	g.defaults()
	root := &cobra.Command{
		Use:   "figsupport",
		Short: "Turn customer requests into HubSpot tickets, R2 files, ClickUp subtasks and admin e-mails",
		Long: `figsupport turns Figurative's customer requests (web forms, e-mails, photos and 3D files) into
HubSpot tickets — one ticket per conversation — with files in Cloudflare R2, a ClickUp subtask for
3D-modelling work and an e-mail to the admin. With no account configured it runs every stage on
embedded backends kept in the data dir.

Exit codes: 0 done, 1 failed at run time (the request is kept; run the same command again),
2 bad input or usage, 4 configuration or credentials.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.started = true
			if err := requiredFlags(cmd.Flags()); err != nil {
				return err
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return usageErr(err)
			}
			if cmd.HasSubCommands() {
				return nil // a group: it only shows its help, whatever the configuration
			}
			return g.load(cmd)
		},
	}
	root.SetVersionTemplate("figsupport {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigFile, "config", "", "configuration file (YAML, TOML or JSON; keys as in .env.example, any case)")
	pf.StringVar(&g.EnvFile, "env-file", ".env", "dotenv file to read when present")
	pf.StringVar(&g.DataDir, "data-dir", "", "data dir (FIGSUPPORT_DATA_DIR; default $XDG_DATA_HOME/figsupport)")
	pf.StringVarP(&g.Output, "output", "o", "text", "output format: text or json")
	pf.BoolVar(&g.DryRun, "dry-run", false, "print what would be done and write nothing")
	pf.BoolVarP(&g.Verbose, "verbose", "v", false, "log each step and its duration on stderr")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })

	root.AddCommand(
		newClassifyCmd(g, nil),
		newProcessCmd(g, nil),
		newUploadCmd(g, nil),
		newTicketCmd(g),
		newNoteCmd(g, nil),
		newSubtaskCmd(g),
		newNotifyCmd(g, nil),
		newRequestsCmd(g),
		newMailCmd(g),
		newServeCmd(g, nil),
		newDoctorCmd(g, nil),
	)
	// cobra adds `completion` on Execute; added here, it is a group like ours: an unknown shell
	// (`completion tcsh`) is a usage error instead of its help and exit 0.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			asGroup(c)
		}
	}
	// The root too: an unknown command is reported by us, after an unknown flag would be.
	return asGroup(root)
}

// newGroupCmd is a command that only holds subcommands.
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short}
	c.AddCommand(subs...)
	return asGroup(c)
}

// asGroup makes c print its help when called alone and refuse an unknown subcommand (exit 2):
// cobra would print the help and exit 0 for both.
func asGroup(c *cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.SuggestionsMinimumDistance = 2
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageErr(errors.New(msg))
		}
		return cmd.Help()
	}
	return c
}

// argNames checks positional arguments against their names: a missing one or an extra one is a usage
// error naming it. Names ending in "?" are optional.
func argNames(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, got []string) error {
		if len(got) > len(names) {
			return &usageError{field: got[len(names)], err: fmt.Errorf("unexpected argument %q (%s takes %s)", got[len(names)], cmd.CommandPath(), takes(names))}
		}
		for i := len(got); i < len(names); i++ {
			if !strings.HasSuffix(names[i], "?") {
				return &usageError{field: names[i], err: fmt.Errorf("missing %s (%s takes %s)", names[i], cmd.CommandPath(), takes(names))}
			}
		}
		return nil
	}
}

func takes(names []string) string {
	if len(names) == 0 {
		return "no argument"
	}
	var parts []string
	for _, n := range names {
		if opt, ok := strings.CutSuffix(n, "?"); ok {
			parts = append(parts, "["+opt+"]")
		} else {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, " ")
}

// load resolves configuration once: flags > environment > .env > config file > defaults. An
// empty value is no value, at every level: the next level, or the default, decides (an empty
// FIGSUPPORT_DATA_DIR= in an environment file undoes nothing).
func (g *Globals) load(cmd *cobra.Command) error {
	if g.Output != "text" && g.Output != "json" {
		return fieldErr("--output", "want text or json, not %q", g.Output)
	}
	g.Log = newLogger(g.ErrOut, g.Verbose)

	v := viper.New()
	if g.ConfigFile != "" {
		v.SetConfigFile(g.ConfigFile)
		if err := v.ReadInConfig(); err != nil {
			return &config.Error{Key: "--config", Msg: fmt.Sprintf("cannot read %s: %v", g.ConfigFile, err)}
		}
	}
	envFile := g.EnvFile
	if _, err := os.Stat(envFile); err == nil {
		m, err := godotenv.Read(envFile)
		if err != nil {
			return &config.Error{Key: "--env-file", Msg: fmt.Sprintf("cannot parse %s: %v", envFile, err)}
		}
		lower := make(map[string]any, len(m))
		for k, val := range m {
			lower[strings.ToLower(k)] = val
		}
		if err := v.MergeConfigMap(lower); err != nil {
			return &config.Error{Key: "--env-file", Msg: err.Error()}
		}
	} else if cmd.Flags().Changed("env-file") {
		return &config.Error{Key: "--env-file", Msg: fmt.Sprintf("cannot read %s: %v", envFile, errors.Unwrap(err))}
	}
	g.Values = config.New(func(key string) (string, bool) {
		if key == "FIGSUPPORT_DATA_DIR" && g.DataDir != "" {
			return g.DataDir, true
		}
		if val, ok := g.Env(key); ok && strings.TrimSpace(val) != "" {
			return val, true
		}
		if k := strings.ToLower(key); v.IsSet(k) {
			if val := v.GetString(k); strings.TrimSpace(val) != "" {
				return val, true
			}
		}
		return "", false
	})
	return nil
}

// dataDir is FIGSUPPORT_DATA_DIR, else $XDG_DATA_HOME/figsupport, else ~/.local/share/figsupport.
func (g *Globals) dataDir() (string, error) {
	if d := g.Values.String("FIGSUPPORT_DATA_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if x, ok := g.Env("XDG_DATA_HOME"); ok && x != "" {
		return filepath.Join(x, "figsupport"), nil
	}
	home, ok := g.Env("HOME")
	if !ok || home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", &config.Error{Key: "FIGSUPPORT_DATA_DIR", Msg: "not set and no home directory to default to"}
		}
	}
	return filepath.Join(home, ".local", "share", "figsupport"), nil
}

// isTerminal reports whether stream is a terminal.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// openInput opens what a FILE|- argument names: the file, or stdin for "-" or no argument. what
// names the argument in errors ("FILE", "--eml"); a terminal on stdin is no input at all, said at
// once rather than waiting for a paste.
func openInput(g *Globals, arg, what, noun string) (io.ReadCloser, string, error) {
	if arg == "" || arg == "-" {
		if g.Terminal(g.In) {
			return nil, "", fieldErr(what, "no %s: give a file, or pipe it on stdin with -", noun)
		}
		return io.NopCloser(g.In), "", nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, "", fieldErr(what, "cannot read %s: %v", arg, errors.Unwrap(err))
	}
	return f, filepath.Dir(arg), nil
}

// version is the module version and VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	out := v
	if rev != "" {
		out += fmt.Sprintf(" (commit %.12s%s, %s)", rev, dirty, at)
	}
	return out + " " + bi.GoVersion
}

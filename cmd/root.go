// Package cmd is figsupport's command line: flags, configuration, wiring of the backends and
// output. It is the only place that knows cobra and viper.
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

// Globals are the root command's flags and what PersistentPreRunE resolved from them.
type Globals struct {
	IO
	ConfigFile string
	EnvFile    string
	DataDir    string
	Output     string
	DryRun     bool
	Verbose    bool

	Env    func(string) (string, bool) // the process environment; tests replace it
	Values *config.Values
	Log    *slog.Logger
	Now    func() time.Time
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

// Run runs args against g and maps the outcome to an exit code; the one place errors become codes.
func Run(ctx context.Context, g *Globals, args []string) int {
	root := NewRootCmd(g)
	root.SetArgs(args)
	root.SetIn(g.In)
	root.SetOut(g.Out)
	root.SetErr(g.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, errSilent) {
		return exitCodeOf(err)
	}
	if g.Values != nil {
		err = redacted{err, g.Values.Redact(err.Error())}
	}
	printError(g, err)
	return exitCodeOf(err)
}

// NewRootCmd builds the command tree over g.
func NewRootCmd(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "figsupport",
		Short: "Turn customer requests into HubSpot tickets, R2 files, ClickUp subtasks and admin e-mails",
		Long: `figsupport turns Figurative's customer requests (web forms, e-mails, photos and 3D files) into
HubSpot tickets — one ticket per conversation — with files in Cloudflare R2, a ClickUp subtask for
3D-modelling work and an e-mail to the admin. With no account configured it runs every stage on
embedded backends kept in the data dir.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.load(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.ConfigFile, "config", "", "configuration file (YAML, TOML or JSON; keys as in .env.example, any case)")
	pf.StringVar(&g.EnvFile, "env-file", ".env", "dotenv file to read when present")
	pf.StringVar(&g.DataDir, "data-dir", "", "data dir (FIGSUPPORT_DATA_DIR; default $XDG_DATA_HOME/figsupport)")
	pf.StringVarP(&g.Output, "output", "o", "text", "output format: text or json")
	pf.BoolVar(&g.DryRun, "dry-run", false, "print what would be done and write nothing")
	pf.BoolVarP(&g.Verbose, "verbose", "v", false, "log each step on stderr")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })

	root.AddCommand(
		newClassifyCmd(g),
		newProcessCmd(g),
		newUploadCmd(g),
		newTicketCmd(g),
		newNoteCmd(g),
		newSubtaskCmd(g),
		newNotifyCmd(g),
		newRequestsCmd(g),
		newMailCmd(g),
		newServeCmd(g),
		newDoctorCmd(g),
	)
	return root
}

// load resolves configuration once: flags > environment > .env > config file > defaults.
func (g *Globals) load(cmd *cobra.Command) error {
	if g.Output != "text" && g.Output != "json" {
		return usageErr(fmt.Errorf("--output must be text or json, not %q", g.Output))
	}
	level := slog.LevelWarn
	if g.Verbose {
		level = slog.LevelDebug
	}
	g.Log = slog.New(slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: level}))

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
		return &config.Error{Key: "--env-file", Msg: fmt.Sprintf("%s: %v", envFile, err)}
	}
	env := g.Env
	if env == nil {
		env = os.LookupEnv
	}
	g.Values = config.New(func(key string) (string, bool) {
		if key == "FIGSUPPORT_DATA_DIR" && g.DataDir != "" {
			return g.DataDir, true
		}
		if val, ok := env(key); ok {
			return val, true
		}
		if k := strings.ToLower(key); v.IsSet(k) {
			return v.GetString(k), true
		}
		return "", false
	})
	if g.Now == nil {
		g.Now = time.Now
	}
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
	home, err := os.UserHomeDir()
	if err != nil {
		return "", &config.Error{Key: "FIGSUPPORT_DATA_DIR", Msg: "not set and no home directory to default to"}
	}
	return filepath.Join(home, ".local", "share", "figsupport"), nil
}

// isTTY reports whether w is a terminal (colour and friendlier text only then).
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// readInput reads FILE, or stdin for "-" or no argument.
func readInput(g *Globals, args []string) ([]byte, string, error) {
	if len(args) == 0 || args[0] == "-" {
		if f, ok := g.In.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			return nil, "", usageErr(errors.New("no payload: give a FILE, or pipe JSON on stdin with -"))
		}
		b, err := io.ReadAll(io.LimitReader(g.In, 64<<20))
		return b, "", err
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return nil, "", usageErr(fmt.Errorf("read payload: %w", err))
	}
	return b, filepath.Dir(args[0]), nil
}

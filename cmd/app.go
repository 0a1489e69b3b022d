package cmd

import (
	"context"
	"database/sql"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/fetch"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/local"
	"github.com/figurative/figsupport/internal/metrics"
	"github.com/figurative/figsupport/internal/notify"
	"github.com/figurative/figsupport/internal/objstore"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/rest"
	"github.com/figurative/figsupport/internal/sqlite"
)

// settings are the typed values every command may need before touching the data dir.
type settings struct {
	limits       payload.Limits
	maxFileBytes int64
	chain        chain.Options
	classify     classify.Config
	workers      int
}

func (g *Globals) settings() (settings, error) {
	v := g.Values
	s := settings{limits: payload.DefaultLimits}
	s.limits.MaxFiles = v.Int("FIGSUPPORT_MAX_FILES")
	s.limits.MaxBodyBytes = v.Int64("FIGSUPPORT_MAX_BODY_BYTES")
	s.maxFileBytes = v.Int64("FIGSUPPORT_MAX_FILE_BYTES")
	s.chain = chain.Options{
		OpenStages: v.List("HUBSPOT_OPEN_STAGES"),
		Window:     v.Duration("FIGSUPPORT_THREAD_WINDOW"),
		KeyTTL:     v.Duration("FIGSUPPORT_KEY_TTL"),
		HashTTL:    v.Duration("FIGSUPPORT_HASH_TTL"),
		// What figsupport sends comes from these addresses, with Message-IDs at the sender's
		// domain: a message from one of them, or with such an id, is its own come back.
		OwnAddresses: ownAddresses(v),
	}
	if own := s.chain.OwnAddresses; len(own) > 0 {
		if _, domain, ok := strings.Cut(own[0], "@"); ok {
			s.chain.MessageIDDomain = domain
		}
	}
	s.workers = v.Int("FIGSUPPORT_WORKERS")
	s.classify = classify.Config{
		BaseURL:  v.URL("LLM_BASE_URL"),
		Model:    v.String("LLM_MODEL"),
		APIKey:   v.String("LLM_API_KEY"),
		Timeout:  v.Duration("LLM_TIMEOUT"),
		Fallback: v.OneOf("CLASSIFY_FALLBACK", payload.Support, payload.Modelisation),
	}.WithAnthropicKey(v.String("ANTHROPIC_API_KEY"))
	return s, v.Err()
}

// crm is the chain's CRM plus what the ticket commands need beyond the chain.
type crm interface {
	chain.CRM
	CloseTicket(ctx context.Context, ticketID string) error
}

// app is the wired backends of one invocation.
type app struct {
	g        *Globals
	s        settings
	opts     appOptions
	dir      string
	db       *sql.DB
	journal  *journal.Journal
	local    *local.Store
	crm      crm
	tasks    chain.Tasks
	uploader *objstore.Uploader
	notify   *notify.Notifier
	classify *classify.Classifier
	// names says which backend serves each role, for stderr, logs and doctor.
	names   [][2]string
	checks  []func(context.Context) []health.Check
	closers []func()
}

// appOptions vary the wiring by command.
type appOptions struct {
	noLLM bool
	// spool, for serve: local file paths are accepted only under <data dir>/spool, where the
	// daemon writes multipart uploads; the command line accepts any local path.
	spool bool
	// metrics, for serve: told of every step and every repeated call to a service.
	metrics *metrics.Metrics
}

// openApp creates the data dir if needed and wires every backend: the real service where its
// credentials are configured, else the embedded one.
func openApp(ctx context.Context, g *Globals, noLLM bool) (*app, error) {
	return openAppWith(ctx, g, appOptions{noLLM: noLLM})
}

func openAppWith(ctx context.Context, g *Globals, o appOptions) (*app, error) {
	s, err := g.settings()
	if err != nil {
		return nil, err
	}
	s.classify.DisableLLM = o.noLLM
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &config.Error{Key: "FIGSUPPORT_DATA_DIR", Msg: fmt.Sprintf("cannot create %s: %v", dir, err)}
	}
	a := &app{g: g, s: s, dir: dir, opts: o}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	a.db, err = sqlite.Open(filepath.Join(dir, "figsupport.db"))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { a.db.Close() })
	if a.journal, err = journal.Open(ctx, a.db, filepath.Join(dir, "locks")); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { a.journal.Close() })
	v := g.Values
	if a.local, err = local.Open(ctx, a.db, local.Config{
		StageNew: v.String("HUBSPOT_STAGE_NEW"), StageClosed: v.String("HUBSPOT_STAGE_CLOSED"), Pipeline: v.String("HUBSPOT_PIPELINE_ID"),
	}); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { a.local.Close() })
	a.checks = append(a.checks, a.journalCheck)
	if a.classify, err = classify.New(s.classify); err != nil {
		return nil, err
	}
	a.names = append(a.names, [2]string{"llm", a.classify.Backend()})
	a.checks = append(a.checks, a.classify.Check)
	for _, wire := range []func(context.Context) error{a.wireCRM, a.wireTasks, a.wireFiles, a.wireNotifier} {
		if err := wire(ctx); err != nil {
			return nil, err
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

func (a *app) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

func (a *app) chain() *chain.Chain {
	d := chain.Deps{
		CRM: a.crm, Tasks: a.tasks, Files: a.uploader, Notifier: a.notify, Classifier: classifier{a.classify},
		Journal: a.journal, Observer: a.observer(), Log: a.g.Log,
	}
	if a.notify.AckEnabled() {
		d.Ack = a.notify
	}
	return chain.New(d, a.s.chain)
}

// ownAddresses are the addresses figsupport sends from or reads as: the SMTP sender, the Graph
// sender, the acknowledgements' sender and the support mailbox; the first is the one its
// Message-IDs are made at. The admins' addresses are not among them: an admin answering a
// notification is a person.
func ownAddresses(v *config.Values) []string {
	var out []string
	for _, k := range []string{"SMTP_FROM", "SMTP_USER", "GRAPH_SENDER", "FIGSUPPORT_ACK_FROM", "MAIL_IMAP_USER", "MAIL_GRAPH_MAILBOX"} {
		if a, err := mail.ParseAddress(v.String(k)); err == nil && !slices.Contains(out, strings.ToLower(a.Address)) {
			out = append(out, strings.ToLower(a.Address))
		}
	}
	return out
}

// retries counts the service clients' repeated calls: the metrics, when the daemon has them.
func (a *app) retries() rest.RetryObserver {
	if a.opts.metrics == nil {
		return nil
	}
	return a.opts.metrics
}

// observer is the chain's Observer: the metrics, when the daemon has them.
func (a *app) observer() chain.Observer {
	if a.opts.metrics == nil {
		return nil
	}
	return a.opts.metrics
}

// classifier gives the chain the classification it declares.
type classifier struct{ c *classify.Classifier }

func (c classifier) Classify(ctx context.Context, r *payload.Request) chain.Classification {
	res := c.c.Classify(ctx, r)
	return chain.Classification{Label: res.Classification, Ambiguous: res.Ambiguous, Method: res.Method, Reasons: res.Reasons}
}

// backends is "crm=hubspot tasks=embedded …" for stderr and logs.
func (a *app) backends() string {
	parts := make([]string, len(a.names))
	for i, n := range a.names {
		parts[i] = n[0] + "=" + n[1]
	}
	return strings.Join(parts, " ")
}

func (a *app) journalCheck(ctx context.Context) []health.Check {
	c := health.Check{Service: "journal", Name: filepath.Join(a.dir, "figsupport.db"), Status: health.OK}
	runs, err := a.journal.List(ctx, []string{chain.StatusFailed, chain.StatusIncomplete}, 1000)
	if err != nil {
		c.Status, c.Detail = health.Fail, err.Error()
	} else if len(runs) > 0 {
		c.Status, c.Detail = health.Warn, fmt.Sprintf("%d request(s) failed or incomplete: rerun them with process", len(runs))
	} else {
		c.Detail = "writable, nothing pending"
	}
	return []health.Check{c}
}

func (a *app) wireFiles(ctx context.Context) error {
	v := a.g.Values
	var backend objstore.Backend
	r2 := []string{"R2_ENDPOINT_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET_NAME"}
	if anySet(v, r2...) {
		for _, k := range append(r2, "R2_PUBLIC_URL") {
			v.Require(k, "when R2 is configured")
		}
		if err := v.Err(); err != nil {
			return err
		}
		s3, err := objstore.NewS3(objstore.S3Config{
			Endpoint: v.URL("R2_ENDPOINT_URL"), AccessKeyID: v.String("R2_ACCESS_KEY_ID"),
			SecretAccessKey: v.String("R2_SECRET_ACCESS_KEY"), Bucket: v.String("R2_BUCKET_NAME"), PublicURL: v.URL("R2_PUBLIC_URL"),
			PartSize: v.Int64("R2_PART_SIZE"), PartConcurrency: v.Int("R2_PART_CONCURRENCY"), MaxLargeUploads: v.Int("R2_MAX_LARGE_UPLOADS"),
		})
		if err != nil {
			return &config.Error{Key: "R2_ENDPOINT_URL", Msg: err.Error()}
		}
		backend = s3
		a.names = append(a.names, [2]string{"files", "r2"})
	} else {
		l, err := objstore.NewLocal(objstore.LocalConfig{DataDir: a.dir, PublicBaseURL: v.URL("FILES_PUBLIC_BASE_URL")})
		if err != nil {
			return &config.Error{Key: "FILES_PUBLIC_BASE_URL", Msg: err.Error()}
		}
		backend = l
		a.names = append(a.names, [2]string{"files", "embedded"})
	}
	fetcher := fetch.New(fetch.Config{
		MaxBytes: a.s.maxFileBytes, Timeout: v.Duration("FIGSUPPORT_FETCH_TIMEOUT"),
		HeaderTimeout: v.Duration("FIGSUPPORT_FETCH_HEADER_TIMEOUT"), MaxRedirects: v.Int("FIGSUPPORT_FETCH_MAX_REDIRECTS"),
	})
	// Local paths are for the command line; the daemon accepts only its own spool.
	cfg := objstore.Config{MaxFileBytes: a.s.maxFileBytes, Parallel: v.Int("FIGSUPPORT_UPLOAD_PARALLEL"), LocalPaths: true}
	if a.opts.spool {
		cfg.LocalRoot = a.spoolDir()
		if err := os.MkdirAll(cfg.LocalRoot, 0o700); err != nil {
			return &config.Error{Key: "FIGSUPPORT_DATA_DIR", Msg: fmt.Sprintf("cannot create %s: %v", cfg.LocalRoot, err)}
		}
	}
	a.uploader = objstore.NewUploader(backend, fetcher, cfg)
	a.checks = append(a.checks, a.uploader.Check)
	if ro, ok := backend.(readOnlyChecker); ok && a.g.DryRun {
		a.checks[len(a.checks)-1] = ro.CheckReadOnly
	}
	return nil
}

// spoolDir holds the files webhooks upload, until their request is done.
func (a *app) spoolDir() string { return filepath.Join(a.dir, "spool") }

// readOnlyChecker is a backend whose doctor check can skip its writes (`doctor --dry-run`).
type readOnlyChecker interface {
	CheckReadOnly(ctx context.Context) []health.Check
}

func anySet(v *config.Values, keys ...string) bool {
	for _, k := range keys {
		if v.Set(k) {
			return true
		}
	}
	return false
}

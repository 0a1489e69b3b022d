package cmd

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/local"
	"github.com/figurative/figsupport/internal/metrics"
	"github.com/figurative/figsupport/internal/notify"
	"github.com/figurative/figsupport/internal/objstore"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/postgres"
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
	lease        time.Duration
}

func (g *Globals) settings() (settings, error) {
	v := g.Values
	mark := v.Mark()
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
	// Shorter than 3 s, a renewal (every third) could lag behind a busy database and a live run
	// would be taken over.
	s.lease = v.DurationAtLeast("FIGSUPPORT_LEASE", 3*time.Second)
	s.classify = classify.Config{
		BaseURL:  v.URL("LLM_BASE_URL"),
		Model:    v.String("LLM_MODEL"),
		APIKey:   v.String("LLM_API_KEY"),
		Timeout:  v.Duration("LLM_TIMEOUT"),
		Fallback: v.OneOf("CLASSIFY_FALLBACK", payload.Support, payload.Modelisation),
	}.WithAnthropicKey(v.String("ANTHROPIC_API_KEY"))
	return s, v.ErrSince(mark)
}

// crm is the chain's CRM plus what the ticket commands need beyond the chain.
type crm interface {
	chain.CRM
	CloseTicket(ctx context.Context, ticketID string) error
}

// journalReader is what cmd reads of the journal outside the chain (dry runs, `requests`): the
// journal's read API, so that its rework touches this one declaration.
type journalReader interface {
	Get(ctx context.Context, key string) (*chain.Run, error)
	List(ctx context.Context, statuses []string, limit int) ([]*chain.Run, error)
}

// app is the wired backends of one invocation.
type app struct {
	g    *Globals
	s    settings
	opts appOptions
	dir  string
	// dbFile is where the database is; with readOnly and no database yet, an empty one lives in
	// memory and dbMissing is set.
	dbFile    string
	dbMissing bool
	pg        bool // the database is PostgreSQL (FIGSUPPORT_DATABASE_URL)
	db        *sql.DB
	journal   *journal.Journal
	local     *local.Store
	crm       crm
	tasks     chain.Tasks
	uploader  *objstore.Uploader
	notify    *notify.Notifier
	classify  *classify.Classifier
	// parts are the backends in use, in the order they are reported.
	parts   []part
	closers []func()
}

// part is one backend as the commands see it: its role, what serves it, what it writes to (for
// plans), and how doctor reaches and checks it.
type part struct {
	role    string // journal, llm, crm, tasks, files, notify
	backend string // hubspot, embedded, r2…
	target  string // where it writes, for plans: "HubSpot portal 12345", "bucket x at …"
	// reach is a URL on the service's host: doctor asks the host once (health.Reach) before the
	// checks, so that an unreachable host is one failure instead of one per check.
	reach string
	check func(ctx context.Context) []health.Check
	// checkReadOnly replaces check under --dry-run when check writes (a probe object, missing
	// properties created); nil when check writes nothing.
	checkReadOnly func(ctx context.Context) []health.Check
	// err: this part's configuration is wrong and it is not wired (doctor only: see collect).
	err error
}

// appOptions vary the wiring by command.
type appOptions struct {
	noLLM bool
	// spool, for serve: local file paths are accepted only under <data dir>/spool, where the
	// daemon writes multipart uploads; the command line accepts any local path.
	spool bool
	// readOnly: write nothing, not even the data dir: the database is opened read-only when it
	// exists and is an empty in-memory one when not (dry runs, `requests list/show`, `ticket find`).
	readOnly bool
	// collect, for doctor: a part whose configuration is wrong is kept with its error instead of
	// failing the whole wiring, so that every problem is reported at once.
	collect bool
	// metrics, for serve: told of every step and every repeated call to a service.
	metrics *metrics.Metrics
}

// openApp opens the data dir's database and wires every backend: the real service where its
// credentials are configured, else the embedded one.
func openApp(ctx context.Context, g *Globals, o appOptions) (*app, error) {
	s, err := g.settings()
	if err != nil && !o.collect {
		return nil, err
	}
	s.classify.DisableLLM = o.noLLM
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	a := &app{g: g, s: s, dir: dir, opts: o, dbFile: filepath.Join(dir, "figsupport.db")}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	if err := a.openStore(ctx); err != nil {
		return nil, err
	}
	v := g.Values
	for _, w := range []struct {
		role string
		wire func(context.Context) (part, error)
	}{
		{"llm", a.wireClassifier}, {"crm", a.wireCRM}, {"tasks", a.wireTasks}, {"files", a.wireFiles}, {"notify", a.wireNotifier},
	} {
		mark := v.Mark()
		p, err := w.wire(ctx)
		if err == nil {
			err = v.ErrSince(mark)
		}
		if err != nil {
			if !o.collect {
				return nil, err
			}
			p = part{role: w.role, backend: "not configured", err: err}
		}
		a.parts = append(a.parts, p)
	}
	ok = true
	return a, nil
}

// openStore opens the database, the journal and the embedded CRM and tracker that live in it.
func (a *app) openStore(ctx context.Context) error {
	if url := a.g.Values.String("FIGSUPPORT_DATABASE_URL"); url != "" {
		return a.openPostgres(ctx, url)
	}
	lockDir := filepath.Join(a.dir, "locks")
	if a.opts.readOnly {
		db, err := sqlite.OpenReadOnly(a.dbFile)
		if errors.Is(err, fs.ErrNotExist) {
			a.dbMissing = true
			db, err = sqlite.OpenMemory()
		}
		if err != nil {
			return err
		}
		a.db = db
	} else {
		if err := os.MkdirAll(a.dir, 0o700); err != nil {
			return &config.Error{Key: "FIGSUPPORT_DATA_DIR", Msg: fmt.Sprintf("cannot create %s: %v", a.dir, errors.Unwrap(err))}
		}
		db, err := sqlite.Open(a.dbFile)
		if err != nil {
			return err
		}
		a.db = db
	}
	return a.openSQLite(ctx, lockDir, "sqlite")
}

// openSQLite opens the journal and the embedded CRM and tracker in a.db, a SQLite database.
func (a *app) openSQLite(ctx context.Context, lockDir, backend string) error {
	db := a.db
	a.closers = append(a.closers, func() { db.Close() })
	var err error
	if a.opts.readOnly {
		// Read-only: no migration, no owner lock file, no lease renewal.
		a.journal, err = journal.OpenReadOnly(ctx, a.db)
	} else {
		a.journal, err = journal.Open(ctx, a.db, lockDir)
	}
	if err != nil {
		return err
	}
	return a.adopt(ctx, local.Open, backend)
}

// adopt keeps a.journal open until Close with the configured lease, opens the embedded CRM and
// tracker in a.db with openLocal, and declares the journal's part.
func (a *app) adopt(ctx context.Context, openLocal func(context.Context, *sql.DB, local.Config) (*local.Store, error), backend string) error {
	j := a.journal
	a.closers = append(a.closers, func() { j.Close() })
	j.SetLease(a.s.lease)
	v := a.g.Values
	l, err := openLocal(ctx, a.db, local.Config{
		StageNew: v.String("HUBSPOT_STAGE_NEW"), StageClosed: v.String("HUBSPOT_STAGE_CLOSED"), Pipeline: v.String("HUBSPOT_PIPELINE_ID"),
	})
	if err != nil {
		return err
	}
	a.local = l
	a.closers = append(a.closers, func() { l.Close() })
	a.parts = append(a.parts, part{role: "journal", backend: backend, target: a.dbFile, check: a.journalCheck})
	return nil
}

// openPostgres opens the journal, the memo and the embedded CRM and tracker in a PostgreSQL
// database that several daemons share (FIGSUPPORT_DATABASE_URL).
func (a *app) openPostgres(ctx context.Context, url string) error {
	const key = "FIGSUPPORT_DATABASE_URL"
	if !postgres.IsURL(url) {
		return &config.Error{Key: key, Msg: "want a postgres:// or postgresql:// URL"}
	}
	a.dbFile = postgres.Describe(url)
	open := postgres.Open
	if a.opts.readOnly {
		open = postgres.OpenReadOnly
	}
	db, err := open(ctx, url)
	if err != nil {
		return &config.Error{Key: key, Msg: a.g.Values.Redact(err.Error())}
	}
	a.db = db
	a.pg = true
	a.closers = append(a.closers, func() { db.Close() })
	if a.opts.readOnly {
		if v, err := postgres.Version(ctx, db, "journal"); err != nil {
			return &config.Error{Key: key, Msg: a.g.Values.Redact(err.Error())}
		} else if v == 0 {
			// A database nothing has written to yet: a dry run plans on an empty journal in
			// memory, as it does before the SQLite file exists, and creates no table.
			if a.db, err = sqlite.OpenMemory(); err != nil {
				return err
			}
			a.dbMissing = true
			return a.openSQLite(ctx, "", "postgres")
		}
		a.journal, err = journal.OpenReadOnly(ctx, a.db)
	} else {
		a.journal, err = journal.OpenPostgres(ctx, a.db)
	}
	if err != nil {
		return err
	}
	return a.adopt(ctx, local.OpenPostgres, "postgres")
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

// backends is "llm=… crm=embedded tasks=…" for stderr and logs.
func (a *app) backends() string {
	var parts []string
	for _, p := range a.parts {
		if p.role != "journal" {
			parts = append(parts, p.role+"="+p.backend)
		}
	}
	return strings.Join(parts, " ")
}

// target is where role writes, for plans.
func (a *app) target(role string) string {
	for _, p := range a.parts {
		if p.role == role {
			return p.target
		}
	}
	return ""
}

func (a *app) journalCheck(ctx context.Context) []health.Check {
	c := health.Check{Service: "journal", Name: a.dbFile, Status: health.OK}
	if a.dbMissing {
		c.Detail = "no database yet: the first run creates it (--dry-run)"
		if a.pg {
			c.Detail = "PostgreSQL reachable, no table yet: the first run that writes applies the migrations (--dry-run)"
		}
		return []health.Check{c}
	}
	if err := a.journal.CheckDatabase(ctx, a.opts.readOnly); err != nil {
		c.Status, c.Detail = health.Fail, err.Error()
		return []health.Check{c}
	}
	runs, err := a.journal.List(ctx, []string{chain.StatusFailed, chain.StatusIncomplete}, 1000)
	switch {
	case err != nil:
		c.Status, c.Detail = health.Fail, err.Error()
	case len(runs) > 0:
		c.Status, c.Detail = health.Warn, fmt.Sprintf("%d request(s) failed or incomplete: `figsupport requests retry --failed` resumes them", len(runs))
	case a.opts.readOnly:
		c.Detail = "readable, nothing pending (write not probed: --dry-run)"
	default:
		c.Detail = "writable, nothing pending"
	}
	if a.pg && c.Status == health.OK {
		c.Detail = "PostgreSQL reachable, migrations applied, advisory locks usable; " + c.Detail
	}
	return []health.Check{c}
}

func (a *app) wireClassifier(context.Context) (part, error) {
	c, err := classify.New(a.s.classify)
	if err != nil {
		return part{}, err
	}
	a.classify = c
	return part{role: "llm", backend: c.Backend(), reach: a.s.classify.BaseURL, check: c.Check}, nil
}

func (a *app) wireFiles(context.Context) (part, error) {
	v := a.g.Values
	mark := v.Mark()
	var backend objstore.Backend
	p := part{role: "files"}
	r2 := []string{"R2_ENDPOINT_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET_NAME"}
	if anySet(v, r2...) {
		for _, k := range append(r2, "R2_PUBLIC_URL") {
			v.Require(k, "when R2 is configured")
		}
		cfg := objstore.S3Config{
			Endpoint: v.URL("R2_ENDPOINT_URL"), AccessKeyID: v.String("R2_ACCESS_KEY_ID"),
			SecretAccessKey: v.String("R2_SECRET_ACCESS_KEY"), Bucket: v.String("R2_BUCKET_NAME"), PublicURL: v.URL("R2_PUBLIC_URL"),
			PartSize: v.Int64("R2_PART_SIZE"), PartConcurrency: v.Int("R2_PART_CONCURRENCY"), MaxLargeUploads: v.Int("R2_MAX_LARGE_UPLOADS"),
		}
		if err := v.ErrSince(mark); err != nil {
			return part{}, err
		}
		s3, err := objstore.NewS3(cfg)
		if err != nil {
			return part{}, &config.Error{Key: "R2_ENDPOINT_URL", Msg: err.Error()}
		}
		backend = s3
		p.backend, p.reach = "r2", cfg.Endpoint
		p.target = fmt.Sprintf("bucket %s at %s, published under %s", cfg.Bucket, cfg.Endpoint, cfg.PublicURL)
		p.check, p.checkReadOnly = s3.Check, s3.CheckReadOnly
	} else {
		l, err := objstore.NewLocal(objstore.LocalConfig{DataDir: a.dir, PublicBaseURL: v.URL("FILES_PUBLIC_BASE_URL")})
		if err != nil {
			return part{}, &config.Error{Key: "FILES_PUBLIC_BASE_URL", Msg: err.Error()}
		}
		backend = l
		p.backend, p.target = "embedded", l.Root()
		p.check, p.checkReadOnly = l.Check, l.CheckReadOnly
	}
	fetcher := fetchConfig(v, a.s.maxFileBytes)
	// Local paths are for the command line; the daemon accepts only its own spool.
	cfg := objstore.Config{MaxFileBytes: a.s.maxFileBytes, Parallel: v.Int("FIGSUPPORT_UPLOAD_PARALLEL"), LocalPaths: true}
	if a.opts.spool {
		cfg.LocalRoot = a.spoolDir()
		if err := os.MkdirAll(cfg.LocalRoot, 0o700); err != nil {
			return part{}, &config.Error{Key: "FIGSUPPORT_DATA_DIR", Msg: fmt.Sprintf("cannot create %s: %v", cfg.LocalRoot, errors.Unwrap(err))}
		}
	}
	if bar := a.g.uploadProgress(); bar != nil {
		cfg.OnProgress = bar.report
	}
	a.uploader = objstore.NewUploader(backend, fetcher, cfg)
	return p, nil
}

// spoolDir holds the files webhooks upload, until their request is done.
func (a *app) spoolDir() string { return filepath.Join(a.dir, "spool") }

func anySet(v *config.Values, keys ...string) bool {
	for _, k := range keys {
		if v.Set(k) {
			return true
		}
	}
	return false
}

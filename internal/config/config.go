// Package config is figsupport's configuration: the one table of every key (name, default,
// meaning, secret or not) and typed reads of the values the root command collected. It knows
// nothing of viper: cmd/ resolves flags, environment, .env and config file into a lookup.
package config

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrConfig marks configuration errors: the CLI exits 4 on them.
var ErrConfig = errors.New("configuration error")

// Error names the key at fault.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Is makes errors.Is(err, ErrConfig) true.
func (e *Error) Is(target error) bool { return target == ErrConfig }

// Key is one configuration key.
type Key struct {
	Name    string
	Default string
	Group   string
	Doc     string
	Secret  bool
}

// Keys is every key figsupport reads, in the order of .env.example and the README.
var Keys = []Key{
	{Name: "FIGSUPPORT_DATA_DIR", Group: "general", Doc: "data dir: SQLite journal and embedded backends, files, outbox, locks (default $XDG_DATA_HOME/figsupport, else ~/.local/share/figsupport; an empty value is no value; deployed, --data-dir /var/lib/figsupport decides)"},
	{Name: "FIGSUPPORT_DATABASE_URL", Group: "general", Secret: true, Doc: "postgres://user:password@host/db: the journal, memo and embedded CRM in PostgreSQL, shared by several daemons; empty: the SQLite file in the data dir"},
	{Name: "FIGSUPPORT_LEASE", Group: "general", Default: "1m", Doc: "how long a run stays its process's without renewal (renewed every third of it): after a crash or a lost machine, another process takes the run over this long after (at least 3s)"},
	{Name: "FIGSUPPORT_THREAD_WINDOW", Group: "general", Default: "14d", Doc: "a follow-up joins the contact's open ticket active this recently (measured at received_at); units d, h, m, s"},
	{Name: "FIGSUPPORT_KEY_TTL", Group: "general", Default: "7d", Doc: "how long an explicit request_id is remembered for idempotency"},
	{Name: "FIGSUPPORT_HASH_TTL", Group: "general", Default: "24h", Doc: "how long a payload hash (no request_id) is remembered"},
	{Name: "FIGSUPPORT_MAX_FILES", Group: "general", Default: "20", Doc: "files per request"},
	{Name: "FIGSUPPORT_MAX_FILE_BYTES", Group: "general", Default: "209715200", Doc: "size cap of one file, enforced while streaming (200 MiB)"},
	{Name: "FIGSUPPORT_UPLOAD_PARALLEL", Group: "general", Default: "4", Doc: "files of one request uploaded at once"},
	{Name: "FIGSUPPORT_FETCH_TIMEOUT", Group: "general", Default: "10m", Doc: "whole download of one file URL, body included"},
	{Name: "FIGSUPPORT_FETCH_HEADER_TIMEOUT", Group: "general", Default: "30s", Doc: "until a file URL's response headers"},
	{Name: "FIGSUPPORT_FETCH_MAX_REDIRECTS", Group: "general", Default: "5", Doc: "redirects followed when fetching a file URL, each re-checked"},
	{Name: "FIGSUPPORT_MAX_BODY_BYTES", Group: "general", Default: "1048576", Doc: "size cap of a JSON request, on the command line as in the daemon"},

	{Name: "FIGSUPPORT_ADDR", Group: "serve", Default: ":5000", Doc: "serve: listen address; without FIGSUPPORT_WEBHOOK_SECRET or FIGSUPPORT_WEBHOOK_TOKEN only loopback is used"},
	{Name: "FIGSUPPORT_WEBHOOK_SECRET", Group: "serve", Secret: true, Doc: "serve: Standard Webhooks signing secret (whsec_…): requests must carry a valid webhook-signature"},
	{Name: "FIGSUPPORT_WEBHOOK_TOKEN", Group: "serve", Secret: true, Doc: "serve: static token: requests must carry Authorization: Bearer <token> (either this or a valid signature)"},
	{Name: "FIGSUPPORT_MODE", Group: "serve", Default: "sync", Doc: "serve: sync answers with the chain's result (202 queued past FIGSUPPORT_SYNC_TIMEOUT); async answers 202 as soon as the request is in the journal"},
	{Name: "FIGSUPPORT_SYNC_TIMEOUT", Group: "serve", Default: "25s", Doc: "serve: how long a webhook waits for the chain before answering 202 queued (the run goes on)"},
	{Name: "FIGSUPPORT_WORKERS", Group: "serve", Default: "4", Doc: "serve and requests retry: requests processed at once (one per contact at a time, in arrival order)"},
	{Name: "FIGSUPPORT_MAX_BACKLOG", Group: "serve", Default: "1000", Doc: "serve: requests waiting or running; past it new ones get 503 with Retry-After"},
	{Name: "FIGSUPPORT_SHUTDOWN_TIMEOUT", Group: "serve", Default: "30s", Doc: "serve: on SIGTERM, how long runs in flight may take to finish before they are stopped and recorded for the next start"},
	{Name: "FIGSUPPORT_TRUSTED_PROXIES", Group: "serve", Doc: "serve: reverse proxies in front of the daemon (IPs or CIDRs, comma-separated, e.g. 127.0.0.1,::1); only their client-IP header is believed"},
	{Name: "FIGSUPPORT_CLIENT_IP_HEADER", Group: "serve", Default: "X-Forwarded-For", Doc: "serve: header a trusted proxy puts the client's address in (X-Forwarded-For, X-Real-IP, CF-Connecting-IP)"},
	{Name: "FIGSUPPORT_RATE_PER_MINUTE", Group: "serve", Default: "120", Doc: "serve: requests per minute per client IP"},
	{Name: "FIGSUPPORT_RATE_BURST", Group: "serve", Default: "20", Doc: "serve: burst of requests per client IP"},
	{Name: "FIGSUPPORT_RETRY_INTERVAL", Group: "serve", Default: "1m", Doc: "serve: the wait after a request's first temporary failure, doubled after each further one (capped at 1 h); requests left by a process that died resume at once"},
	{Name: "FIGSUPPORT_RETRY_MAX_ATTEMPTS", Group: "serve", Default: "12", Doc: "serve: attempts before a request is left for `requests retry`"},

	{Name: "CLASSIFY_FALLBACK", Group: "classification", Default: "SUPPORT", Doc: "label of an ambiguous request when no LLM answers (SUPPORT or MODELISATION)"},
	{Name: "LLM_BASE_URL", Group: "classification", Doc: "OpenAI-compatible endpoint for ambiguous requests (OpenAI https://api.openai.com/v1, Ollama http://localhost:11434/v1…)"},
	{Name: "LLM_MODEL", Group: "classification", Doc: "model name at that endpoint"},
	{Name: "LLM_API_KEY", Group: "classification", Secret: true, Doc: "key for LLM_BASE_URL"},
	{Name: "ANTHROPIC_API_KEY", Group: "classification", Secret: true, Doc: "alone (no LLM_BASE_URL), selects Anthropic's OpenAI-compatible endpoint"},
	{Name: "LLM_TIMEOUT", Group: "classification", Default: "10s", Doc: "the LLM's answer deadline; past it the fallback applies"},

	{Name: "HUBSPOT_API_KEY", Group: "hubspot", Secret: true, Doc: "private app token (pat-…); set: HubSpot is the CRM, else the embedded one"},
	{Name: "HUBSPOT_BASE_URL", Group: "hubspot", Default: "https://api.hubapi.com", Doc: "API base URL"},
	{Name: "HUBSPOT_HUB_ID", Group: "hubspot", Doc: "portal id, for ticket links"},
	{Name: "HUBSPOT_APP_DOMAIN", Group: "hubspot", Default: "app.hubspot.com", Doc: "web app domain for ticket links (EU portals: app-eu1.hubspot.com)"},
	{Name: "HUBSPOT_PIPELINE_ID", Group: "hubspot", Default: "0", Doc: "ticket pipeline"},
	{Name: "HUBSPOT_STAGE_NEW", Group: "hubspot", Default: "1", Doc: "stage of a new ticket"},
	{Name: "HUBSPOT_OPEN_STAGES", Group: "hubspot", Default: "1,2", Doc: "stages of an open ticket (comma-separated); the embedded CRM uses them too"},
	{Name: "HUBSPOT_STAGE_CLOSED", Group: "hubspot", Default: "4", Doc: "stage `ticket close` moves a ticket to"},
	{Name: "HUBSPOT_TIMEOUT", Group: "hubspot", Default: "30s", Doc: "per HTTP attempt"},
	{Name: "HUBSPOT_RATE_LIMIT", Group: "hubspot", Default: "100", Doc: "client-side limit, requests per 10 s (your tier: 100, 150 or 190)"},

	{Name: "CLICKUP_API_KEY", Group: "clickup", Secret: true, Doc: "personal token (pk_…); set: ClickUp is the task tracker, else the embedded one"},
	{Name: "CLICKUP_BASE_URL", Group: "clickup", Default: "https://api.clickup.com", Doc: "API base URL"},
	{Name: "CLICKUP_PARENT_TASK_ID", Group: "clickup", Doc: "task under which modelling subtasks are created"},
	{Name: "CLICKUP_RATE_LIMIT", Group: "clickup", Default: "100", Doc: "client-side limit, requests per minute (Business Plus 1000, Enterprise 10000)"},

	{Name: "R2_ENDPOINT_URL", Group: "r2", Doc: "https://<account>.r2.cloudflarestorage.com; set with the keys: R2 is the object store, else files go under the data dir"},
	{Name: "R2_ACCESS_KEY_ID", Group: "r2", Secret: true, Doc: "R2 API token's access key id"},
	{Name: "R2_SECRET_ACCESS_KEY", Group: "r2", Secret: true, Doc: "R2 API token's secret"},
	{Name: "R2_BUCKET_NAME", Group: "r2", Doc: "bucket"},
	{Name: "R2_PUBLIC_URL", Group: "r2", Doc: "public base URL of the bucket (r2.dev or custom domain)"},
	{Name: "R2_PART_SIZE", Group: "r2", Default: "5242880", Doc: "multipart part size in bytes (at least 5 MiB); smaller files go in one PUT"},
	{Name: "R2_PART_CONCURRENCY", Group: "r2", Default: "2", Doc: "parts of one file in flight"},
	{Name: "R2_MAX_LARGE_UPLOADS", Group: "r2", Default: "1", Doc: "multipart uploads in flight in the whole process (keeps memory flat)"},
	{Name: "FILES_PUBLIC_BASE_URL", Group: "r2", Doc: "embedded store only: public base URL instead of file:// links"},

	{Name: "NOTIFICATION_EMAIL", Group: "notification", Doc: "admin address(es), comma-separated"},
	{Name: "NOTIFY_TRANSPORT", Group: "notification", Doc: "outbox, smtp or graph (default: smtp when SMTP_HOST is set, graph when GRAPH_SENDER is, else outbox)"},
	{Name: "SMTP_HOST", Group: "notification", Doc: "SMTP server (Office 365: smtp.office365.com)"},
	{Name: "SMTP_PORT", Group: "notification", Doc: "default 587 (STARTTLS), 465 with SMTP_TLS=tls"},
	{Name: "SMTP_USER", Group: "notification", Doc: "mailbox to authenticate as (its UPN for XOAUTH2)"},
	{Name: "SMTP_PASSWORD", Group: "notification", Secret: true, Doc: "password for login/plain"},
	{Name: "SMTP_FROM", Group: "notification", Doc: "sender address (default SMTP_USER)"},
	{Name: "SMTP_AUTH", Group: "notification", Default: "login", Doc: "login, plain, xoauth2 or none"},
	{Name: "SMTP_TLS", Group: "notification", Doc: "starttls, tls (implicit, default on port 465) or none (only with SMTP_AUTH=none: credentials never cross an unencrypted connection)"},
	{Name: "OAUTH_TENANT_ID", Group: "notification", Doc: "Microsoft Entra tenant, for XOAUTH2 and Graph (the notifier and the mailbox)"},
	{Name: "OAUTH_CLIENT_ID", Group: "notification", Doc: "app registration's client id"},
	{Name: "OAUTH_CLIENT_SECRET", Group: "notification", Secret: true, Doc: "app registration's client secret"},
	{Name: "OAUTH_TOKEN_URL", Group: "notification", Doc: "token endpoint override (default https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token)"},
	{Name: "GRAPH_SENDER", Group: "notification", Doc: "mailbox Graph sends as (users/{sender}/sendMail)"},
	{Name: "GRAPH_BASE_URL", Group: "notification", Default: "https://graph.microsoft.com", Doc: "Graph base URL (sendMail and the mailbox)"},
	{Name: "FIGSUPPORT_ACK", Group: "notification", Default: "off", Doc: "on: a message that opens a ticket is acknowledged to the customer by e-mail (ticket reference in the subject), through the notification transport"},
	{Name: "FIGSUPPORT_ACK_TEMPLATE", Group: "notification", Doc: "acknowledgement template file, Go text/template (default the embedded French one; variables in docs/notify.md)"},
	{Name: "FIGSUPPORT_ACK_FROM", Group: "notification", Doc: "sender of acknowledgements, the address customers reply to (default SMTP_FROM)"},

	{Name: "MAIL_SOURCE", Group: "mailbox", Doc: "the support mailbox `mail poll` reads: imap or graph; empty: none"},
	{Name: "MAIL_IMAP_HOST", Group: "mailbox", Doc: "IMAP server (Office 365: outlook.office365.com)"},
	{Name: "MAIL_IMAP_PORT", Group: "mailbox", Doc: "default 993 (MAIL_IMAP_TLS=tls), else 143"},
	{Name: "MAIL_IMAP_TLS", Group: "mailbox", Default: "tls", Doc: "tls (implicit), starttls, or none (a loopback address only: credentials never cross a network in clear)"},
	{Name: "MAIL_IMAP_USER", Group: "mailbox", Doc: "mailbox to log in as (its UPN for XOAUTH2)"},
	{Name: "MAIL_IMAP_PASSWORD", Group: "mailbox", Secret: true, Doc: "password for MAIL_IMAP_AUTH=login"},
	{Name: "MAIL_IMAP_AUTH", Group: "mailbox", Default: "login", Doc: "login, or xoauth2 (Office 365: a client-credentials token from the OAUTH_* app, scope https://outlook.office365.com/.default)"},
	{Name: "MAIL_GRAPH_MAILBOX", Group: "mailbox", Doc: "MAIL_SOURCE=graph: the mailbox read (users/{mailbox}), with the OAUTH_* app and GRAPH_BASE_URL"},
	{Name: "MAIL_FOLDER", Group: "mailbox", Default: "INBOX", Doc: "folder read (Graph: a well-known name such as inbox, or display names like Inbox/Support)"},
	{Name: "MAIL_PROCESSED_FOLDER", Group: "mailbox", Doc: "folder a handled message is moved to; empty: it is marked read where it is"},
	{Name: "MAIL_REJECTED_FOLDER", Group: "mailbox", Doc: "folder a message that can never be processed (unreadable, too large) is moved to; empty: it is marked read and flagged"},
	{Name: "MAIL_MAX_PER_PASS", Group: "mailbox", Default: "50", Doc: "messages looked at in one pass (`mail poll --limit` overrides); messages that failed before come after new ones"},
	{Name: "FIGSUPPORT_MAIL_POLL_INTERVAL", Group: "mailbox", Default: "0", Doc: "serve: how often the daemon reads the mailbox (e.g. 2m); 0: never (cron runs `mail poll`, or mail arrives on POST /webhook/email)"},
}

// Lookup returns a key's value and whether it was set anywhere (flag, environment, .env, config file).
type Lookup func(key string) (string, bool)

// Values are the resolved keys.
type Values struct {
	get  Lookup
	errs []*Error
}

// New reads through get; unknown keys are a programming error and panic in tests.
func New(get Lookup) *Values { return &Values{get: get} }

func keyDef(name string) Key {
	i := slices.IndexFunc(Keys, func(k Key) bool { return k.Name == name })
	if i < 0 {
		panic("config: unknown key " + name)
	}
	return Keys[i]
}

// String is the key's value, or its default.
func (v *Values) String(name string) string {
	k := keyDef(name)
	if s, ok := v.get(name); ok && strings.TrimSpace(s) != "" {
		return strings.TrimSpace(s)
	}
	return k.Default
}

// Set reports whether the key has a non-empty value.
func (v *Values) Set(name string) bool {
	keyDef(name)
	s, ok := v.get(name)
	return ok && strings.TrimSpace(s) != ""
}

// fail records a problem once: a key read twice with the same bad value is one problem.
func (v *Values) fail(name, format string, args ...any) {
	e := &Error{Key: name, Msg: fmt.Sprintf(format, args...)}
	for _, old := range v.errs {
		if *old == *e {
			return
		}
	}
	v.errs = append(v.errs, e)
}

// Int is a positive integer key.
func (v *Values) Int(name string) int {
	s := v.String(name)
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		v.fail(name, "want a positive integer, got %q", s)
		return 0
	}
	return n
}

// Int64 is a positive 64-bit integer key.
func (v *Values) Int64(name string) int64 {
	s := v.String(name)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		v.fail(name, "want a positive integer, got %q", s)
		return 0
	}
	return n
}

// Bool is an on/off key: on, true, yes or 1; off, false, no or 0.
func (v *Values) Bool(name string) bool {
	switch s := strings.ToLower(v.String(name)); s {
	case "on", "true", "yes", "1":
		return true
	case "off", "false", "no", "0", "":
		return false
	default:
		v.fail(name, "want on or off, got %q", s)
		return false
	}
}

// Duration is a positive duration key: Go syntax (90s, 36h) plus whole days (14d).
func (v *Values) Duration(name string) time.Duration {
	s := v.String(name)
	d, err := ParseDuration(s)
	if err != nil || d <= 0 {
		v.fail(name, "want a positive duration like 14d, 36h or 90s, got %q", s)
		return 0
	}
	return d
}

// DurationAtLeast is a Duration key with a lower bound.
func (v *Values) DurationAtLeast(name string, least time.Duration) time.Duration {
	d := v.Duration(name)
	if d > 0 && d < least {
		v.fail(name, "want at least %s, got %q", least, v.String(name))
		return 0
	}
	return d
}

// OptionalDuration is a duration key that may be 0 (or "off"): off, returned as 0.
func (v *Values) OptionalDuration(name string) time.Duration {
	s := v.String(name)
	if s == "" || s == "0" || strings.EqualFold(s, "off") {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil || d < 0 {
		v.fail(name, "want 0 (off) or a duration like 2m or 1h, got %q", s)
		return 0
	}
	return d
}

// ParseDuration is time.ParseDuration plus a "d" suffix for days.
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("bad day count %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// List is a comma-separated key, trimmed, empty items dropped.
func (v *Values) List(name string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(v.String(name), func(r rune) bool { return r == ',' || r == ';' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// URL is an absolute http(s) URL key, or "" when unset.
func (v *Values) URL(name string) string {
	s := v.String(name)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.fail(name, "want an absolute http(s) URL, got %q", s)
		return ""
	}
	return strings.TrimRight(s, "/")
}

// Emails is a list of e-mail addresses key.
func (v *Values) Emails(name string) []string {
	list := v.List(name)
	for _, a := range list {
		if p, err := mail.ParseAddress(a); err != nil || p.Address != a {
			v.fail(name, "not an e-mail address: %q", a)
		}
	}
	return list
}

// OneOf is a key restricted to choices (compared case-insensitively, returned lower-case unless
// the choices are upper-case).
func (v *Values) OneOf(name string, choices ...string) string {
	s := v.String(name)
	if s == "" {
		return ""
	}
	for _, c := range choices {
		if strings.EqualFold(s, c) {
			return c
		}
	}
	v.fail(name, "want one of %s, got %q", strings.Join(choices, ", "), s)
	return ""
}

// Require records an error when the key is unset; why says what needs it.
func (v *Values) Require(name, why string) {
	if !v.Set(name) {
		v.fail(name, "is required %s", why)
	}
}

// Err is every problem found so far, joined, or nil.
func (v *Values) Err() error { return join(v.errs) }

// Mark is how many problems were found so far; ErrSince(mark) is those found after it, so that
// one part of the wiring fails on its own keys only (doctor reports each part separately).
func (v *Values) Mark() int { return len(v.errs) }

// ErrSince is every problem found after mark (see Mark), joined, or nil.
func (v *Values) ErrSince(mark int) error { return join(v.errs[min(mark, len(v.errs)):]) }

// Errors is every problem found so far, each naming its key, in the order found.
func (v *Values) Errors() []*Error { return slices.Clone(v.errs) }

func join(errs []*Error) error {
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

// Redact replaces every secret's value in s by "***", for messages that might echo configuration.
func (v *Values) Redact(s string) string {
	for _, k := range Keys {
		if !k.Secret {
			continue
		}
		if val, ok := v.get(k.Name); ok && len(val) >= 4 {
			s = strings.ReplaceAll(s, val, "***")
		}
	}
	return s
}

// Example renders .env.example from the table.
func Example() string {
	var b strings.Builder
	b.WriteString("# figsupport configuration: copy to .env and fill in what you use.\n")
	b.WriteString("# Unset service keys select the embedded backends (no account needed).\n")
	b.WriteString("# Precedence: flags > environment > .env > config file > these defaults.\n")
	group := ""
	for _, k := range Keys {
		if k.Group != group {
			group = k.Group
			fmt.Fprintf(&b, "\n# --- %s ---\n", group)
		}
		fmt.Fprintf(&b, "# %s", k.Doc)
		if k.Secret {
			b.WriteString(" (secret)")
		}
		fmt.Fprintf(&b, "\n%s=%s\n", k.Name, k.Default)
	}
	return b.String()
}

// Table renders the README's configuration table rows from Keys.
func Table() string {
	var b strings.Builder
	b.WriteString("| key | default | meaning |\n|---|---|---|\n")
	for _, k := range Keys {
		def := "—"
		if k.Default != "" {
			def = "`" + k.Default + "`"
		}
		doc := strings.ReplaceAll(k.Doc, "|", "\\|")
		if k.Secret {
			doc += " (secret)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Name, def, doc)
	}
	return b.String()
}

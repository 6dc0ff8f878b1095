// Package config reads dirsync's settings from the environment. Every setting has a
// local default so `dirsync dev` works on a fresh machine; Validate reports every
// problem at once so an operator fixes a deployment in one round.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/internal/logctx"
	"github.com/dirsync/dirsync/internal/stmtcache"
)

// Config is the whole process configuration. Field comments name the variable.
type Config struct {
	DatabaseURL string // DIRSYNC_DATABASE_URL: PostgreSQL, postgres://user:pass@host:port/db?sslmode=...
	RedisURL    string // DIRSYNC_REDIS_URL: redis:// or rediss:// (TLS) URL
	Listen      string // DIRSYNC_LISTEN: the API's listen address (host:port)
	// DatabaseStatementCache (DIRSYNC_DB_STATEMENT_CACHE) is how many
	// statements each PostgreSQL connection keeps prepared (internal/stmtcache);
	// 0 = none, for a pooler in transaction mode. Default 256.
	DatabaseStatementCache int
	// SecretKey seals client secrets and queued passwords (AES-256-GCM); 32 bytes,
	// given base64-encoded in DIRSYNC_SECRET_KEY. Empty means "not configured".
	SecretKey []byte
	// SecretKeyID labels sealed values so keys can rotate (DIRSYNC_SECRET_KEY_ID).
	SecretKeyID string
	// SecretKeys (DIRSYNC_SECRET_KEYS, "id:base64,…") are several sealing
	// keys by id for rotation: the first seals new values, all open old ones.
	// See SealingKeys and docs/operators.md.
	SecretKeys []SecretKey

	Playground      bool // DIRSYNC_PLAYGROUND: GraphiQL at /
	Introspection   bool // DIRSYNC_INTROSPECTION: allow __schema queries (GraphiQL needs it)
	ComplexityLimit int  // DIRSYNC_COMPLEXITY_LIMIT: the most an operation may cost (a list costs its fields times its rows)
	MaxPageSize     int  // DIRSYNC_MAX_PAGE_SIZE: the most rows of a connection page (1..1000)

	// AllowCustomGraphURLs lets integrations point at Graph/login hosts other than
	// Microsoft's (the emulator). Off in production: an admin could otherwise make
	// the server send a client secret and tokens anywhere (SSRF).
	AllowCustomGraphURLs bool // DIRSYNC_ALLOW_CUSTOM_GRAPH_URLS
	// AllowInsecureGraphURLs lets Graph/login URLs use plain http and reach
	// loopback, private and link-local addresses (an emulator on this machine
	// or the LAN). Off in production: with it, an admin could aim the server
	// at internal services. `dirsync dev` turns it on.
	AllowInsecureGraphURLs bool // DIRSYNC_ALLOW_INSECURE_GRAPH_URLS

	// HTTPReadHeaderTimeout (DIRSYNC_HTTP_READ_HEADER_TIMEOUT) bounds reading
	// a request's headers; 0 = 10s (docs/security.md).
	HTTPReadHeaderTimeout time.Duration
	// HTTPReadTimeout (DIRSYNC_HTTP_READ_TIMEOUT) bounds reading a whole
	// request, body included; 0 = 30s.
	HTTPReadTimeout time.Duration
	// HTTPWriteTimeout (DIRSYNC_HTTP_WRITE_TIMEOUT) bounds a request's answer;
	// subscription streams lift it for themselves; 0 = 60s.
	HTTPWriteTimeout time.Duration
	// HTTPIdleTimeout (DIRSYNC_HTTP_IDLE_TIMEOUT) closes idle keep-alive
	// connections; 0 = 2m.
	HTTPIdleTimeout time.Duration
	// HTTPMaxHeaderBytes (DIRSYNC_HTTP_MAX_HEADER_BYTES) bounds a request's
	// line and headers; 0 = 64 KiB, at most 1 MiB.
	HTTPMaxHeaderBytes int

	// AllowedOrigins is the websocket Origin allow-list (DIRSYNC_ALLOWED_ORIGINS,
	// comma-separated; empty = same-origin and non-browser clients only).
	AllowedOrigins []string

	// Argon2MemoryKiB (DIRSYNC_ARGON2_MEMORY_KIB) is the memory of one
	// argon2id password hash; this and the two below are the parameters of
	// new hashes (docs/portal.md), 0 takes password.DefaultParams, and raising
	// them later re-hashes each password at its next portal login.
	Argon2MemoryKiB int
	// Argon2Iterations (DIRSYNC_ARGON2_ITERATIONS) is the number of passes.
	Argon2Iterations int
	// Argon2Parallelism (DIRSYNC_ARGON2_PARALLELISM) is the lanes of one hash.
	Argon2Parallelism int

	ShutdownTimeout time.Duration // DIRSYNC_SHUTDOWN_TIMEOUT: how long a stopping process drains in-flight work
	LogLevel        slog.Level    // DIRSYNC_LOG_LEVEL: debug|info|warn|error
	LogFormat       string        // DIRSYNC_LOG_FORMAT: text|json

	// SweepAfter (DIRSYNC_SWEEP_AFTER) is how long a job item may stay
	// PENDING before the worker's sweeper checks that its task still exists
	// and sends it again if not; 0 = the worker's default (10 min).
	SweepAfter time.Duration

	// DriftInterval (DIRSYNC_DRIFT_INTERVAL) is how often each authorized
	// integration gets a drift round (a Graph delta query comparing the
	// tenant with what dirsync applied, docs/drift.md), once per period
	// across all workers, at a fixed per-integration offset; 0 turns drift
	// detection off.
	DriftInterval time.Duration

	// DeploymentID (DIRSYNC_DEPLOYMENT_ID) names this dirsync deployment in
	// the ownership marker every managed remote account carries
	// (docs/ownership.md); give each deployment that may share an Entra
	// tenant with another its own. 1–64 characters.
	DeploymentID string

	// RedisDB (DIRSYNC_REDIS_DB) is the Redis logical database of this
	// deployment, overriding the one in RedisURL; -1 keeps the URL's. It is
	// the deployment's namespace: asynq queues and task ids, throttle budgets
	// and pub/sub channels are all kept apart by it, so two deployments (or
	// a restored copy) sharing one Redis never run, swallow or see each
	// other's work. asynq has no key prefix, hence a database.
	RedisDB int

	// MetricsAddr (DIRSYNC_METRICS_ADDR) is where /metrics, /healthz and
	// /readyz are served apart from the API, so metrics need not be public;
	// empty = no metrics listener. The worker's only HTTP listener.
	MetricsAddr string
	// WorkerConcurrency (DIRSYNC_WORKER_CONCURRENCY) is how many tasks one
	// worker process runs at once (each holds a database connection while it
	// runs); 0 = the worker's default (48). `dirsync worker -concurrency`
	// overrides it.
	WorkerConcurrency int
	// GraphWritesInFlight (DIRSYNC_GRAPH_WRITES_IN_FLIGHT) bounds the Graph
	// writes one worker process has in flight to one app+tenant: the most the
	// slow-start window grows to; 0 = 64.
	GraphWritesInFlight int
	// GraphMaxHold (DIRSYNC_GRAPH_MAX_HOLD) is the longest a task waits for an
	// app+tenant's budget (a 429 pause, the write bucket) while holding its
	// worker slot; past it the task goes back to the queue until the budget
	// has room, so one throttled tenant cannot occupy every slot. 0 = no bound.
	GraphMaxHold time.Duration

	// RelayStuckAfter (DIRSYNC_RELAY_STUCK_AFTER): the worker is not ready
	// when an outbox row has waited longer than this to be dispatched.
	RelayStuckAfter time.Duration
}

// Defaults returns the local-development defaults.
func Defaults() Config {
	return Config{
		DatabaseURL:            "postgres://postgres@127.0.0.1:5432/dirsync?sslmode=disable",
		RedisURL:               "redis://127.0.0.1:6379/0",
		RedisDB:                -1,
		DatabaseStatementCache: stmtcache.DefaultSize,
		Listen:                 "127.0.0.1:8080",
		SecretKeyID:            "k1",
		ComplexityLimit:        25000,
		MaxPageSize:            100,
		ShutdownTimeout:        15 * time.Second,
		RelayStuckAfter:        5 * time.Minute,
		GraphMaxHold:           5 * time.Second,
		DriftInterval:          15 * time.Minute,
		DeploymentID:           "dirsync",
		LogLevel:               slog.LevelInfo,
		LogFormat:              "text",
	}
}

// FromEnv overlays the environment on Defaults. Parse errors are collected, not
// fatal one by one.
func FromEnv() (Config, error) { return fromLookup(os.LookupEnv) }

func fromLookup(lookup func(string) (string, bool)) (Config, error) {
	c := Defaults()
	var errs []error
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok && v != "" {
			*dst = v
		}
	}
	boolean := func(name string, dst *bool) {
		if v, ok := lookup(name); ok && v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a boolean", name, v))
				return
			}
			*dst = b
		}
	}
	integer := func(name string, dst *int) {
		if v, ok := lookup(name); ok && v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not an integer", name, v))
				return
			}
			*dst = n
		}
	}
	str("DIRSYNC_DATABASE_URL", &c.DatabaseURL)
	str("DIRSYNC_REDIS_URL", &c.RedisURL)
	str("DIRSYNC_LISTEN", &c.Listen)
	str("DIRSYNC_SECRET_KEY_ID", &c.SecretKeyID)
	str("DIRSYNC_LOG_FORMAT", &c.LogFormat)
	str("DIRSYNC_METRICS_ADDR", &c.MetricsAddr)
	boolean("DIRSYNC_PLAYGROUND", &c.Playground)
	boolean("DIRSYNC_INTROSPECTION", &c.Introspection)
	boolean("DIRSYNC_ALLOW_CUSTOM_GRAPH_URLS", &c.AllowCustomGraphURLs)
	boolean("DIRSYNC_ALLOW_INSECURE_GRAPH_URLS", &c.AllowInsecureGraphURLs)
	duration := func(name string, dst *time.Duration) {
		if v, ok := lookup(name); ok && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a duration (e.g. 30s)", name, v))
				return
			}
			*dst = d
		}
	}
	duration("DIRSYNC_HTTP_READ_HEADER_TIMEOUT", &c.HTTPReadHeaderTimeout)
	duration("DIRSYNC_HTTP_READ_TIMEOUT", &c.HTTPReadTimeout)
	duration("DIRSYNC_HTTP_WRITE_TIMEOUT", &c.HTTPWriteTimeout)
	duration("DIRSYNC_HTTP_IDLE_TIMEOUT", &c.HTTPIdleTimeout)
	integer("DIRSYNC_HTTP_MAX_HEADER_BYTES", &c.HTTPMaxHeaderBytes)
	integer("DIRSYNC_COMPLEXITY_LIMIT", &c.ComplexityLimit)
	integer("DIRSYNC_MAX_PAGE_SIZE", &c.MaxPageSize)
	integer("DIRSYNC_REDIS_DB", &c.RedisDB)
	integer("DIRSYNC_ARGON2_MEMORY_KIB", &c.Argon2MemoryKiB)
	integer("DIRSYNC_ARGON2_ITERATIONS", &c.Argon2Iterations)
	integer("DIRSYNC_ARGON2_PARALLELISM", &c.Argon2Parallelism)
	integer("DIRSYNC_WORKER_CONCURRENCY", &c.WorkerConcurrency)
	integer("DIRSYNC_GRAPH_WRITES_IN_FLIGHT", &c.GraphWritesInFlight)
	integer("DIRSYNC_DB_STATEMENT_CACHE", &c.DatabaseStatementCache)
	if v, ok := lookup("DIRSYNC_SECRET_KEY"); ok && v != "" {
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			errs = append(errs, errors.New("DIRSYNC_SECRET_KEY: not valid base64"))
		}
		c.SecretKey = k
	}
	if v, ok := lookup("DIRSYNC_SECRET_KEYS"); ok && v != "" {
		keys, err := parseSecretKeys(v)
		if err != nil {
			errs = append(errs, err)
		}
		c.SecretKeys = keys
	}
	if v, ok := lookup("DIRSYNC_ALLOWED_ORIGINS"); ok && v != "" {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	if v, ok := lookup("DIRSYNC_SHUTDOWN_TIMEOUT"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("DIRSYNC_SHUTDOWN_TIMEOUT: %q is not a duration", v))
		}
		c.ShutdownTimeout = d
	}
	if v, ok := lookup("DIRSYNC_RELAY_STUCK_AFTER"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("DIRSYNC_RELAY_STUCK_AFTER: %q is not a positive duration", v))
		}
		c.RelayStuckAfter = d
	}
	if v, ok := lookup("DIRSYNC_GRAPH_MAX_HOLD"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("DIRSYNC_GRAPH_MAX_HOLD: %q is not a duration", v))
		}
		c.GraphMaxHold = d
	}
	if v, ok := lookup("DIRSYNC_SWEEP_AFTER"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("DIRSYNC_SWEEP_AFTER: %q is not a duration", v))
		}
		c.SweepAfter = d
	}
	if v, ok := lookup("DIRSYNC_DEPLOYMENT_ID"); ok && v != "" {
		if len(v) > 64 {
			errs = append(errs, fmt.Errorf("DIRSYNC_DEPLOYMENT_ID: longer than 64 characters"))
		}
		c.DeploymentID = v
	}
	if v, ok := lookup("DIRSYNC_DRIFT_INTERVAL"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 0 && d < time.Second {
			errs = append(errs, fmt.Errorf("DIRSYNC_DRIFT_INTERVAL: %q is not 0 or a duration of at least 1s", v))
		}
		c.DriftInterval = d
	}
	if v, ok := lookup("DIRSYNC_LOG_LEVEL"); ok && v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("DIRSYNC_LOG_LEVEL: %q is not one of debug, info, warn, error", v))
		}
	}
	return c, errors.Join(errs...)
}

// Validate reports every problem of c. requireSecretKey is true for commands that
// seal or open secrets outside dev (dev supplies its own key).
func (c Config) Validate(requireSecretKey bool) error {
	var errs []error
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		errs = append(errs, errors.New("DIRSYNC_DATABASE_URL: want postgres://user@host:port/db?sslmode=..."))
	}
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		errs = append(errs, errors.New("DIRSYNC_REDIS_URL: want redis://host:port/db"))
	}
	if c.RedisDB < -1 {
		errs = append(errs, errors.New("DIRSYNC_REDIS_DB: must be a database number (0, 1, …)"))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("DIRSYNC_LISTEN: empty"))
	}
	if c.WorkerConcurrency < 0 || c.WorkerConcurrency > 1000 {
		errs = append(errs, errors.New("DIRSYNC_WORKER_CONCURRENCY: must be between 0 (default) and 1000"))
	}
	if c.DatabaseStatementCache < 0 || c.DatabaseStatementCache > 10000 {
		errs = append(errs, errors.New("DIRSYNC_DB_STATEMENT_CACHE: must be between 0 (no cache) and 10000"))
	}
	if c.GraphWritesInFlight < 0 || c.GraphWritesInFlight > 1000 {
		errs = append(errs, errors.New("DIRSYNC_GRAPH_WRITES_IN_FLIGHT: must be between 0 (default) and 1000"))
	}
	if requireSecretKey && len(c.SecretKey) == 0 && len(c.SecretKeys) == 0 {
		errs = append(errs, errors.New("DIRSYNC_SECRET_KEY: required (32 random bytes, base64; e.g. `openssl rand -base64 32`), or DIRSYNC_SECRET_KEYS=id:base64,…"))
	}
	if _, _, err := c.SealingKeys(); err != nil {
		errs = append(errs, err)
	}
	if len(c.SecretKey) != 0 && len(c.SecretKey) != 32 {
		errs = append(errs, fmt.Errorf("DIRSYNC_SECRET_KEY: decodes to %d bytes, want 32", len(c.SecretKey)))
	}
	if c.ComplexityLimit <= 0 {
		errs = append(errs, errors.New("DIRSYNC_COMPLEXITY_LIMIT: must be positive"))
	}
	if c.MaxPageSize <= 0 || c.MaxPageSize > 1000 {
		errs = append(errs, errors.New("DIRSYNC_MAX_PAGE_SIZE: must be 1..1000"))
	}
	if c.HTTPMaxHeaderBytes < 0 || c.HTTPMaxHeaderBytes > 1<<20 {
		errs = append(errs, errors.New("DIRSYNC_HTTP_MAX_HEADER_BYTES: must be 0 (default) .. 1048576"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, errors.New("DIRSYNC_LOG_FORMAT: text or json"))
	}
	return errors.Join(errs...)
}

// RedisConnURL is RedisURL with RedisDB applied: what every Redis client of
// the process (API and worker alike) connects with, so they share one
// namespace.
func (c Config) RedisConnURL() string {
	if c.RedisDB < 0 {
		return c.RedisURL
	}
	u, err := url.Parse(c.RedisURL)
	if err != nil {
		return c.RedisURL // Validate reports it
	}
	u.Path = "/" + strconv.Itoa(c.RedisDB)
	return u.String()
}

// RedisNamespace is the Redis database the process works in (RedisDB, else
// the URL's, else 0).
func (c Config) RedisNamespace() int {
	if c.RedisDB >= 0 {
		return c.RedisDB
	}
	u, err := url.Parse(c.RedisURL)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.Trim(u.Path, "/"))
	if err != nil {
		return 0
	}
	return n
}

// Logger builds the process logger from LogLevel and LogFormat.
func (c Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	// logctx adds the request, job and integration ids a context carries.
	if c.LogFormat == "json" {
		return slog.New(logctx.NewHandler(slog.NewJSONHandler(os.Stderr, opts)))
	}
	return slog.New(logctx.NewHandler(slog.NewTextHandler(os.Stderr, opts)))
}

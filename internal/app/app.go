// Package app opens what every dirsync command shares — PostgreSQL (database/sql
// and ent), Redis, the logger — from a config.Config, and builds the HTTP server.
// cmd/dirsync only parses flags and calls into here.
package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/hibiken/asynq"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/dirsync/dirsync/ent"
	_ "github.com/dirsync/dirsync/ent/runtime" // registers schema hooks and privacy policies
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/metrics"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/passwords"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/queueui"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/server"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/throttle"
)

// App holds the process-wide connections.
type App struct {
	Cfg   config.Config
	Log   *slog.Logger
	DB    *sql.DB
	Ent   *ent.Client
	Redis *redis.Client
	// Keyring seals client secrets and queued passwords; nil without a secret key.
	Keyring *secrets.Keyring
	// Budgets is the Graph throttle budget shared by every process (Redis).
	Budgets *throttle.Budgets
	// Tenants builds Graph clients for integrations; nil without a Keyring.
	Tenants *tenant.Connector
	// Hub fans live updates out to this process's subscribers; RunHub drives it.
	Hub *pubsub.Hub
	// Publisher publishes job and event updates for every API process.
	Publisher *pubsub.Publisher
	// Passwords runs the password lifecycle and the user portal.
	Passwords *passwords.Service
	// Metrics is this process's Prometheus registry (DIRSYNC_METRICS_ADDR).
	Metrics *metrics.Metrics

	closers []func() error

	queues *queueui.Handler // made by HTTPServer, closed by Close
}

// poolSize is the default PostgreSQL pool; NewWorker grows it with the worker's
// concurrency.
const poolSize = 50

// PubSubPrefix namespaces dirsync's pub/sub channels in Redis database 0.
const PubSubPrefix = "dirsync:"

// PubSubPrefixFor is the channel prefix of a deployment in Redis database db.
// Redis pub/sub ignores databases (a PUBLISH reaches subscribers of every
// database), so the database number goes into the channel names: two
// deployments on one Redis never see each other's live updates, not even a
// restored copy whose organisation ids are the same.
func PubSubPrefixFor(db int) string {
	if db == 0 {
		return PubSubPrefix
	}
	return PubSubPrefix + strconv.Itoa(db) + ":"
}

// Open connects to PostgreSQL and Redis. It does not migrate.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	db, err := stmtcache.Open(cfg.DatabaseURL, cfg.DatabaseStatementCache)
	if err != nil {
		return nil, fmt.Errorf("app: database: %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	// A reconcile holds one connection for its whole run (its advisory lock and
	// transaction span the Graph calls), so the pool must exceed the worker's
	// concurrency, leaving room for the relay and, in dev, the API.
	db.SetMaxOpenConns(poolSize)
	// Keep what the pool opened: database/sql keeps only 2 idle connections
	// by default, so under load every released connection beyond those was
	// closed and the next query forked a new PostgreSQL backend.
	db.SetMaxIdleConns(poolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("app: database %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	ropts, err := redis.ParseURL(cfg.RedisConnURL())
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("app: redis URL: %w", err)
	}
	// Without it go-redis ignores context deadlines, and a hung Redis would hold
	// publishers far past their timeout.
	ropts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(ropts)
	client := ent.NewClient(ent.Driver(entsql.OpenDB("postgres", db)))
	a := &App{Cfg: cfg, Log: log, DB: db, Ent: client, Redis: rdb, Metrics: metrics.New()}
	if err := a.wire(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// wire builds the components that only need the connections.
func (a *App) wire() error {
	var err error
	if a.Budgets, err = throttle.New(throttle.Config{Redis: a.Redis, Logger: a.Log, Observer: a.Metrics.Throttle(),
		MaxInFlight: a.Cfg.GraphWritesInFlight, MaxHold: a.Cfg.GraphMaxHold}); err != nil {
		return err
	}
	current, keys, err := a.Cfg.SealingKeys()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		a.Keyring, err = secrets.NewKeyring(current, keys)
		if err != nil {
			return err
		}
		a.Tenants, err = tenant.New(tenant.Config{
			Keyring: a.Keyring, Budgets: a.Budgets, AllowCustomURLs: a.Cfg.AllowCustomGraphURLs,
			AllowInsecureURLs: a.Cfg.AllowInsecureGraphURLs, Logger: a.Log,
			Observer: func(integrationID string) msgraph.Observer { return a.Metrics.Graph(integrationID) },
		})
		if err != nil {
			return err
		}
	}
	prefix := PubSubPrefixFor(a.Cfg.RedisNamespace())
	a.Hub = pubsub.NewHub(pubsub.HubConfig{Client: a.Redis, Prefix: prefix, Logger: a.Log})
	a.Publisher = pubsub.NewPublisher(a.Redis, prefix)
	return a.wirePasswords()
}

// Close releases the connections.
func (a *App) Close() {
	for _, c := range a.closers {
		_ = c()
	}
	if a.queues != nil {
		a.queues.Close()
	}
	_ = a.Redis.Close()
	_ = a.Ent.Close()
}

// Checks are the readiness probes: PostgreSQL and Redis reachable, and the
// database migrated to this binary's version.
func (a *App) Checks() []server.Check {
	return []server.Check{
		{Name: "postgres", Ping: a.DB.PingContext},
		{Name: "redis", Ping: func(ctx context.Context) error { return a.Redis.Ping(ctx).Err() }},
		{Name: "migrations", ShowError: true, Ping: func(ctx context.Context) error { return dbmigrate.Check(ctx, a.DB) }},
	}
}

// RelayCheck is the worker's extra readiness probe: an outbox row waiting
// longer than DIRSYNC_RELAY_STUCK_AFTER means no relay is dispatching (or it
// cannot reach Redis), so jobs stay QUEUED.
func (a *App) RelayCheck() server.Check {
	return server.Check{Name: "relay", ShowError: true, Ping: func(ctx context.Context) error {
		var age float64
		err := a.DB.QueryRowContext(ctx, `SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)
			FROM outbox WHERE dispatched_at IS NULL`).Scan(&age)
		if err != nil {
			return err
		}
		if stuck := time.Duration(age * float64(time.Second)); stuck > a.Cfg.RelayStuckAfter {
			return fmt.Errorf("oldest undispatched outbox row is %s old (limit %s)",
				stuck.Round(time.Second), a.Cfg.RelayStuckAfter)
		}
		return nil
	}}
}

// ServeMetrics serves /metrics, /healthz and /readyz (with checks) on
// DIRSYNC_METRICS_ADDR until ctx ends; without the setting it only waits.
func (a *App) ServeMetrics(ctx context.Context, checks []server.Check) error {
	if a.Cfg.MetricsAddr == "" {
		<-ctx.Done()
		return nil
	}
	return server.ServeOps(ctx, a.Cfg.MetricsAddr, server.Ops(a.Metrics, checks, a.Log), a.Log)
}

// HTTPServer builds the API server from the config.
func (a *App) HTTPServer() (*server.Server, error) {
	gql := api.NewHandler(api.Config{
		Introspection:   a.Cfg.Introspection,
		ComplexityLimit: a.Cfg.ComplexityLimit,
		MaxPageSize:     a.Cfg.MaxPageSize,
		AllowedOrigins:  a.Cfg.AllowedOrigins,
		Deps:            graph.Deps{Tenants: a.Tenants, Hub: a.Hub, Passwords: a.Passwords, Publisher: a.Publisher},
		Metrics:         a.Metrics,
	}, a.Ent, a.Log)
	redisOpt, err := asynq.ParseRedisURI(a.Cfg.RedisConnURL())
	if err != nil {
		return nil, fmt.Errorf("app: redis URL: %w", err)
	}
	if a.queues == nil {
		a.queues = queueui.New(redisOpt, a.Ent, a.Log)
	}
	return server.New(server.Config{
		Queues:          a.queues,
		Addr:            a.Cfg.Listen,
		GraphQL:         gql,
		Routes:          api.Routes(a.Ent, a.Log),
		Playground:      a.Cfg.Playground,
		Checks:          a.Checks(),
		ShutdownTimeout: a.Cfg.ShutdownTimeout,
		Logger:          a.Log,
		Limits: server.Limits{
			ReadHeaderTimeout: a.Cfg.HTTPReadHeaderTimeout,
			ReadTimeout:       a.Cfg.HTTPReadTimeout,
			WriteTimeout:      a.Cfg.HTTPWriteTimeout,
			IdleTimeout:       a.Cfg.HTTPIdleTimeout,
			MaxHeaderBytes:    a.Cfg.HTTPMaxHeaderBytes,
		},
		Metrics: a.Metrics,
	})
}

// EnsureDatabase creates the database named in databaseURL when it does not exist
// (dev on a fresh machine), connecting to the server's "postgres" database.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return fmt.Errorf("app: database URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return errors.New("app: database URL names no database")
	}
	admin := *u
	admin.Path = "/postgres"
	db, err := sql.Open("postgres", admin.String())
	if err != nil {
		return err
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("app: checking database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "42P04" { // created concurrently
			return nil
		}
		return fmt.Errorf("app: creating database %q: %w", name, err)
	}
	return nil
}

// redactURL drops the password from a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// ServeAPI runs the live-update hub and the HTTP server until ctx ends.
func (a *App) ServeAPI(ctx context.Context) error {
	srv, err := a.HTTPServer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hubDone := make(chan error, 1)
	go func() { hubDone <- a.Hub.Run(ctx) }()
	metricsDone := make(chan error, 1)
	go func() {
		err := a.ServeMetrics(ctx, a.Checks())
		if err != nil {
			cancel() // an unusable metrics address stops the process, as the API's would
		}
		metricsDone <- err
	}()
	err = srv.ListenAndServe(ctx)
	cancel()
	if herr := <-hubDone; err == nil && herr != nil && !errors.Is(herr, context.Canceled) {
		err = herr
	}
	if merr := <-metricsDone; err == nil && merr != nil {
		err = merr
	}
	return err
}

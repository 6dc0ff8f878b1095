package app

import (
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/worker"
)

// WorkerOptions tune the worker runtime; zero values take internal/worker's
// defaults.
type WorkerOptions struct {
	Concurrency int
	NoRelay     bool
	// Tune, when set, adjusts the final config (tests, benchmarks).
	Tune func(*worker.Config)
}

// NewWorker builds the asynq server + outbox relay around the reconcile
// handler (Reconciler), on the app's PostgreSQL and Redis.
func (a *App) NewWorker(opts WorkerOptions) (*worker.Worker, error) {
	h, retryAfter, err := a.Reconciler()
	if err != nil {
		return nil, err
	}
	return a.NewWorkerWith(h, retryAfter, opts)
}

// NewWorkerWith is NewWorker with another handler.
func (a *App) NewWorkerWith(h worker.Handler, retryAfter func(error) time.Duration, opts WorkerOptions) (*worker.Worker, error) {
	redisOpt, err := asynq.ParseRedisURI(a.Cfg.RedisConnURL())
	if err != nil {
		return nil, fmt.Errorf("app: redis URL for the worker: %w", err)
	}
	cfg := worker.Config{
		Redis:           redisOpt,
		DB:              a.DB,
		DatabaseURL:     a.Cfg.DatabaseURL,
		Handler:         h,
		Tasks:           a.tasks(),
		RetryAfter:      retryAfter,
		Concurrency:     opts.Concurrency,
		NoRelay:         opts.NoRelay,
		ShutdownTimeout: a.Cfg.ShutdownTimeout,
		SweepAfter:      a.Cfg.SweepAfter,
		Announcer:       jobs.NewAnnouncer(a.Ent, a.Publisher, a.Log),
		Logger:          a.Log,
	}
	if a.Tenants != nil {
		if cfg.GroupHandler, err = a.GroupReconciler(); err != nil {
			return nil, err
		}
	}
	if err := a.passwordTasks(&cfg); err != nil {
		return nil, err
	}
	if opts.Tune != nil {
		opts.Tune(&cfg)
	}
	// Each running reconcile holds a connection for its whole run (Graph calls
	// and throttle waits included): keep room above the concurrency for the
	// relay and, in dev, the API.
	if c := cfg.Concurrency; c+10 > poolSize {
		a.DB.SetMaxOpenConns(c + 10)
	}
	return worker.New(cfg)
}

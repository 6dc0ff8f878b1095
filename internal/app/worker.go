package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/metrics"
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
	a.registerWorkerMetrics(redisOpt)
	if opts.Concurrency <= 0 {
		opts.Concurrency = a.Cfg.WorkerConcurrency
	}
	cfg := worker.Config{
		Redis:           redisOpt,
		DB:              a.DB,
		DatabaseURL:     a.Cfg.DatabaseURL,
		Handler:         a.measured(h),
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
	if err := a.driftTasks(&cfg); err != nil {
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
		a.DB.SetMaxIdleConns(c + 10)
	}
	return worker.New(cfg)
}

// measured counts and times every task attempt.
func (a *App) measured(h worker.Handler) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, t jobs.ReconcileUser, final bool) error {
		start := time.Now()
		err := h.Handle(ctx, t, final)
		a.Metrics.Task(jobs.KindReconcileUser, err, time.Since(start))
		return err
	})
}

// registerWorkerMetrics adds the job/outbox (PostgreSQL) and asynq queue
// (Redis) collectors once: they describe shared state, so only worker
// processes (and dev) export them.
func (a *App) registerWorkerMetrics(redisOpt asynq.RedisConnOpt) {
	if err := a.Metrics.Register(metrics.NewDBCollector(a.DB)); err != nil {
		return // already registered by an earlier NewWorker
	}
	qc, closeQC := metrics.NewQueueCollector(redisOpt)
	if err := a.Metrics.Register(qc); err != nil {
		_ = closeQC()
		return
	}
	a.closers = append(a.closers, closeQC)
}

// RunWorker runs w and, on DIRSYNC_METRICS_ADDR, its metrics and probes; the
// worker's readiness includes the relay when this process relays.
func (a *App) RunWorker(ctx context.Context, w *worker.Worker, relays bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	checks := a.Checks()
	if relays {
		checks = append(checks, a.RelayCheck())
	}
	metricsDone := make(chan error, 1)
	go func() {
		err := a.ServeMetrics(ctx, checks)
		if err != nil {
			cancel()
		}
		metricsDone <- err
	}()
	err := w.Run(ctx)
	cancel()
	if merr := <-metricsDone; err == nil && merr != nil && !errors.Is(merr, context.Canceled) {
		err = merr
	}
	return err
}

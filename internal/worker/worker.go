// Package worker is dirsync's background runtime: the asynq server that runs
// reconcile tasks and the outbox relay that feeds it (DESIGN.md "One binary, one
// direction of flow"). `dirsync worker` runs it alone; `dirsync dev` runs it next to
// the API in one process.
//
// The reconcile logic itself is a Handler (internal/provision); this package only
// decodes typed payloads, tells the handler whether an attempt is the last one, and
// decides when a failed task runs again: after the Retry-After Graph asked for when
// the error carries one (the tenant is paused as a whole, so retrying earlier only
// buys another 429), otherwise after an exponential, jittered, capped backoff.
package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/logctx"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/sweeper"
)

// Handler converges one (user, integration). It returns nil when the item is
// finished (success, or a permanent failure it recorded) and an error to have
// the task retried; final is true on the last attempt, when the handler records
// the failure before returning it.
type Handler interface {
	Handle(ctx context.Context, t jobs.ReconcileUser, final bool) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, t jobs.ReconcileUser, final bool) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, t jobs.ReconcileUser, final bool) error {
	return f(ctx, t, final)
}

// GroupHandler converges one (user group, integration): the remote security
// group (G1–G4). Same contract as Handler.
type GroupHandler interface {
	Handle(ctx context.Context, t jobs.ReconcileGroup, final bool) error
}

// TaskFunc runs a task of another kind than reconcile (e.g. an import): the
// raw payload, and whether this is the last attempt. Same contract as Handler.
type TaskFunc func(ctx context.Context, payload []byte, final bool) error

// PushHandler writes one password to one integration (jobs.PushPassword) and
// erases the sealed password from the item's outbox rows once the push is over
// (W2); final as for Handler.
type PushHandler interface {
	HandlePush(ctx context.Context, t jobs.PushPassword, final bool) error
}

// Defaults.
const (
	DefaultQueue = "dirsync"
	// DefaultConcurrency is enough parallel reconciles to use a fresh
	// tenant's whole write bucket (two Graph calls of 20–40 ms each per user).
	DefaultConcurrency = 48
	DefaultMaxRetry    = 25
	// DefaultRetention keeps finished tasks (and so their ids) long enough that
	// an outbox row relayed again — after a relay crashed between enqueue and
	// commit — is refused as a duplicate instead of running twice.
	DefaultRetention = 24 * time.Hour
	DefaultTimeout   = 10 * time.Minute
)

// Config configures a Worker.
type Config struct {
	// Redis is where asynq keeps its queues.
	Redis asynq.RedisConnOpt
	// DB holds the outbox; DatabaseURL opens the relay's LISTEN connection
	// (empty: poll only).
	DB          *sql.DB
	DatabaseURL string
	Handler     Handler
	// GroupHandler runs reconcile:group tasks; nil: they are not served.
	GroupHandler GroupHandler
	// Tasks routes further task kinds (jobs.KindImportUsers…) to their handlers.
	Tasks map[string]TaskFunc
	// RetryAfter extracts the Retry-After Graph sent from a Handle error (0 if
	// none); provision.RetryAfter. Nil: backoff only.
	RetryAfter func(error) time.Duration

	Concurrency int    // parallel tasks in this process; default 48
	Queue       string // asynq queue; default "dirsync"
	MaxRetry    int    // retries after the first attempt; default 25
	// RetryBase and RetryMax bound the backoff: attempt n waits a random time
	// in [d/2, d], d = min(RetryBase·2ⁿ, RetryMax). Defaults 1 s and 5 min.
	RetryBase, RetryMax time.Duration
	// Retention of finished tasks; default 24 h (see DefaultRetention).
	Retention time.Duration
	// Timeout bounds one attempt; default 10 min.
	Timeout time.Duration
	// TaskCheckInterval is how often an idle worker polls its queue (asynq's
	// default, 1 s, would add up to a second to every change); default 100 ms.
	TaskCheckInterval time.Duration
	// DelayedTaskCheckInterval is how often due retries move back to the
	// queue (asynq's default is 5 s); default 1 s.
	DelayedTaskCheckInterval time.Duration
	// ShutdownTimeout lets running tasks finish on shutdown before they are
	// pushed back to the queue; default 10 s.
	ShutdownTimeout time.Duration
	// RelayPoll is the relay's fallback poll interval (outbox default 2 s).
	RelayPoll time.Duration
	// NoRelay runs the asynq server only (e.g. a worker fleet where other
	// processes relay). Relays are safe to run in parallel; this is only a
	// choice of where the load goes.
	NoRelay bool
	// Announcer publishes each new job as QUEUED when the relay first sends
	// its rows (before any of them can run), and jobs the sweeper settled;
	// nil: neither.
	Announcer *jobs.Announcer
	// SweepAfter is the sweeper's deadline (internal/sweeper): PENDING items
	// older than this whose task is gone are sent again. Default 10 min.
	SweepAfter time.Duration
	// SweepEvery is the pause between sweeps; default 1 min.
	SweepEvery time.Duration
	// NoSweep runs no sweeper in this process (sweeps are safe in several
	// workers: one at a time runs, under an advisory lock).
	NoSweep bool
	Logger  *slog.Logger

	// Push runs password pushes (jobs.KindPushPassword); nil: not served.
	Push PushHandler
	// PasswordSweep runs the periodic password sweep (X5, X6) every
	// PasswordSweepEvery (default 1 min); nil: no sweep. Every worker process
	// schedules it, and the task id names the period, so it runs once per
	// period across replicas.
	PasswordSweep      func(ctx context.Context) error
	PasswordSweepEvery time.Duration

	// Background loops run next to the server until ctx ends, with a client
	// on the worker's Redis and its queue (e.g. the drift scheduler, which
	// enqueues one uniquely named round per integration and period).
	Background []func(ctx context.Context, client *asynq.Client, queue string)
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.TaskCheckInterval <= 0 {
		c.TaskCheckInterval = 100 * time.Millisecond
	}
	if c.DelayedTaskCheckInterval <= 0 {
		c.DelayedTaskCheckInterval = time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PasswordSweepEvery <= 0 {
		c.PasswordSweepEvery = time.Minute
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("worker: Redis required"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("worker: Handler required"))
	}
	if c.DB == nil && !c.NoRelay {
		errs = append(errs, errors.New("worker: DB required for the outbox relay"))
	}
	if c.RetryBase > c.RetryMax {
		errs = append(errs, errors.New("worker: RetryBase exceeds RetryMax"))
	}
	return errors.Join(errs...)
}

// Worker runs the asynq server and the outbox relay.
type Worker struct {
	cfg Config
}

// New validates cfg.
func New(cfg Config) (*Worker, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Logger = cfg.Logger.With("component", "worker")
	return &Worker{cfg: cfg}, nil
}

// TaskOptions are the options every relayed task gets: queue, retries,
// retention (task id = outbox id stays taken), attempt timeout.
func (w *Worker) TaskOptions() []asynq.Option {
	return []asynq.Option{
		asynq.Queue(w.cfg.Queue),
		asynq.MaxRetry(w.cfg.MaxRetry),
		asynq.Retention(w.cfg.Retention),
		asynq.Timeout(w.cfg.Timeout),
	}
}

// Mux returns the task routing: one typed handler per task kind.
func (w *Worker) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(jobs.KindReconcileUser, w.reconcileUser)
	if w.cfg.GroupHandler != nil {
		mux.HandleFunc(jobs.KindReconcileGroup, w.reconcileGroup)
	}
	for kind, f := range w.cfg.Tasks {
		mux.HandleFunc(kind, func(ctx context.Context, t *asynq.Task) error {
			return f(ctx, t.Payload(), IsFinalAttempt(ctx))
		})
	}
	if w.cfg.Push != nil {
		mux.HandleFunc(jobs.KindPushPassword, w.pushPassword)
	}
	if w.cfg.PasswordSweep != nil {
		mux.HandleFunc(jobs.KindSweepPasswords, func(ctx context.Context, _ *asynq.Task) error { return w.cfg.PasswordSweep(ctx) })
	}
	return mux
}

func (w *Worker) pushPassword(ctx context.Context, t *asynq.Task) error {
	var p jobs.PushPassword
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("worker: %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return w.cfg.Push.HandlePush(ctx, p, IsFinalAttempt(ctx))
}

// scheduleSweeps enqueues the sweep once per period until ctx ends. The task
// id is the period's number, so replicas enqueueing the same period collide
// (asynq.ErrTaskIDConflict) and one sweep runs.
func (w *Worker) scheduleSweeps(ctx context.Context, client *asynq.Client) {
	every := w.cfg.PasswordSweepEvery
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		period := time.Now().UnixNano() / int64(every)
		_, err := client.EnqueueContext(ctx, asynq.NewTask(jobs.KindSweepPasswords, nil),
			asynq.TaskID(fmt.Sprintf("sweep-passwords-%d-%d", int64(every), period)), asynq.Queue(w.cfg.Queue),
			asynq.MaxRetry(0), asynq.Retention(2*every))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && ctx.Err() == nil {
			w.cfg.Logger.Warn("worker: scheduling the password sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *Worker) reconcileUser(ctx context.Context, t *asynq.Task) error {
	var p jobs.ReconcileUser
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		// A payload we cannot read will not become readable: do not retry it.
		return fmt.Errorf("worker: %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return w.cfg.Handler.Handle(withIDs(ctx, p), p, IsFinalAttempt(ctx))
}

// withIDs puts the task's job and integration ids into ctx for every log line
// written while it runs (internal/logctx).
func withIDs(ctx context.Context, p jobs.ReconcileUser) context.Context {
	attrs := []slog.Attr{slog.String("integration", string(p.IntegrationID))}
	if p.JobID != "" {
		attrs = append(attrs, slog.String("job", string(p.JobID)))
	}
	if id, ok := asynq.GetTaskID(ctx); ok {
		attrs = append(attrs, slog.String("task", id))
	}
	return logctx.With(ctx, attrs...)
}

func (w *Worker) reconcileGroup(ctx context.Context, t *asynq.Task) error {
	var p jobs.ReconcileGroup
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("worker: %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return w.cfg.GroupHandler.Handle(ctx, p, IsFinalAttempt(ctx))
}

// IsFinalAttempt reports whether the running task will not be retried if it
// fails. Outside an asynq handler it is true.
func IsFinalAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	if !ok1 || !ok2 {
		return true
	}
	return n >= maxRetry
}

// RetryDelay is the asynq RetryDelayFunc: Graph's Retry-After when the error
// carries one (plus a little jitter, so a paused tenant's tasks do not all
// return in the same millisecond), otherwise exponential backoff with jitter.
func (w *Worker) RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	return retryDelay(n, err, w.cfg.RetryAfter, w.cfg.RetryBase, w.cfg.RetryMax)
}

func retryDelay(n int, err error, retryAfter func(error) time.Duration, base, maxDelay time.Duration) time.Duration {
	if retryAfter != nil {
		if ra := retryAfter(err); ra > 0 {
			// asynq schedules retries in whole seconds, rounding down: one more
			// second keeps the retry from coming before Graph's deadline.
			return ra + time.Second + time.Duration(rand.Int64N(int64(ra/10)+1))
		}
	}
	d := maxDelay
	if n < 30 {
		if e := base << uint(n); e > 0 && e < maxDelay {
			d = e
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// IsFailure tells asynq whether a failed attempt counts against MaxRetry. A
// throttled attempt (the error carries Graph's Retry-After) does not: being
// asked to wait says nothing about the item, and a long 429 period over a big
// bind must not turn into failed items. It is still retried after the wait.
func (w *Worker) IsFailure(err error) bool {
	return w.cfg.RetryAfter == nil || w.cfg.RetryAfter(err) <= 0
}

// Run serves until ctx ends, then shuts down gracefully: the relay stops, the
// server stops taking tasks and gives running ones ShutdownTimeout to finish
// before pushing them back to the queue.
func (w *Worker) Run(ctx context.Context) error {
	srv := asynq.NewServer(w.cfg.Redis, asynq.Config{
		Concurrency:              w.cfg.Concurrency,
		Queues:                   map[string]int{w.cfg.Queue: 1},
		RetryDelayFunc:           w.RetryDelay,
		IsFailure:                w.IsFailure,
		TaskCheckInterval:        w.cfg.TaskCheckInterval,
		DelayedTaskCheckInterval: w.cfg.DelayedTaskCheckInterval,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		Logger:                   slogAdapter{w.cfg.Logger.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			n, _ := asynq.GetRetryCount(ctx)
			var p jobs.ReconcileUser
			if json.Unmarshal(t.Payload(), &p) == nil {
				ctx = withIDs(ctx, p)
			}
			w.cfg.Logger.WarnContext(ctx, "task failed", "task", id, "kind", t.Type(), "attempt", n+1, "final", IsFinalAttempt(ctx), "err", err)
		}),
	})
	if err := srv.Start(w.Mux()); err != nil {
		return fmt.Errorf("worker: start asynq server: %w", err)
	}
	var relayDone chan error
	var client *asynq.Client
	if !w.cfg.NoRelay {
		client = asynq.NewClient(w.cfg.Redis)
		var announce func(context.Context, []outbox.Row)
		if w.cfg.Announcer != nil {
			announce = w.cfg.Announcer.Announce
		}
		relay, err := outbox.New(outbox.Config{
			DB: w.cfg.DB, DatabaseURL: w.cfg.DatabaseURL, Enqueuer: client,
			TaskOptions: w.TaskOptions(), Poll: w.cfg.RelayPoll, BeforeEnqueue: announce,
			Logger: w.cfg.Logger.With("component", "outbox"),
		})
		if err != nil {
			srv.Shutdown()
			_ = client.Close()
			return err
		}
		relayDone = make(chan error, 1)
		go func() { relayDone <- relay.Run(ctx) }()
	}
	pwSweepDone := make(chan struct{})
	if w.cfg.PasswordSweep != nil {
		sc := asynq.NewClient(w.cfg.Redis)
		go func() {
			defer close(pwSweepDone)
			defer sc.Close()
			w.scheduleSweeps(ctx, sc)
		}()
	} else {
		close(pwSweepDone)
	}
	bgDone := make(chan struct{})
	if len(w.cfg.Background) > 0 {
		bc := asynq.NewClient(w.cfg.Redis)
		var wg sync.WaitGroup
		for _, f := range w.cfg.Background {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f(ctx, bc, w.cfg.Queue)
			}()
		}
		go func() {
			wg.Wait()
			_ = bc.Close()
			close(bgDone)
		}()
	} else {
		close(bgDone)
	}
	sweepDone, serr := w.startSweeper(ctx)
	if serr != nil {
		w.cfg.Logger.Error("worker: no sweeper", "err", serr)
	}
	w.cfg.Logger.Info("worker started", "queue", w.cfg.Queue, "concurrency", w.cfg.Concurrency, "relay", !w.cfg.NoRelay,
		"sweeper", sweepDone != nil)
	<-ctx.Done()
	<-pwSweepDone
	<-bgDone
	var err error
	if relayDone != nil {
		err = <-relayDone
		_ = client.Close()
	}
	if sweepDone != nil {
		<-sweepDone
	}
	srv.Shutdown()
	w.cfg.Logger.Info("worker stopped")
	return err
}

// startSweeper runs the sweeper until ctx ends; the channel closes when it
// has stopped (nil: no sweeper).
func (w *Worker) startSweeper(ctx context.Context) (<-chan struct{}, error) {
	if w.cfg.NoSweep || w.cfg.DB == nil {
		return nil, nil
	}
	ins := asynq.NewInspector(w.cfg.Redis)
	cfg := sweeper.Config{DB: w.cfg.DB, Inspector: ins, Queue: w.cfg.Queue,
		After: w.cfg.SweepAfter, Every: w.cfg.SweepEvery, Logger: w.cfg.Logger.With("component", "sweeper")}
	if a := w.cfg.Announcer; a != nil {
		cfg.JobChanged = a.PublishJob
	}
	sw, err := sweeper.New(cfg)
	if err != nil {
		_ = ins.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ins.Close()
		_ = sw.Run(ctx)
	}()
	return done, nil
}

// slogAdapter lets asynq log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }

package worker_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/worker"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type call struct {
	task  jobs.ReconcileUser
	final bool
	at    time.Time
}

// recorder is a tiny Handler: it records calls and fails while fail says so.
type recorder struct {
	mu    sync.Mutex
	calls []call
	fail  func(n int, t jobs.ReconcileUser) error
}

func (r *recorder) Handle(_ context.Context, t jobs.ReconcileUser, final bool) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{t, final, time.Now()})
	n := len(r.calls)
	f := r.fail
	r.mu.Unlock()
	if f != nil {
		return f(n, t)
	}
	return nil
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

func startWorker(t *testing.T, cfg worker.Config) (stop func()) {
	t.Helper()
	cfg.Logger = quiet
	w, err := worker.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); require.NoError(t, <-done) }) }
	t.Cleanup(stop)
	return stop
}

func writeRow(t *testing.T, db *sql.DB, p jobs.ReconcileUser) int64 {
	t.Helper()
	b, err := json.Marshal(p)
	require.NoError(t, err)
	tx, err := db.Begin()
	require.NoError(t, err)
	var id int64
	require.NoError(t, tx.QueryRow(`INSERT INTO outbox (organization_id, kind, payload, created_at)
		VALUES ($1, $2, $3, now()) RETURNING id`, string(p.OrgID), jobs.KindReconcileUser, b).Scan(&id))
	_, err = tx.Exec(`SELECT pg_notify($1, '')`, outbox.Channel)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	return id
}

func TestOutboxRowReachesTheHandlerTyped(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	r := testredis.New(t)
	h := &recorder{}
	startWorker(t, worker.Config{Redis: asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}, DB: db, DatabaseURL: dsn,
		Handler: h, RelayPoll: time.Minute})

	want := jobs.ReconcileUser{OrgID: "OR1", IntegrationID: "IN1", UserID: "US1", JobID: "JB1", ItemID: "JI1"}
	time.Sleep(300 * time.Millisecond) // LISTEN up (otherwise the first poll, a minute away, would be needed)
	start := time.Now()
	writeRow(t, db, want)
	require.Eventually(t, func() bool { return len(h.snapshot()) == 1 }, 5*time.Second, 5*time.Millisecond)
	calls := h.snapshot()
	require.Equal(t, want, calls[0].task)
	require.False(t, calls[0].final, "first of 26 attempts")
	t.Logf("commit → handler: %s", calls[0].at.Sub(start))
	require.Less(t, calls[0].at.Sub(start), 2*time.Second)
}

func TestFailedAttemptsRetryAndTheLastOneIsFinal(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	r := testredis.New(t)
	boom := errors.New("transient")
	h := &recorder{fail: func(int, jobs.ReconcileUser) error { return boom }}
	startWorker(t, worker.Config{Redis: asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}, DB: db, DatabaseURL: dsn,
		Handler: h, MaxRetry: 2, RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		RelayPoll: 100 * time.Millisecond})
	writeRow(t, db, jobs.ReconcileUser{OrgID: "OR1", IntegrationID: "IN1", UserID: "US1"})
	// Retries become due after the delay and asynq's forwarder moves them every 5 s.
	require.Eventually(t, func() bool { return len(h.snapshot()) == 3 }, 30*time.Second, 20*time.Millisecond)
	calls := h.snapshot()
	require.Equal(t, []bool{false, false, true}, []bool{calls[0].final, calls[1].final, calls[2].final})
	time.Sleep(200 * time.Millisecond)
	require.Len(t, h.snapshot(), 3, "no attempt after the final one")
}

func TestRetryAfterFromTheHandlerPostponesTheRetry(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	r := testredis.New(t)
	throttled := errors.New("429")
	h := &recorder{fail: func(n int, _ jobs.ReconcileUser) error {
		if n == 1 {
			return throttled
		}
		return nil
	}}
	startWorker(t, worker.Config{Redis: asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}, DB: db, DatabaseURL: dsn,
		Handler: h, RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, RelayPoll: 100 * time.Millisecond,
		RetryAfter: func(err error) time.Duration {
			if errors.Is(err, throttled) {
				return 6 * time.Second
			}
			return 0
		}})
	writeRow(t, db, jobs.ReconcileUser{OrgID: "OR1", IntegrationID: "IN1", UserID: "US1"})
	require.Eventually(t, func() bool { return len(h.snapshot()) == 2 }, 30*time.Second, 20*time.Millisecond)
	calls := h.snapshot()
	gap := calls[1].at.Sub(calls[0].at)
	t.Logf("retry after a 6 s Retry-After came %s later (backoff alone: ≤ 20 ms + forwarder tick)", gap)
	require.GreaterOrEqual(t, gap, 6*time.Second)
}

func TestShutdownReturnsAndRequeuesUnfinishedWork(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	r := testredis.New(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}
	started := make(chan struct{}, 1)
	slow := worker.HandlerFunc(func(ctx context.Context, _ jobs.ReconcileUser, _ bool) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done() // a Graph call that does not finish in time
		return ctx.Err()
	})
	stop := startWorker(t, worker.Config{Redis: opt, DB: db, DatabaseURL: dsn, Handler: slow,
		ShutdownTimeout: 300 * time.Millisecond, RelayPoll: 100 * time.Millisecond})
	writeRow(t, db, jobs.ReconcileUser{OrgID: "OR1", IntegrationID: "IN1", UserID: "US1"})
	<-started
	t0 := time.Now()
	stop()
	require.Less(t, time.Since(t0), 5*time.Second)

	h := &recorder{}
	startWorker(t, worker.Config{Redis: opt, DB: db, DatabaseURL: dsn, Handler: h, RelayPoll: 100 * time.Millisecond})
	require.Eventually(t, func() bool { return len(h.snapshot()) == 1 }, 20*time.Second, 20*time.Millisecond,
		"the interrupted task runs again on the next worker")
}

func TestThrottledAttemptsDoNotUseUpRetries(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	r := testredis.New(t)
	throttled := errors.New("429")
	h := &recorder{fail: func(n int, _ jobs.ReconcileUser) error {
		if n <= 3 {
			return throttled
		}
		return nil
	}}
	startWorker(t, worker.Config{Redis: asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}, DB: db, DatabaseURL: dsn,
		Handler: h, MaxRetry: 1, RelayPoll: 100 * time.Millisecond,
		RetryAfter: func(err error) time.Duration {
			if errors.Is(err, throttled) {
				return time.Millisecond
			}
			return 0
		}})
	writeRow(t, db, jobs.ReconcileUser{OrgID: "OR1", IntegrationID: "IN1", UserID: "US1"})
	require.Eventually(t, func() bool { return len(h.snapshot()) == 4 }, 30*time.Second, 20*time.Millisecond,
		"three 429s and a success, with MaxRetry 1")
	for i, c := range h.snapshot() {
		require.False(t, c.final, "attempt %d: throttled attempts are not counted", i+1)
	}
}

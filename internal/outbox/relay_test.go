package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/worker/redisproc"
)

const queue = "outbox_test"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	db        *sql.DB
	dsn       string
	redis     asynq.RedisConnOpt
	client    *asynq.Client
	inspector *asynq.Inspector
}

func newEnv(t *testing.T, redisOpt asynq.RedisConnOpt) *env {
	t.Helper()
	dsn := testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	if redisOpt == nil {
		r := testredis.New(t)
		redisOpt = asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}
	}
	client := asynq.NewClient(redisOpt)
	ins := asynq.NewInspector(redisOpt)
	t.Cleanup(func() { _ = client.Close(); _ = ins.Close() })
	return &env{db: db, dsn: dsn, redis: redisOpt, client: client, inspector: ins}
}

func (e *env) relay(t *testing.T, enq outbox.Enqueuer, poll time.Duration, listen bool) *outbox.Relay {
	t.Helper()
	if enq == nil {
		enq = e.client
	}
	cfg := outbox.Config{DB: e.db, Enqueuer: enq, Poll: poll, Logger: quiet, BatchSize: 50,
		TaskOptions: []asynq.Option{asynq.Queue(queue), asynq.Retention(time.Hour)}}
	if listen {
		cfg.DatabaseURL = e.dsn
	}
	r, err := outbox.New(cfg)
	require.NoError(t, err)
	return r
}

// run starts r and stops it when the test ends.
func run(t *testing.T, r *outbox.Relay) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
}

// write inserts n rows and NOTIFYs in one transaction, committed or rolled back,
// as jobs.Start does; it returns the row ids.
func (e *env) write(t *testing.T, n int, commit bool) []int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	ids := make([]int64, n)
	for i := range ids {
		require.NoError(t, tx.QueryRowContext(ctx, `INSERT INTO outbox (organization_id, kind, payload, created_at)
			VALUES ('OR1', 'test:v1', $1, now()) RETURNING id`, []byte(fmt.Sprintf(`{"n":%d}`, i))).Scan(&ids[i]))
	}
	_, err = tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, outbox.Channel)
	require.NoError(t, err)
	if commit {
		require.NoError(t, tx.Commit())
	} else {
		require.NoError(t, tx.Rollback())
	}
	return ids
}

// taskID is the asynq task id of a row.
func (e *env) taskID(t *testing.T, rowID int64) string {
	t.Helper()
	var u uuid.UUID
	require.NoError(t, e.db.QueryRow(`SELECT task_uuid FROM outbox WHERE id = $1`, rowID).Scan(&u))
	return outbox.TaskID(u)
}

func (e *env) pending(t *testing.T) int {
	n, err := outbox.Pending(context.Background(), e.db)
	require.NoError(t, err)
	return n
}

func (e *env) queued(t *testing.T) int {
	info, err := e.inspector.GetQueueInfo(queue)
	if err != nil {
		return 0 // queue not created yet
	}
	return info.Size
}

// waitListening waits until the relay's LISTEN session is up, so a NOTIFY can
// be told apart from the poll.
func (e *env) waitListening(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := e.db.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query ILIKE 'LISTEN%'`).Scan(&n)
		return err == nil && n > 0
	}, 10*time.Second, 10*time.Millisecond, "relay never LISTENed")
}

func TestCommittedRowsAreRelayedAtCommitNotAtThePoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	run(t, e.relay(t, nil, time.Minute, true)) // the poll would take a minute
	e.waitListening(t)

	start := time.Now()
	ids := e.write(t, 3, true)
	require.Eventually(t, func() bool { return e.pending(t) == 0 }, 5*time.Second, 5*time.Millisecond)
	took := time.Since(start)
	require.Less(t, took, time.Second, "woken by NOTIFY, not by the one-minute poll")
	t.Logf("commit → dispatched in %s (poll interval 1m)", took)
	for _, id := range ids {
		info, err := e.inspector.GetTaskInfo(queue, e.taskID(t, id))
		require.NoError(t, err)
		require.Equal(t, "test:v1", info.Type)
	}
}

func TestRolledBackRowsAreNeverRelayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	r := e.relay(t, nil, time.Minute, true)
	run(t, r)
	e.waitListening(t)

	rolledBack := e.write(t, 5, false)
	committed := e.write(t, 1, true) // a later commit wakes the relay
	require.Eventually(t, func() bool { return e.queued(t) == 1 }, 5*time.Second, 5*time.Millisecond)
	n, err := r.Drain(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 1, e.queued(t))
	_, err = e.inspector.GetTaskInfo(queue, e.taskID(t, committed[0]))
	require.NoError(t, err)
	var left int
	require.NoError(t, e.db.QueryRow(`SELECT count(*) FROM outbox WHERE id = ANY($1)`, pq.Array(rolledBack)).Scan(&left))
	require.Zero(t, left)
}

func TestARowRelayedTwiceIsOneTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	r := e.relay(t, nil, time.Minute, false)
	ids := e.write(t, 3, true)
	n, err := r.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 3, n)

	// As if the relay had crashed after enqueueing but before its commit.
	_, err = e.db.Exec(`UPDATE outbox SET dispatched_at = NULL`)
	require.NoError(t, err)
	n, err = r.Drain(context.Background())
	require.NoError(t, err, "a task id conflict is success")
	require.Equal(t, 3, n)
	require.Zero(t, e.pending(t))
	require.Equal(t, 3, e.queued(t), "still one task per row")

	// Also once the first task has finished (retention keeps its id taken).
	srvCtx, stop := context.WithCancel(context.Background())
	defer stop()
	var ran atomic.Int32
	srv := asynq.NewServer(e.redis, asynq.Config{Queues: map[string]int{queue: 1}, Concurrency: 2,
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel,
		BaseContext: func() context.Context { return srvCtx }})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { ran.Add(1); return nil })))
	t.Cleanup(srv.Shutdown)
	require.Eventually(t, func() bool { return ran.Load() == 3 }, 10*time.Second, 10*time.Millisecond)
	_, err = e.db.Exec(`UPDATE outbox SET dispatched_at = NULL WHERE id = $1`, ids[0])
	require.NoError(t, err)
	_, err = r.Drain(context.Background())
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	require.EqualValues(t, 3, ran.Load(), "a finished task is not run again")
}

// countingEnqueuer counts what reaches asynq.
type countingEnqueuer struct {
	next               outbox.Enqueuer
	enqueued, conflict atomic.Int64
}

func (c *countingEnqueuer) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := c.next.EnqueueContext(ctx, task, opts...)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		c.conflict.Add(1)
	case err == nil:
		c.enqueued.Add(1)
	}
	return info, err
}

func TestParallelRelaysNeverClaimTheSameRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const rows, relays = 600, 4
	e.write(t, rows, true)
	enq := &countingEnqueuer{next: e.client}
	var wg sync.WaitGroup
	total := make([]int, relays)
	for i := range relays {
		r := e.relay(t, enq, time.Minute, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := r.Drain(context.Background())
			require.NoError(t, err)
			total[i] = n
		}()
	}
	wg.Wait()
	sum := 0
	for _, n := range total {
		sum += n
	}
	t.Logf("rows relayed per relay: %v", total)
	require.Equal(t, rows, sum)
	require.EqualValues(t, rows, enq.enqueued.Load())
	require.Zero(t, enq.conflict.Load(), "SKIP LOCKED: no row was enqueued by two relays")
	require.Zero(t, e.pending(t))
	require.Equal(t, rows, e.queued(t))
}

func TestRowsWaitWhileRedisIsDownAndGoOutWhenItReturns(t *testing.T) {
	t.Parallel()
	rs := redisproc.Start(t)
	e := newEnv(t, asynq.RedisClientOpt{Addr: rs.Addr, DialTimeout: 200 * time.Millisecond})
	run(t, e.relay(t, nil, 200*time.Millisecond, true))
	e.waitListening(t)

	rs.Stop()
	ids := e.write(t, 20, true)
	ids = append(ids, e.write(t, 20, true)...)
	time.Sleep(time.Second) // several failed passes
	require.Equal(t, 40, e.pending(t), "no row is lost or marked while Redis is down")

	rs.Restart()
	require.Eventually(t, func() bool { return e.pending(t) == 0 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 40, e.queued(t))
	for _, id := range ids {
		_, err := e.inspector.GetTaskInfo(queue, e.taskID(t, id))
		require.NoError(t, err)
	}
}

func TestPruneDropsOnlyOldDispatchedRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	r := e.relay(t, nil, time.Minute, false)
	e.write(t, 3, true)
	_, err := r.Drain(context.Background())
	require.NoError(t, err)
	_, err = e.db.Exec(`UPDATE outbox SET dispatched_at = now() - interval '8 days' WHERE id = (SELECT min(id) FROM outbox)`)
	require.NoError(t, err)
	e.write(t, 2, true) // pending
	n, err := r.Prune(context.Background(), 7*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var left int
	require.NoError(t, e.db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&left))
	require.Equal(t, 4, left, "recent dispatched and pending rows stay")
	require.Equal(t, 2, e.pending(t))
}

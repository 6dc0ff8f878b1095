package worker_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/worker"
)

// logRecorder keeps the WARN-and-above records of a logger, attributes flattened.
type logRecorder struct {
	mu    *sync.Mutex
	recs  *[]map[string]string
	attrs []slog.Attr
}

func newLogRecorder() logRecorder {
	return logRecorder{mu: &sync.Mutex{}, recs: &[]map[string]string{}}
}

func (r logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r logRecorder) WithGroup(string) slog.Handler                { return r }
func (r logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.attrs = append(append([]slog.Attr{}, r.attrs...), as...)
	return r
}

func (r logRecorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message, "level": rec.Level.String()}
	for _, a := range r.attrs {
		m[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	*r.recs = append(*r.recs, m)
	r.mu.Unlock()
	return nil
}

func (r logRecorder) with(msg string) []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, m := range *r.recs {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// outboxRows counts the outbox rows written for each item.
func (s *stack) outboxRows() map[pulid.ID]int {
	s.t.Helper()
	rows, err := s.db.Query(`SELECT job_item_id, count(*) FROM outbox GROUP BY job_item_id`)
	require.NoError(s.t, err)
	defer rows.Close()
	out := map[pulid.ID]int{}
	for rows.Next() {
		var id pulid.ID
		var n int
		require.NoError(s.t, rows.Scan(&id, &n))
		out[id] = n
	}
	return out
}

func (s *stack) waitJob(id pulid.ID, status string, timeout time.Duration) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		j, err := s.client.Job.Get(s.ctx, id)
		return err == nil && string(j.Status) == status
	}, timeout, 50*time.Millisecond, "job %s never %s", id, status)
}

// TestSweeperResendsLostWorkAndLeavesLiveWorkAlone: a job of six items whose
// tasks were lost — two deleted from Redis, four completed without settling
// their item (as after a database restore: the tasks ran against the lost
// timeline) — is completed by the sweeper, which logs a WARN per item with
// its job, item and integration; an item whose task is running past the
// deadline is not sent again. Two workers sweep; each lost item is sent again
// exactly once.
func TestSweeperResendsLostWorkAndLeavesLiveWorkAlone(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{sim: graphsim.Config{DisableThrottling: true}})
	ids := s.users(0, 7)
	lostJob := s.bind(ids[:6], 6)[0]

	// Relay the job's rows and let "another worker" finish the tasks without
	// touching the database.
	client := asynq.NewClient(s.redis)
	defer client.Close()
	relay, err := outbox.New(outbox.Config{DB: s.db, Enqueuer: client, Logger: quiet,
		TaskOptions: []asynq.Option{asynq.Queue(worker.DefaultQueue), asynq.Retention(time.Hour)}})
	require.NoError(t, err)
	n, err := relay.Drain(s.ctx)
	require.NoError(t, err)
	require.Equal(t, 6, n)
	ins := asynq.NewInspector(s.redis)
	defer ins.Close()
	ctx, cancel := context.WithCancel(context.Background())
	srv := asynq.NewServer(s.redis, asynq.Config{Queues: map[string]int{worker.DefaultQueue: 1}, Concurrency: 4,
		TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.FatalLevel, BaseContext: func() context.Context { return ctx }})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	require.Eventually(t, func() bool {
		qi, err := ins.GetQueueInfo(worker.DefaultQueue)
		return err == nil && qi.Completed == 6
	}, 20*time.Second, 20*time.Millisecond)
	srv.Shutdown()
	cancel()
	// Two of them vanish from Redis altogether.
	rows, err := s.db.Query(`SELECT task_uuid FROM outbox ORDER BY id LIMIT 2`)
	require.NoError(t, err)
	for rows.Next() {
		var u uuid.UUID
		require.NoError(t, rows.Scan(&u))
		require.NoError(t, ins.DeleteTask(worker.DefaultQueue, outbox.TaskID(u)))
	}
	require.NoError(t, rows.Close())

	// A seventh user's reconcile runs slowly: live all along.
	liveJob := s.bind(ids[6:], 1)[0]
	started, release := make(chan struct{}), make(chan struct{})
	rec := newLogRecorder()
	tune := func(c *worker.Config) {
		real := c.Handler
		c.Handler = worker.HandlerFunc(func(ctx context.Context, p jobs.ReconcileUser, final bool) error {
			if p.UserID == ids[6] {
				select {
				case started <- struct{}{}:
				default:
				}
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return real.Handle(ctx, p, final)
		})
		c.SweepAfter, c.SweepEvery = time.Hour, 50*time.Millisecond
		c.Logger = slog.New(rec)
	}
	s.startWorker(tune)
	s.startWorker(tune)
	<-started

	// Everything is now two hours old: past the deadline.
	_, err = s.db.Exec(`UPDATE job_items SET created_at = created_at - interval '2 hours'`)
	require.NoError(t, err)
	_, err = s.db.Exec(`UPDATE outbox SET created_at = created_at - interval '2 hours'`)
	require.NoError(t, err)

	s.waitJob(lostJob, "SUCCEEDED", 30*time.Second)
	// Sweeps keep running while the slow task is active: give them a few
	// rounds to (wrongly) pick it up before it ends.
	time.Sleep(500 * time.Millisecond)
	close(release)
	// (No wait for RUNNING here: a one-item job may pass through it faster
	// than a poll, which made this test flaky under load.)
	s.waitJob(liveJob, "SUCCEEDED", 30*time.Second)
	s.checkNoDuplicates(7)

	items, err := s.client.JobItem.Query().All(s.ctx)
	require.NoError(t, err)
	perItem := s.outboxRows()
	warned := map[string]map[string]string{}
	for _, m := range rec.with("sweeper: work lost; re-dispatched") {
		warned[m["item"]] = m
	}
	for _, it := range items {
		if it.JobID == liveJob {
			require.Equal(t, 1, perItem[it.ID], "an item with a live task is not sent again")
			require.NotContains(t, warned, string(it.ID))
			continue
		}
		require.Equal(t, 2, perItem[it.ID], "a lost item is sent again exactly once")
		w := warned[string(it.ID)]
		require.NotNil(t, w, "no WARN for item %s", it.ID)
		require.Equal(t, string(lostJob), w["job"])
		require.Equal(t, string(s.in.ID), w["integration"])
		require.Contains(t, []string{"task missing", "task completed"}, w["reason"])
	}
	require.Len(t, warned, 6)
}

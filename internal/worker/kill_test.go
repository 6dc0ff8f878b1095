package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/worker"
)

const childEnv = "DIRSYNC_TEST_WORKER_CHILD"

// TestWorkerChildProcess is not a test: it is the worker process that
// TestWorkerKilledMidBatch starts and SIGKILLs (skipped unless childEnv is set).
func TestWorkerChildProcess(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("helper process for TestWorkerKilledMidBatch")
	}
	var c childConfig
	require.NoError(t, json.Unmarshal([]byte(raw), &c))
	db, err := stmtcache.Open(c.DSN, stmtcache.DefaultSize)
	require.NoError(t, err)
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	rdb := redis.NewClient(&redis.Options{Addr: c.RedisAddr, DB: c.RedisDB, ContextTimeoutEnabled: true})
	w, err := worker.New(worker.Config{Redis: asynq.RedisClientOpt{Addr: c.RedisAddr, DB: c.RedisDB}, DB: db,
		DatabaseURL: c.DSN, Handler: handlerFor(t, client, rdb, c), RetryAfter: provision.RetryAfter,
		Concurrency: c.Concurrent, RetryBase: c.RetryBase, RetryMax: c.RetryMax, RelayPoll: c.RelayPoll, Logger: quiet})
	require.NoError(t, err)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	_ = w.Run(ctx) // until SIGKILL
}

// TestWorkerKilledMidBatch: a worker process is SIGKILLed while it works
// through a bind of 300 users (Graph calls in flight, tasks held under asynq
// leases). A new worker picks up the orphaned tasks and everything converges
// with no user lost and none created twice.
//
// asynq recovers a dead worker's tasks once their lease (30 s, extended by
// heartbeats while alive) has been expired for 30 s, checking every minute and
// at server start: a real crash costs those tasks up to ~2 minutes. The test
// does not wait for the clock: after the kill it ages the leases in Redis, and
// the new worker's recoverer, which runs at start, retries them at once.
// DIRSYNC_TEST_REAL_LEASE=1 waits for asynq's own clock instead.
func TestWorkerKilledMidBatch(t *testing.T) {
	t.Parallel()
	const n = 300
	s := newStack(t, stackOpts{writes: redis_rate.Limit{Rate: 100, Period: time.Second, Burst: 20},
		sim: graphsim.Config{DisableThrottling: true, Seed: 9,
			Faults: graphsim.Faults{LatencyBase: 40 * time.Millisecond, LatencyJitter: 40 * time.Millisecond,
				ReplicationDelay: 500 * time.Millisecond}}})
	ids := s.users(0, n)

	cfg, err := json.Marshal(s.childCfg)
	require.NoError(t, err)
	child := exec.Command(os.Args[0], "-test.run=^TestWorkerChildProcess$", "-test.count=1")
	child.Env = append(os.Environ(), childEnv+"="+string(cfg))
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	require.NoError(t, child.Start())
	exited := make(chan struct{})
	go func() { _ = child.Wait(); close(exited) }()
	t.Cleanup(func() { _ = child.Process.Kill(); <-exited })

	s.bind(ids, 100)
	succeeded := func() int {
		k, err := s.client.JobItem.Query().Where(jobitem.StatusEQ(jobitem.StatusSUCCEEDED)).Count(s.ctx)
		require.NoError(t, err)
		return k
	}
	require.Eventually(t, func() bool { return succeeded() >= n/4 }, 30*time.Second, 5*time.Millisecond)
	ins := asynq.NewInspector(s.redis)
	defer ins.Close()
	active, _ := ins.ListActiveTasks(worker.DefaultQueue)
	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	<-exited
	done := succeeded()
	t.Logf("killed the worker with %d/%d items done and %d tasks active", done, n, len(active))
	require.Less(t, done, n, "killed mid-batch")
	require.NotEmpty(t, active, "tasks were in flight")

	wait := 40 * time.Second
	if os.Getenv("DIRSYNC_TEST_REAL_LEASE") != "" {
		wait = 4 * time.Minute // asynq's own clock: lease 30 s + 30 s grace, recoverer every minute
	} else {
		ageLeases(t, s, time.Minute)
	}
	s.startWorker(nil)
	took := s.waitConverged(n, wait)
	t.Logf("the new worker finished the batch in %s", took.Round(time.Millisecond))
	s.checkNoDuplicates(n)
}

// ageLeases moves every lease of the queue d into the past, as if the dead
// worker had stopped heartbeating that long ago.
func ageLeases(t *testing.T, s *stack, d time.Duration) {
	t.Helper()
	key := "asynq:{" + worker.DefaultQueue + "}:lease"
	ctx := context.Background()
	members, err := s.rdb.ZRange(ctx, key, 0, -1).Result()
	require.NoError(t, err)
	past := float64(time.Now().Add(-d).Unix())
	for _, m := range members {
		require.NoError(t, s.rdb.ZAdd(ctx, key, redis.Z{Score: past, Member: m}).Err())
	}
	t.Logf("aged %d leases", len(members))
}

package importer_test

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
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/worker"
)

const childEnv = "DIRSYNC_TEST_IMPORT_WORKER"

// TestImportWorkerChild is not a test: it is the worker process the kill test
// and the benchmark start (skipped unless childEnv is set).
func TestImportWorkerChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("helper process")
	}
	var c shared
	require.NoError(t, json.Unmarshal([]byte(raw), &c))
	db, err := stmtcache.Open(c.DSN, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	rdb := redis.NewClient(&redis.Options{Addr: c.RedisAddr, DB: c.RedisDB, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	w, err := worker.New(workerConfig(t, db, client, rdb, c))
	require.NoError(t, err)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	_ = w.Run(ctx)
}

// startChild runs a worker subprocess on e's stack.
func (e *env) startChild() (*exec.Cmd, <-chan struct{}) {
	e.t.Helper()
	cfg, err := json.Marshal(e.cfg)
	require.NoError(e.t, err)
	child := exec.Command(os.Args[0], "-test.run=^TestImportWorkerChild$", "-test.count=1")
	child.Env = append(os.Environ(), childEnv+"="+string(cfg))
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	require.NoError(e.t, child.Start())
	exited := make(chan struct{})
	go func() { _ = child.Wait(); close(exited) }()
	e.t.Cleanup(func() { _ = child.Process.Kill(); <-exited })
	return child, exited
}

// TestImportResumesAfterWorkerKilled: a worker process importing 5,000 users
// page by page is SIGKILLed mid-import. A new worker resumes the job at its
// last committed page: every remote user is imported exactly once (no
// duplicate, no gap) and the job's counters are exact.
func TestImportResumesAfterWorkerKilled(t *testing.T) {
	t.Parallel()
	const n = 5000
	e := newEnv(t, envOpts{pageSize: 250, importWait: -1, sim: graphsim.Config{DisableThrottling: true, Seed: 5,
		Faults: graphsim.Faults{LatencyBase: 120 * time.Millisecond}}})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, n))
	child, exited := e.startChild()

	var out importOut
	e.must(e.org.admin, importMutation, map[string]any{"in": e.in.ID, "all": true}, &out)
	id := pulid.ID(out.ImportUsers.Job.ID)
	done := func() int {
		j, err := e.client.Job.Query().Where(job.ID(id)).Only(e.ctx)
		require.NoError(t, err)
		return j.Done
	}
	require.Eventually(t, func() bool { return done() >= 1000 }, 2*time.Minute, 5*time.Millisecond)
	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	<-exited
	at := done()
	t.Logf("killed the worker with %d/%d users done", at, n)
	require.Less(t, at, n, "killed mid-import")
	require.Zero(t, at%250, "progress moves a committed page at a time")

	ageLeases(t, e.rdb, time.Minute)
	e.startWorker()
	j := e.waitJob(string(id), 2*time.Minute)
	require.Equal(t, n, j.Total)
	require.Equal(t, n, j.Done)
	require.Zero(t, j.Failed)
	require.Equal(t, job.StatusSUCCEEDED, j.Status)
	users, err := e.client.User.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, n, users, "no duplicate, no gap")
	items, err := e.client.JobItem.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, n, items)
	links, err := e.client.RemoteLink.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, n, links)
	var distinct int
	require.NoError(t, e.db.QueryRow(`SELECT count(DISTINCT remote_id) FROM remote_links`).Scan(&distinct))
	require.Equal(t, n, distinct)
}

// ageLeases moves every asynq lease into the past, as if the dead worker had
// stopped heartbeating long ago (see internal/worker's kill test).
func ageLeases(t *testing.T, rdb *redis.Client, d time.Duration) {
	t.Helper()
	key := "asynq:{" + worker.DefaultQueue + "}:lease"
	ctx := context.Background()
	members, err := rdb.ZRange(ctx, key, 0, -1).Result()
	require.NoError(t, err)
	past := float64(time.Now().Add(-d).Unix())
	for _, m := range members {
		require.NoError(t, rdb.ZAdd(ctx, key, redis.Z{Score: past, Member: m}).Err())
	}
	t.Logf("aged %d leases", len(members))
}

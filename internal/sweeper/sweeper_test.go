package sweeper_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dirsync/dirsync/ent"
	_ "github.com/dirsync/dirsync/ent/runtime"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/sweeper"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// One job item whose task never reaches asynq (the Redis database is empty:
// every task is missing) is sent again MaxRedispatch times, each time only
// once its latest row is past the deadline, then failed with TASK_LOST, which
// ends the job. A sweep while another holds the lock does nothing; an item
// with no outbox row left gets a reconcile payload rebuilt from the item.
func TestLostWorkIsResentThenFailed(t *testing.T) {
	t.Parallel()
	ctx := auth.SystemContext(context.Background())
	db, err := stmtcache.Open(testdb.NewURL(t, dbmigrate.Migrator{}), stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	org, err := directory.New(client).CreateOrganization(ctx, "acme")
	require.NoError(t, err)
	job, err := jobs.Start(ctx, client, org.ID, jobs.JobBindUsers, "INx", []jobs.Target{{IntegrationID: "INx", UserID: "USx"}})
	require.NoError(t, err)
	r := testredis.New(t)
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB})
	t.Cleanup(func() { _ = ins.Close() })
	var changed int
	sw, err := sweeper.New(sweeper.Config{DB: db, Inspector: ins, Queue: "dirsync", After: time.Minute, MaxRedispatch: 2,
		JobChanged: func(context.Context, pulid.ID, pulid.ID) { changed++ },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	// age dispatches every row and moves everything past the deadline.
	age := func() {
		_, err := db.Exec(`UPDATE outbox SET dispatched_at = now(), created_at = created_at - interval '1 hour'`)
		require.NoError(t, err)
		_, err = db.Exec(`UPDATE job_items SET created_at = created_at - interval '1 hour'`)
		require.NoError(t, err)
	}
	rowsOf := func() int {
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&n))
		return n
	}

	res, err := sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{}, res, "younger than the deadline: not looked at")

	age()
	lock, err := db.Conn(ctx)
	require.NoError(t, err)
	_, err = lock.ExecContext(ctx, `SELECT pg_advisory_lock(x'6469727377656570'::bigint)`)
	require.NoError(t, err)
	res, err = sw.Sweep(ctx)
	require.NoError(t, err)
	require.True(t, res.Skipped, "another worker is sweeping")
	_, err = lock.ExecContext(ctx, `SELECT pg_advisory_unlock(x'6469727377656570'::bigint)`)
	require.NoError(t, err)
	require.NoError(t, lock.Close())

	res, err = sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{Checked: 1, Redispatched: 1}, res)
	require.Equal(t, 2, rowsOf())
	res, err = sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{}, res, "the new row is younger than the deadline")

	// The rows are pruned: the payload is rebuilt from the item.
	_, err = db.Exec(`DELETE FROM outbox`)
	require.NoError(t, err)
	age()
	res, err = sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{Checked: 1, Redispatched: 1}, res)
	var kind string
	var payload []byte
	require.NoError(t, db.QueryRow(`SELECT kind, payload FROM outbox`).Scan(&kind, &payload))
	require.Equal(t, jobs.KindReconcileUser, kind)
	var p jobs.ReconcileUser
	require.NoError(t, json.Unmarshal(payload, &p))
	item, err := client.JobItem.Query().Only(ctx)
	require.NoError(t, err)
	require.Equal(t, jobs.ReconcileUser{OrgID: org.ID, IntegrationID: "INx", UserID: "USx", JobID: job.ID, ItemID: item.ID}, p)

	for range 2 {
		age()
		res, err = sw.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, sweeper.Result{Checked: 1, Redispatched: 1}, res)
	}
	age() // three rows, all lost: more than MaxRedispatch
	res, err = sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{Checked: 1, Failed: 1}, res)
	require.Equal(t, 1, changed)
	item, err = client.JobItem.Get(ctx, item.ID)
	require.NoError(t, err)
	require.Equal(t, "FAILED", string(item.Status))
	require.Equal(t, "TASK_LOST", item.ErrorCode)
	j, err := client.Job.Get(ctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, "FAILED", string(j.Status))
	require.Equal(t, 1, j.Done)
	require.NotNil(t, j.FinishedAt)
	res, err = sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{}, res, "a finished job is left alone")
}

// Items of other kinds of work: a group item whose row is gone gets a group
// reconcile rebuilt; a password push whose row is gone cannot be rebuilt (the
// sealed password went with it) and fails at once; an import's items, which
// share the job's one resumable task, are never looked at.
func TestLostWorkOfEachKind(t *testing.T) {
	t.Parallel()
	ctx := auth.SystemContext(context.Background())
	db, err := stmtcache.Open(testdb.NewURL(t, dbmigrate.Migrator{}), stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	org, err := directory.New(client).CreateOrganization(ctx, "acme")
	require.NoError(t, err)
	groupJob, err := jobs.Start(ctx, client, org.ID, jobs.JobBindGroups, "INx",
		[]jobs.Target{{IntegrationID: "INx", GroupID: "UGx", Group: true}})
	require.NoError(t, err)
	pushJob, err := jobs.StartPush(ctx, client, org.ID, "USx", jobs.JobPasswordSet, []pulid.ID{"INx"}, 1, false,
		func(pulid.ID) (string, error) { return "sealed", nil })
	require.NoError(t, err)
	importJob, err := client.Job.Create().SetOrganizationID(org.ID).SetKind(jobs.JobImportUsers).SetTotal(1).Save(ctx)
	require.NoError(t, err)
	_, err = client.JobItem.Create().SetOrganizationID(org.ID).SetJobID(importJob.ID).SetIntegrationID("INx").
		SetRemoteID("r1").Save(ctx)
	require.NoError(t, err)

	r := testredis.New(t)
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB})
	t.Cleanup(func() { _ = ins.Close() })
	sw, err := sweeper.New(sweeper.Config{DB: db, Inspector: ins, Queue: "dirsync", After: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	_, err = db.Exec(`DELETE FROM outbox`)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE job_items SET created_at = created_at - interval '1 hour'`)
	require.NoError(t, err)

	res, err := sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{Checked: 2, Redispatched: 1, Failed: 1}, res, "the import item is not a candidate")
	var kind string
	var payload []byte
	require.NoError(t, db.QueryRow(`SELECT kind, payload FROM outbox`).Scan(&kind, &payload))
	require.Equal(t, jobs.KindReconcileGroup, kind)
	var p jobs.ReconcileGroup
	require.NoError(t, json.Unmarshal(payload, &p))
	require.Equal(t, pulid.ID("UGx"), p.GroupID)
	require.Equal(t, groupJob.ID, p.JobID)

	push, err := client.JobItem.Query().All(ctx)
	require.NoError(t, err)
	for _, it := range push {
		switch it.JobID {
		case pushJob.ID:
			require.Equal(t, "FAILED", string(it.Status))
			require.Equal(t, "TASK_LOST", it.ErrorCode)
		default:
			require.Equal(t, "PENDING", string(it.Status))
		}
	}
}

// An import runs as one resumable task per job: when that task is lost the
// sweeper sends a marked copy (the import resumes from its checkpoint); the
// import's own continuations are not counted as losses; after MaxRedispatch
// lost copies the job fails rather than stay RUNNING for ever.
func TestLostImportTaskIsResentThenFailed(t *testing.T) {
	t.Parallel()
	ctx := auth.SystemContext(context.Background())
	db, err := stmtcache.Open(testdb.NewURL(t, dbmigrate.Migrator{}), stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	org, err := directory.New(client).CreateOrganization(ctx, "acme")
	require.NoError(t, err)
	job, err := client.Job.Create().SetOrganizationID(org.ID).SetKind(jobs.JobImportUsers).SetStatus("RUNNING").Save(ctx)
	require.NoError(t, err)
	payload, err := json.Marshal(jobs.ImportUsers{OrgID: org.ID, IntegrationID: "INx", JobID: job.ID, All: true})
	require.NoError(t, err)
	for range 4 { // the first task and three continuations: no loss yet
		require.NoError(t, client.Outbox.Create().SetOrganizationID(org.ID).SetKind(jobs.KindImportUsers).SetPayload(payload).Exec(ctx))
	}
	r := testredis.New(t)
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB})
	t.Cleanup(func() { _ = ins.Close() })
	sw, err := sweeper.New(sweeper.Config{DB: db, Inspector: ins, Queue: "dirsync", After: time.Minute, MaxRedispatch: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	age := func() {
		_, err := db.Exec(`UPDATE outbox SET dispatched_at = now(), created_at = created_at - interval '1 hour'`)
		require.NoError(t, err)
	}

	res, err := sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{}, res, "not yet dispatched and young: left alone")
	for i := range 2 {
		age()
		res, err = sw.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, sweeper.Result{Checked: 1, Redispatched: 1}, res, "loss %d", i+1)
		var p jobs.ImportUsers
		var raw []byte
		require.NoError(t, db.QueryRow(`SELECT payload FROM outbox ORDER BY id DESC LIMIT 1`).Scan(&raw))
		require.NoError(t, json.Unmarshal(raw, &p))
		require.Equal(t, job.ID, p.JobID)
		require.True(t, p.All)
	}
	age()
	res, err = sw.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, sweeper.Result{Checked: 1, Failed: 1}, res)
	j, err := client.Job.Get(ctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, "FAILED", string(j.Status))
	require.NotNil(t, j.FinishedAt)
}

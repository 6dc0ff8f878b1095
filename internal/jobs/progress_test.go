package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/testdb"
)

func setup(t *testing.T, n int) (context.Context, *ent.Client, *ent.Job, []*ent.JobItem) {
	t.Helper()
	db := testdb.New(t, dbmigrate.Migrator{})
	c := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(c).CreateOrganization(ctx, "acme")
	require.NoError(t, err)
	in := pulid.New("IN")
	var targets []jobs.Target
	for i := range n {
		u, err := c.User.Create().SetOrganizationID(org.ID).SetUsername(fmt.Sprintf("u%d", i)).
			SetEmail(fmt.Sprintf("u%d@example.com", i)).Save(ctx)
		require.NoError(t, err)
		targets = append(targets, jobs.Target{IntegrationID: in, UserID: u.ID})
	}
	j, err := jobs.Start(ctx, c, org.ID, jobs.JobBindUsers, "", targets)
	require.NoError(t, err)
	items, err := c.JobItem.Query().Where(jobitem.JobID(j.ID)).All(ctx)
	require.NoError(t, err)
	return ctx, c, j, items
}

func complete(t *testing.T, ctx context.Context, c *ent.Client, j *ent.Job, it *ent.JobItem, o jobs.ItemOutcome) bool {
	t.Helper()
	tx, err := c.Tx(ctx)
	require.NoError(t, err)
	got, err := jobs.CompleteItem(ctx, tx.Client(), j.OrganizationID, j.ID, it.ID, o, time.Now())
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	return got != nil
}

// J2: RUNNING once; each item counts exactly once; the last settles the job.
func TestProgress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		failed []bool
		want   job.Status
	}{
		{[]bool{false, false}, job.StatusSUCCEEDED},
		{[]bool{false, true}, job.StatusPARTIAL},
		{[]bool{true, true}, job.StatusFAILED},
	} {
		ctx, c, j, items := setup(t, 2)
		changed, err := jobs.MarkRunning(ctx, c, j.OrganizationID, j.ID, time.Now())
		require.NoError(t, err)
		require.True(t, changed)
		changed, err = jobs.MarkRunning(ctx, c, j.OrganizationID, j.ID, time.Now())
		require.NoError(t, err)
		require.False(t, changed, "only the first item moves the job")
		for i, it := range items {
			o := jobs.ItemOutcome{Result: jobs.ResultCreated}
			if tc.failed[i] {
				o = jobs.ItemOutcome{Failed: true, Result: jobs.ResultError, ErrorCode: "X", ErrorMessage: "boom"}
			}
			require.True(t, complete(t, ctx, c, j, it, o))
			require.False(t, complete(t, ctx, c, j, it, o), "a duplicate never counts twice")
			got, err := c.Job.Get(ctx, j.ID)
			require.NoError(t, err)

			require.Equal(t, i+1, got.Done)
			if i == 0 {
				require.Equal(t, job.StatusRUNNING, got.Status)
				require.Nil(t, got.FinishedAt)
			}
		}
		got, err := c.Job.Get(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, tc.want, got.Status)
		require.NotNil(t, got.FinishedAt)
		m, err := jobs.JobMessage(got)
		require.NoError(t, err)
		require.Equal(t, pubsub.KindJob, m.Kind)
		require.Equal(t, int64(2), m.Seq)
		var back ent.Job
		require.NoError(t, json.Unmarshal(m.Data, &back))
		require.Equal(t, tc.want, back.Status)
	}
}

// Counters grow in SQL: concurrent completions lose no update, whether an
// item completes on its own transaction or, as a reconcile does (issue 12),
// in its one statement on the pool.
func TestProgressConcurrent(t *testing.T) {
	t.Parallel()
	for _, onPool := range []bool{false, true} {
		t.Run(fmt.Sprintf("pool=%v", onPool), func(t *testing.T) {
			t.Parallel()
			ctx, c, j, items := setup(t, 20)
			var wg sync.WaitGroup
			var completed sync.Map
			for _, it := range items {
				wg.Add(2)
				for range 2 { // every item delivered twice at once
					go func() {
						defer wg.Done()
						o := jobs.ItemOutcome{Result: jobs.ResultUpdated}
						if onPool {
							got, err := jobs.CompleteItemNoWait(ctx, c, j.OrganizationID, j.ID, it.ID, o, time.Now())
							if err != nil {
								t.Error(err)
							}
							if got != nil {
								if _, dup := completed.LoadOrStore(it.ID, true); dup {
									t.Errorf("item %s completed twice", it.ID)
								}
							}
							return
						}
						tx, err := c.Tx(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						if _, err := jobs.CompleteItem(ctx, tx.Client(), j.OrganizationID, j.ID, it.ID, o, time.Now()); err != nil {
							_ = tx.Rollback()
							t.Error(err)
							return
						}
						if err := tx.Commit(); err != nil {
							t.Error(err)
						}
					}()
				}
			}
			wg.Wait()
			got, err := c.Job.Get(ctx, j.ID)
			require.NoError(t, err)
			require.Equal(t, 20, got.Done)
			require.Zero(t, got.Failed)
			require.Equal(t, job.StatusSUCCEEDED, got.Status)
			require.NotNil(t, got.FinishedAt)
			n, err := c.JobItem.Query().Where(jobitem.JobID(j.ID), jobitem.StatusEQ(jobitem.StatusSUCCEEDED)).Count(ctx)
			require.NoError(t, err)
			require.Equal(t, 20, n)
		})
	}
}

// CompleteItemNoWait's commit mode ends with its statement: the pooled
// connection commits synchronously again afterwards.
func TestCompleteItemNoWaitLeavesTheSessionAlone(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, dbmigrate.Migrator{})
	db.SetMaxOpenConns(1) // the same session for both statements
	c := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(c).CreateOrganization(ctx, "acme")
	require.NoError(t, err)
	u, err := c.User.Create().SetOrganizationID(org.ID).SetUsername("u").SetEmail("u@example.com").Save(ctx)
	require.NoError(t, err)
	j, err := jobs.Start(ctx, c, org.ID, jobs.JobBindUsers, "", []jobs.Target{{IntegrationID: pulid.New("IN"), UserID: u.ID}})
	require.NoError(t, err)
	it, err := c.JobItem.Query().Where(jobitem.JobID(j.ID)).Only(ctx)
	require.NoError(t, err)
	got, err := jobs.CompleteItemNoWait(ctx, c, org.ID, j.ID, it.ID, jobs.ItemOutcome{Result: jobs.ResultCreated}, time.Now())
	require.NoError(t, err)
	require.Equal(t, job.StatusSUCCEEDED, got.Status)
	var mode string
	require.NoError(t, db.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&mode))
	require.Equal(t, "on", mode)
}

// A completion whose job row is missing changes nothing: item and job move
// together or not at all.
func TestCompleteItemNeedsItsJob(t *testing.T) {
	t.Parallel()
	ctx, c, j, items := setup(t, 1)
	got, err := jobs.CompleteItem(ctx, c, j.OrganizationID, pulid.New("JB"), items[0].ID, jobs.ItemOutcome{Result: jobs.ResultCreated}, time.Now())
	require.NoError(t, err)
	require.Nil(t, got)
	it, err := c.JobItem.Get(ctx, items[0].ID)
	require.NoError(t, err)
	require.Equal(t, jobitem.StatusPENDING, it.Status, "the item of another job is left alone")
}

// A completion returns the job as it left it, column for column what a read
// of the job then finds (it is published without a second read).
func TestCompleteItemReturnsTheJob(t *testing.T) {
	t.Parallel()
	ctx, c, j, items := setup(t, 2)
	for i, it := range items {
		o := jobs.ItemOutcome{Result: jobs.ResultCreated}
		if i == 1 {
			o = jobs.ItemOutcome{Failed: true, Result: jobs.ResultError, ErrorCode: "X", ErrorMessage: "boom"}
		}
		got, err := jobs.CompleteItem(ctx, c, j.OrganizationID, j.ID, it.ID, o, time.Now())
		require.NoError(t, err)
		require.NotNil(t, got)
		read, err := c.Job.Get(ctx, j.ID)
		require.NoError(t, err)
		want, err := jobs.JobMessage(read)
		require.NoError(t, err)
		have, err := jobs.JobMessage(got)
		require.NoError(t, err)
		require.JSONEq(t, string(want.Data), string(have.Data))
		require.Equal(t, want.Seq, have.Seq)
		require.Equal(t, i+1, got.Done)
	}
}

// Started asks the database until the job has left QUEUED, then never again.
func TestStartedAsksOnce(t *testing.T) {
	t.Parallel()
	ctx, c, j, _ := setup(t, 1)
	var s jobs.Started
	changed, err := s.MarkRunning(ctx, c, j.OrganizationID, j.ID, time.Now())
	require.NoError(t, err)
	require.True(t, changed)
	// A closed client fails every query: an answer now comes from memory.
	closed := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, closedDB(t))))
	changed, err = s.MarkRunning(ctx, closed, j.OrganizationID, j.ID, time.Now())
	require.NoError(t, err)
	require.False(t, changed)
	_, err = s.MarkRunning(ctx, closed, j.OrganizationID, pulid.New("JB"), time.Now())
	require.Error(t, err, "another job is asked for")
}

func closedDB(t *testing.T) *sql.DB {
	db, err := stmtcache.Open("postgres://127.0.0.1:1/none", stmtcache.DefaultSize)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return db
}

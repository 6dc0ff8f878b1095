package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// Item results (JobItem.result): what one reconcile did.
const (
	ResultCreated    = "CREATED"
	ResultTakenOver  = "TAKEN_OVER"
	ResultUpdated    = "UPDATED"
	ResultUnchanged  = "UNCHANGED"
	ResultDisabled   = "DISABLED"
	ResultEnabled    = "ENABLED"
	ResultOutOfScope = "OUT_OF_SCOPE"
	ResultSkipped    = "SKIPPED"
	ResultError      = "ERROR"
)

// ItemOutcome is how one job item ended.
type ItemOutcome struct {
	Failed       bool
	Result       string
	ErrorCode    string
	ErrorMessage string
}

// Started remembers, in one process, the jobs known to have left QUEUED. A
// job never returns to QUEUED, so once MarkRunning saw one move on, later
// items of that job need not ask the database again: one round trip less per
// item of a large bind (issue 12). The zero value is ready; it forgets
// everything when it reaches startedMax entries, which only costs a read.
type Started struct {
	mu   sync.Mutex
	jobs map[pulid.ID]struct{}
}

const startedMax = 4096

func (s *Started) has(id pulid.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.jobs[id]
	return ok
}

func (s *Started) add(id pulid.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil || len(s.jobs) >= startedMax {
		s.jobs = make(map[pulid.ID]struct{})
	}
	s.jobs[id] = struct{}{}
}

// MarkRunning is the package's MarkRunning, skipped for a job this process
// already saw leave QUEUED.
func (s *Started) MarkRunning(ctx context.Context, c *ent.Client, orgID, jobID pulid.ID, now time.Time) (bool, error) {
	if s.has(jobID) {
		return false, nil
	}
	changed, err := MarkRunning(ctx, c, orgID, jobID, now)
	if err == nil {
		s.add(jobID)
	}
	return changed, err
}

// MarkRunning moves a QUEUED job to RUNNING and stamps started_at. It reports
// whether this call changed the job (only the first item of a job does), so the
// caller publishes the change once.
func MarkRunning(ctx context.Context, c *ent.Client, orgID, jobID pulid.ID, now time.Time) (bool, error) {
	// Read first: an UPDATE waits for the job row's lock even when its WHERE
	// turns out false, and the row is locked by every item completing
	// (AdvanceJob), so each task of a running job would queue behind them.
	var queued bool
	rows, err := c.QueryContext(ctx, `SELECT status = 'QUEUED' FROM jobs WHERE id = $1 AND organization_id = $2`, jobID, orgID)
	if err != nil {
		return false, fmt.Errorf("jobs: mark %s running: %w", jobID, err)
	}
	if rows.Next() {
		err = rows.Scan(&queued)
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("jobs: mark %s running: %w", jobID, err)
	}
	if !queued {
		return false, nil
	}
	res, err := c.ExecContext(ctx,
		`UPDATE jobs SET status = 'RUNNING', started_at = $3, updated_at = $3
		 WHERE id = $1 AND organization_id = $2 AND status = 'QUEUED'`, jobID, orgID, now)
	if err != nil {
		return false, fmt.Errorf("jobs: mark %s running: %w", jobID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("jobs: mark %s running: %w", jobID, err)
	}
	return n == 1, nil
}

// CompleteItem records an item's outcome exactly once and advances its job,
// in one statement: only a PENDING item moves (to SUCCEEDED or FAILED), and
// only then do the job's counters grow, so a retried or duplicated task never
// counts twice, and the item and its job change together or not at all. It
// returns the job as this completion left it (to publish without reading it
// again), nil when this call completed nothing.
//
// One statement also means the job row — which every item of the job must
// update — is locked only while PostgreSQL runs it and commits, never while a
// client holds a transaction open: called on the pool (not a transaction), a
// thousand-item job's completions no longer queue behind each other's round
// trips (issue 12; on a fresh tenant this lock was the bind's bottleneck). c
// may also be a transaction's client, where the item must change with the
// rest of that transaction.
func CompleteItem(ctx context.Context, c Querier, orgID, jobID, itemID pulid.ID, o ItemOutcome, now time.Time) (*ent.Job, error) {
	return completeItem(ctx, c, completeItemSQL, orgID, jobID, itemID, o, now)
}

// CompleteItemNoWait is CompleteItem on the pool (never a transaction's
// client) for an item whose work has committed already: its commit does not
// wait for the WAL to reach the disk. Every item of a job completes on the
// job's one row, so with a synchronous commit each completion held that row
// through its fsync and a bind's completions ran at the disk's fsync rate,
// one after the other (200–300/s on the development machine). What a
// database crash can cost is the last fraction of a second of completions:
// their items are PENDING again although their tasks are done, so the
// sweeper sends them again, and each converges to the state its first run
// committed (durably) and completes.
func CompleteItemNoWait(ctx context.Context, c *ent.Client, orgID, jobID, itemID pulid.ID, o ItemOutcome, now time.Time) (*ent.Job, error) {
	return completeItem(ctx, c, completeItemNoWaitSQL, orgID, jobID, itemID, o, now)
}

// The completion statements, built once: the item's UPDATE, with an extra
// condition, then advanceJob's when it moved.
var (
	completeItemSQL = completeItemStatement("")
	// set_config(…, true) lasts for the statement's own transaction: the
	// implicit one of a statement run outside a transaction block.
	completeItemNoWaitSQL = completeItemStatement(` AND set_config('synchronous_commit', 'off', true) IS NOT NULL`)
	advanceJobSQL         = advanceJob("$2", "$1", "$3", "$4")
)

func completeItemStatement(itemCond string) string {
	return `WITH item AS (
		   UPDATE job_items SET status = $4, result = $5, error_code = $6, error_message = $7, updated_at = $8
		   WHERE id = $1 AND organization_id = $2 AND job_id = $3 AND status = 'PENDING'` + itemCond + `
		   RETURNING id)
		 ` + advanceJob("$2", "$3", "$9", "$8") + ` AND EXISTS (SELECT 1 FROM item)
		 RETURNING ` + returningJob
}

func completeItem(ctx context.Context, c Querier, query string, orgID, jobID, itemID pulid.ID, o ItemOutcome, now time.Time) (*ent.Job, error) {
	status := "SUCCEEDED"
	failed := 0
	if o.Failed {
		status = "FAILED"
		failed = 1
	}
	rows, err := c.QueryContext(ctx, query,
		itemID, orgID, jobID, status, o.Result, o.ErrorCode, Truncate(o.ErrorMessage, 2000), now, failed)
	if err != nil {
		return nil, fmt.Errorf("jobs: complete item %s: %w", itemID, err)
	}
	defer rows.Close()
	var js []*ent.Job
	if err := entsql.ScanSlice(rows, &js); err != nil {
		return nil, fmt.Errorf("jobs: complete item %s: %w", itemID, err)
	}
	if len(js) == 0 {
		return nil, nil
	}
	return js[0], nil
}

// returningJob names every column of the job, so that a RETURNING clause
// reads the job as ent does (ent.Job's json tags are its column names).
var returningJob = `"` + strings.Join(job.Columns, `", "`) + `"`

// Querier runs a statement that returns rows: an ent client (of a
// transaction or not) or a *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Execer runs a statement: an ent client (of a transaction) or a *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// advanceJob is the UPDATE that counts one more finished item of a job,
// with the placeholders that hold the organization, the job, whether the item
// failed (0 or 1) and the time. The counters grow in SQL (no
// read-modify-write race between workers), and the item that brings done to
// total settles the job: SUCCEEDED, FAILED (every item failed) or PARTIAL.
// Column references on the right-hand side read the row as it was before
// this UPDATE, so done+1 is the new count.
func advanceJob(org, job, failed, now string) string {
	return strings.NewReplacer(":org", org, ":job", job, ":failed", failed, ":now", now).Replace(`UPDATE jobs SET
		   done = done + 1,
		   failed = failed + :failed,
		   updated_at = :now,
		   started_at = COALESCE(started_at, :now),
		   status = CASE
		     -- Items the mass-deprovision guard holds are not done, so a job
		     -- waiting for approval keeps saying so while the rest finishes.
		     WHEN done + 1 < total AND status = 'AWAITING_APPROVAL' THEN 'AWAITING_APPROVAL'
		     WHEN done + 1 < total THEN 'RUNNING'
		     WHEN failed + :failed >= total THEN 'FAILED'
		     WHEN failed + :failed = 0 THEN 'SUCCEEDED'
		     ELSE 'PARTIAL' END,
		   finished_at = CASE WHEN done + 1 >= total THEN :now ELSE finished_at END
		 WHERE id = :job AND organization_id = :org`)
}

// AdvanceJob counts one more finished item of the job (advanceJob), for a
// caller that already moved the item out of PENDING on the same transaction.
func AdvanceJob(ctx context.Context, c Execer, orgID, jobID pulid.ID, itemFailed bool, now time.Time) error {
	failed := 0
	if itemFailed {
		failed = 1
	}
	_, err := c.ExecContext(ctx, advanceJobSQL, jobID, orgID, failed, now)
	if err != nil {
		return fmt.Errorf("jobs: advance job %s: %w", jobID, err)
	}
	return nil
}

// JobMessage is the live update for a job after a change (docs/pubsub.md): Data
// is the job's JSON, Seq its done counter so a consumer can drop stale values.
func JobMessage(j *ent.Job) (pubsub.Message, error) {
	data, err := json.Marshal(j)
	if err != nil {
		return pubsub.Message{}, fmt.Errorf("jobs: encode job %s: %w", j.ID, err)
	}
	return pubsub.Message{Kind: pubsub.KindJob, OrgID: string(j.OrganizationID), ID: string(j.ID),
		Seq: int64(j.Done), At: j.UpdatedAt, Data: data}, nil
}

// PublishJob announces job jobID's current state (read with c) on p, after
// the change that moved it committed. A nil p publishes nothing. A lost
// message costs only liveness: subscribers re-read state.
func PublishJob(ctx context.Context, c *ent.Client, p *pubsub.Publisher, orgID, jobID pulid.ID) error {
	if p == nil {
		return nil
	}
	j, err := c.Job.Query().Where(job.ID(jobID), job.OrganizationID(orgID)).Only(ctx)
	if err != nil {
		return fmt.Errorf("jobs: read job %s to publish: %w", jobID, err)
	}
	return PublishState(ctx, p, j)
}

// PublishState publishes the job as it is given (e.g. as CompleteItem left
// it); nil p publishes nothing.
func PublishState(ctx context.Context, p *pubsub.Publisher, j *ent.Job) error {
	if p == nil {
		return nil
	}
	m, err := JobMessage(j)
	if err != nil {
		return err
	}
	return p.Publish(ctx, m)
}

// EventMessage is the live update announcing a new event.
func EventMessage(e *ent.Event) (pubsub.Message, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return pubsub.Message{}, fmt.Errorf("jobs: encode event %s: %w", e.ID, err)
	}
	return pubsub.Message{Kind: pubsub.KindEvent, OrgID: string(e.OrganizationID), ID: string(e.ID),
		At: e.CreatedAt, Data: data}, nil
}

// Truncate cuts s to at most n bytes, on a rune boundary so PostgreSQL gets
// valid UTF-8 (for text columns with a length limit).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

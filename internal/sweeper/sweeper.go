// Package sweeper finds work that was lost on its way through Redis and sends
// it again, so no job stays QUEUED or RUNNING for ever.
//
// Work is lost when an item's task no longer exists while the item is still
// PENDING: Redis lost its data (no AOF, a flush, a failover), a task was
// deleted by hand, a worker died on a task's last attempt (asynq's recoverer
// archives it without calling the handler), or a database restored from a
// backup holds items whose tasks already ran against the lost timeline. The
// sweeper looks at PENDING items of QUEUED/RUNNING jobs older than a deadline,
// asks asynq about the item's latest task, and only when that task is missing,
// completed or archived writes a new outbox row with the same kind and payload
// (the relay then sends it under a new task id), logging a WARN with the job,
// item and integration. An item whose work was lost MaxRedispatch times is
// failed (TASK_LOST) instead, so even a systematic loss ends the job, loudly.
//
// Safe beside live work: a task that is pending, scheduled, retrying or
// running is never duplicated. A completed or archived task's handler
// committed the item's outcome before asynq recorded the task as finished, so
// the item is re-read under a row lock after the task was inspected: still
// PENDING then means the task truly ended without settling it. The one race
// left — the handler of a redispatched-twice item, or a writer that did not
// record job_item_id — can only run a reconcile twice, which is harmless: the
// reconcile is convergent (it reads current state and writes only the
// difference) and an item is completed once (only a PENDING item moves).
//
// One sweep at a time across all workers: a sweep holds a PostgreSQL advisory
// lock and other workers skip theirs while it is held; a sweep that follows
// finds the new outbox row younger than the deadline and leaves the item.
package sweeper

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/outbox"
)

// Inspector is the part of *asynq.Inspector the sweeper uses.
type Inspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
}

// Defaults.
const (
	DefaultAfter         = 10 * time.Minute
	DefaultEvery         = time.Minute
	DefaultBatch         = 500
	DefaultMaxRedispatch = 3
)

// lockKey is the advisory lock of a sweep ("dirsync sweeper").
const lockKey int64 = 0x6469727377656570

// Config configures a Sweeper.
type Config struct {
	DB        *sql.DB
	Inspector Inspector
	// Queue is the asynq queue the relay enqueues into.
	Queue string
	// After is the deadline: an item is looked at once it and its latest
	// task were created this long ago. Default 10 min. Shorter only costs
	// Redis look-ups: a live task is never duplicated.
	After time.Duration
	// Every is the pause between sweeps; default 1 min.
	Every time.Duration
	// Batch bounds the items looked at per sweep; default 500.
	Batch int
	// MaxRedispatch is how many times an item's work may be lost and sent
	// again before the item is failed with TASK_LOST; default 3.
	MaxRedispatch int
	// JobChanged, when set, is called after the sweeper settled an item of
	// the job (to publish it).
	JobChanged func(ctx context.Context, orgID, jobID pulid.ID)
	Logger     *slog.Logger
}

// Sweeper re-dispatches lost work.
type Sweeper struct{ cfg Config }

// New validates cfg and fills defaults.
func New(cfg Config) (*Sweeper, error) {
	if cfg.DB == nil || cfg.Inspector == nil || cfg.Queue == "" {
		return nil, errors.New("sweeper: DB, Inspector and Queue required")
	}
	if cfg.After <= 0 {
		cfg.After = DefaultAfter
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.MaxRedispatch <= 0 {
		cfg.MaxRedispatch = DefaultMaxRedispatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{cfg: cfg}, nil
}

// Run sweeps every cfg.Every until ctx ends. Failures (Redis or PostgreSQL
// down) are logged; the next sweep tries again.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("sweeper: sweep failed", "err", err)
		}
	}
}

// Result counts what one sweep did.
type Result struct {
	Skipped      bool // another worker was sweeping
	Checked      int  // stale items looked at
	Redispatched int
	Failed       int // items given up on (TASK_LOST)
}

type candidate struct {
	org, job, item, integration pulid.ID
	user, link, group           sql.NullString
	jobKind                     string
	rowID                       sql.NullInt64
	kind                        sql.NullString
	payload                     []byte
	taskUUID                    uuid.NullUUID
	dispatched                  bool
	attempts                    int
}

// Sweep runs one sweep.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	var res Result
	conn, err := s.cfg.DB.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("sweeper: connect: %w", err)
	}
	defer conn.Close()
	var locked bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&locked); err != nil {
		return res, fmt.Errorf("sweeper: lock: %w", err)
	}
	if !locked {
		res.Skipped = true
		return res, nil
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey) }()

	cands, err := s.candidates(ctx, conn)
	if err != nil {
		return res, err
	}
	res.Checked = len(cands)
	for _, c := range cands {
		reason, live, err := s.liveness(c)
		if err != nil {
			return res, err
		}
		if live {
			continue
		}
		done, err := s.resend(ctx, conn, c, reason, &res)
		if err != nil {
			return res, err
		}
		if done && s.cfg.JobChanged != nil {
			s.cfg.JobChanged(ctx, c.org, c.job)
		}
	}
	if err := s.sweepImports(ctx, conn, &res); err != nil {
		return res, err
	}
	return res, nil
}

// sweepImports does for imports what Sweep does for items: an import job runs
// as one resumable task at a time (its checkpoint is on the job), so the job,
// not an item, is what must not be left without a live task. Its latest task
// is sent again when lost; the import resumes from its last committed page.
func (s *Sweeper) sweepImports(ctx context.Context, conn *sql.Conn, res *Result) error {
	rows, err := conn.QueryContext(ctx, `
		SELECT j.organization_id, j.id, COALESCE(j.integration_id, ''), o.id, o.payload, o.task_uuid,
		       o.dispatched_at IS NOT NULL, o.lost
		FROM jobs j
		JOIN LATERAL (
			SELECT id, payload, task_uuid, dispatched_at, created_at,
			       count(*) FILTER (WHERE convert_from(payload, 'UTF8')::jsonb ? 'swept') OVER () AS lost FROM outbox
			WHERE kind = $3 AND convert_from(payload, 'UTF8')::jsonb->>'job' = j.id
			ORDER BY id DESC LIMIT 1) o ON true
		WHERE j.kind = $4 AND j.status IN ('QUEUED', 'RUNNING')
		  AND o.created_at < now() - make_interval(secs => $1)
		ORDER BY j.created_at
		LIMIT $2`, s.cfg.After.Seconds(), s.cfg.Batch, jobs.KindImportUsers, jobs.JobImportUsers)
	if err != nil {
		return fmt.Errorf("sweeper: find stale imports: %w", err)
	}
	var cands []candidate
	for rows.Next() {
		var c candidate
		var dispatched sql.NullBool
		if err := rows.Scan(&c.org, &c.job, &c.integration, &c.rowID, &c.payload, &c.taskUUID, &dispatched, &c.attempts); err != nil {
			rows.Close()
			return fmt.Errorf("sweeper: scan: %w", err)
		}
		c.dispatched, c.item, c.kind = dispatched.Bool, c.job, sql.NullString{String: jobs.KindImportUsers, Valid: true}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range cands {
		res.Checked++
		reason, live, err := s.liveness(c)
		if err != nil || live {
			if err != nil {
				return err
			}
			continue
		}
		log := s.cfg.Logger.With("job", string(c.job), "integration", string(c.integration), "org", string(c.org),
			"reason", reason, "lost", c.attempts, "task", outbox.TaskID(c.taskUUID.UUID))
		if c.attempts >= s.cfg.MaxRedispatch {
			if _, err := conn.ExecContext(ctx, `UPDATE jobs SET status = 'FAILED', finished_at = now(), updated_at = now()
				WHERE id = $1 AND status IN ('QUEUED', 'RUNNING')`, c.job); err != nil {
				return fmt.Errorf("sweeper: fail import %s: %w", c.job, err)
			}
			res.Failed++
			log.Error("sweeper: import task lost too often; job failed")
		} else {
			// The copy is marked (the handler ignores the field, and its own
			// continuations do not carry it) so losses are counted apart
			// from the continuations a long import writes.
			if _, err := conn.ExecContext(ctx, `INSERT INTO outbox (organization_id, kind, payload, created_at)
				VALUES ($1, $2, convert_to((convert_from($3, 'UTF8')::jsonb || '{"swept": true}')::text, 'UTF8'), now())`,
				c.org, jobs.KindImportUsers, c.payload); err != nil {
				return fmt.Errorf("sweeper: resend import %s: %w", c.job, err)
			}
			if _, err := conn.ExecContext(ctx, `SELECT pg_notify($1, '')`, outbox.Channel); err != nil {
				return fmt.Errorf("sweeper: notify relay: %w", err)
			}
			res.Redispatched++
			log.Warn("sweeper: import task lost; sent again (resumes from its last page)")
		}
		if s.cfg.JobChanged != nil {
			s.cfg.JobChanged(ctx, c.org, c.job)
		}
	}
	return nil
}

// candidates: PENDING items of unfinished jobs that are older than the
// deadline and whose latest outbox row is too (or that have none).
func (s *Sweeper) candidates(ctx context.Context, conn *sql.Conn) ([]candidate, error) {
	rows, err := conn.QueryContext(ctx, `
		SELECT i.organization_id, i.job_id, i.id, i.integration_id, i.user_id, i.link_id, i.group_id, j.kind,
		       o.id, o.kind, o.payload, o.task_uuid, o.dispatched_at IS NOT NULL,
		       (SELECT count(*) FROM outbox c WHERE c.job_item_id = i.id)
		FROM jobs j
		JOIN job_items i ON i.job_id = j.id AND i.status = 'PENDING'
		LEFT JOIN LATERAL (
			SELECT id, kind, payload, task_uuid, dispatched_at, created_at FROM outbox
			WHERE job_item_id = i.id ORDER BY id DESC LIMIT 1) o ON true
		WHERE j.status IN ('QUEUED', 'RUNNING', 'AWAITING_APPROVAL')
		  -- An import's items share one resumable task per job (its checkpoint
		  -- is on the job), so they have no task of their own to look for.
		  AND j.kind <> $3
		  AND i.created_at < now() - make_interval(secs => $1)
		  AND (o.id IS NULL OR o.created_at < now() - make_interval(secs => $1))
		ORDER BY i.created_at, i.id
		LIMIT $2`, s.cfg.After.Seconds(), s.cfg.Batch, jobs.JobImportUsers)
	if err != nil {
		return nil, fmt.Errorf("sweeper: find stale items: %w", err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var c candidate
		var dispatched sql.NullBool
		if err := rows.Scan(&c.org, &c.job, &c.item, &c.integration, &c.user, &c.link, &c.group, &c.jobKind,
			&c.rowID, &c.kind, &c.payload, &c.taskUUID, &dispatched, &c.attempts); err != nil {
			return nil, fmt.Errorf("sweeper: scan: %w", err)
		}
		c.dispatched = dispatched.Bool
		out = append(out, c)
	}
	return out, rows.Err()
}

// liveness asks asynq about the item's latest task. An undispatched row is
// live: the relay will send it (when Redis is down, it waits, and so do we).
func (s *Sweeper) liveness(c candidate) (reason string, live bool, err error) {
	if !c.rowID.Valid {
		return "no outbox row left", false, nil
	}
	if !c.dispatched {
		return "", true, nil
	}
	info, err := s.cfg.Inspector.GetTaskInfo(s.cfg.Queue, outbox.TaskID(c.taskUUID.UUID))
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return "task missing", false, nil
	case err != nil:
		return "", false, fmt.Errorf("sweeper: inspect task of item %s: %w", c.item, err)
	}
	switch info.State {
	case asynq.TaskStateCompleted:
		return "task completed", false, nil
	case asynq.TaskStateArchived:
		return "task archived", false, nil
	}
	return "", true, nil
}

// resend writes a new outbox row for the item, or fails the item once its
// work was lost MaxRedispatch times. It reports whether it changed the job.
func (s *Sweeper) resend(ctx context.Context, conn *sql.Conn, c candidate, reason string, res *Result) (jobChanged bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sweeper: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// Under the item's lock, after the task was inspected: a handler that
	// finished the task committed the item first, so PENDING here is real.
	var status string
	var latest sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT status, (SELECT max(id) FROM outbox WHERE job_item_id = $1)
		FROM job_items WHERE id = $1 FOR UPDATE`, c.item).Scan(&status, &latest)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sweeper: lock item %s: %w", c.item, err)
	}
	if status != "PENDING" || latest != c.rowID {
		return false, nil // settled meanwhile, or someone sent it again
	}
	log := s.cfg.Logger.With("job", string(c.job), "item", string(c.item), "integration", string(c.integration),
		"org", string(c.org), "reason", reason, "lost", c.attempts)
	if c.rowID.Valid {
		log = log.With("task", outbox.TaskID(c.taskUUID.UUID))
	}
	kind, payload, rebuilt := c.kind.String, c.payload, true
	if !c.rowID.Valid {
		// Its row was pruned or never recorded the item: a reconcile reads
		// current state, so its payload is rebuilt from the item's ids. A
		// password push cannot be: the sealed password went with its row.
		kind, payload, rebuilt, err = rebuild(c)
		if err != nil {
			return false, err
		}
	}
	if c.attempts > s.cfg.MaxRedispatch || !rebuilt {
		if !rebuilt {
			reason += "; a password push cannot be rebuilt without its row"
		}
		if err := s.giveUp(ctx, tx, c, reason); err != nil {
			return false, err
		}
		if err := tx.Commit(); err != nil {
			return false, fmt.Errorf("sweeper: commit: %w", err)
		}
		res.Failed++
		log.Error("sweeper: work lost; item failed (TASK_LOST)")
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (organization_id, kind, payload, created_at, job_item_id)
		VALUES ($1, $2, $3, now(), $4)`, c.org, kind, payload, c.item); err != nil {
		return false, fmt.Errorf("sweeper: write outbox: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, outbox.Channel); err != nil {
		return false, fmt.Errorf("sweeper: notify relay: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sweeper: commit: %w", err)
	}
	res.Redispatched++
	log.Warn("sweeper: work lost; re-dispatched")
	return false, nil
}

// giveUp fails the item through jobs' completion SQL (counters and job status
// move together), on the sweep's transaction.
func (s *Sweeper) giveUp(ctx context.Context, tx *sql.Tx, c candidate, reason string) error {
	res, err := tx.ExecContext(ctx, `UPDATE job_items SET status = 'FAILED', result = $3, error_code = 'TASK_LOST',
		error_message = $4, updated_at = now() WHERE id = $1 AND organization_id = $2 AND status = 'PENDING'`,
		c.item, c.org, jobs.ResultError,
		fmt.Sprintf("the work for this item was lost %d times (%s); resync the user to try again", c.attempts, reason))
	if err != nil {
		return fmt.Errorf("sweeper: fail item %s: %w", c.item, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return jobs.AdvanceJob(ctx, tx, c.org, c.job, true, time.Now())
}

// rebuild makes the task of an item whose outbox row is gone, from the item's
// ids. ok is false when the task carried data the item does not hold.
func rebuild(c candidate) (kind string, payload []byte, ok bool, err error) {
	switch {
	case c.jobKind == jobs.JobPasswordSet || c.jobKind == jobs.JobPasswordLogin:
		return "", nil, false, nil
	case c.group.Valid && c.group.String != "":
		payload, err = json.Marshal(jobs.ReconcileGroup{OrgID: c.org, IntegrationID: c.integration,
			GroupID: pulid.ID(c.group.String), LinkID: pulid.ID(c.link.String), JobID: c.job, ItemID: c.item})
		return jobs.KindReconcileGroup, payload, true, err
	default:
		payload, err = json.Marshal(jobs.ReconcileUser{OrgID: c.org, IntegrationID: c.integration,
			UserID: pulid.ID(c.user.String), LinkID: pulid.ID(c.link.String), JobID: c.job, ItemID: c.item})
		return jobs.KindReconcileUser, payload, true, err
	}
}

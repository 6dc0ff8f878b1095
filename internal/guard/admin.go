package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/deprovisionbatch"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/txn"
)

// Service holds the administrator's levers on held disables: approveJob and
// cancelJob. Tenancy is the privacy policy's: another organization's job is
// not found.
type Service struct {
	client    *ent.Client
	publisher *pubsub.Publisher
	log       *slog.Logger
	now       func() time.Time
}

// NewService returns a Service; publisher may be nil (no live update).
func NewService(client *ent.Client, publisher *pubsub.Publisher, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{client: client, publisher: publisher, log: logger.With("component", "guard"), now: time.Now}
}

// Approve lets the job's held disables run: its batches become APPROVED
// (later items of the job pass the guard too), its held items PENDING again
// with a new task each, the job RUNNING. A job not AWAITING_APPROVAL is
// refused with FAILED_PRECONDITION; a read-only key with FORBIDDEN.
func (s *Service) Approve(ctx context.Context, id pulid.ID) (*ent.Job, error) {
	return s.decide(ctx, id, true)
}

// Cancel drops the job's held disables: its batches become CANCELLED (later
// items of the job skip their disable too), its held items end SUCCEEDED with
// result SKIPPED, and nothing is disabled. The job's other work goes on.
func (s *Service) Cancel(ctx context.Context, id pulid.ID) (*ent.Job, error) {
	return s.decide(ctx, id, false)
}

func (s *Service) decide(ctx context.Context, id pulid.ID, approve bool) (*ent.Job, error) {
	if v, ok := auth.ViewerFrom(ctx); !ok || !v.CanWrite() {
		return nil, gqlerr.Newf(gqlerr.Forbidden, "", "the API key is read-only")
	}
	var out *ent.Job
	err := txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		// The decisions first, FOR UPDATE: this waits for reconciles that
		// read one (FOR SHARE) and may be holding an item right now, so every
		// held item is seen below. Always before the job row, in the order
		// those reconciles lock them, so the two never deadlock.
		if _, err := c.DeprovisionBatch.Query().Where(deprovisionbatch.JobID(id)).ForUpdate().All(ctx); err != nil {
			return fmt.Errorf("guard: lock decisions: %w", err)
		}
		// FOR UPDATE: a concurrent approve and cancel of one job serialise;
		// the second finds it no longer AWAITING_APPROVAL.
		j, err := c.Job.Query().Where(job.ID(id)).ForUpdate().Only(ctx)
		if err != nil {
			if ent.IsNotFound(err) {
				return gqlerr.NotFoundf("id", "job %s not found", id)
			}
			return err
		}
		if j.Status != job.StatusAWAITING_APPROVAL {
			return gqlerr.Newf(gqlerr.FailedPrecondition, "id", "job %s is %s, not AWAITING_APPROVAL: there is nothing to approve or cancel", id, j.Status)
		}
		now := s.now()
		status, event := deprovisionbatch.StatusAPPROVED, EventApproved
		if !approve {
			status, event = deprovisionbatch.StatusCANCELLED, EventCancelled
		}
		batches, err := c.DeprovisionBatch.Query().Where(deprovisionbatch.JobID(id),
			deprovisionbatch.StatusEQ(deprovisionbatch.StatusAWAITING_APPROVAL)).All(ctx)
		if err != nil {
			return fmt.Errorf("guard: read decisions: %w", err)
		}
		if err := c.DeprovisionBatch.Update().Where(deprovisionbatch.JobID(id),
			deprovisionbatch.StatusEQ(deprovisionbatch.StatusAWAITING_APPROVAL)).
			SetStatus(status).SetDecidedAt(now).Exec(ctx); err != nil {
			return fmt.Errorf("guard: record decision: %w", err)
		}
		held, err := c.JobItem.Query().Where(jobitem.JobID(id), jobitem.StatusEQ(jobitem.StatusAWAITING_APPROVAL)).
			Order(ent.Asc(jobitem.FieldID)).All(ctx)
		if err != nil {
			return fmt.Errorf("guard: read held items: %w", err)
		}
		if approve {
			err = release(ctx, c, j, held, now)
		} else {
			err = drop(ctx, c, j, held, now)
		}
		if err != nil {
			return err
		}
		for _, b := range batches {
			verb := "approved"
			if !approve {
				verb = "cancelled"
			}
			detail := fmt.Sprintf("an administrator %s the %d held disables of job %s", verb, countIn(held, b.IntegrationID), id)
			if v, ok := auth.ViewerFrom(ctx); ok && v.KeyID != "" {
				detail += " (API key " + string(v.KeyID) + ")"
			}
			if err := c.Event.Create().SetOrganizationID(j.OrganizationID).SetType(event).
				SetIntegrationID(b.IntegrationID).SetJobID(id).SetDetail(detail).Exec(ctx); err != nil {
				return fmt.Errorf("guard: record event: %w", err)
			}
		}
		if out, err = c.Job.Get(ctx, id); err != nil {
			return err
		}
		// Subscribers see the new status once it is committed.
		if tx := ent.TxFromContext(ctx); tx != nil {
			org := j.OrganizationID
			tx.OnCommit(func(next ent.Committer) ent.Committer {
				return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
					if err := next.Commit(ctx, tx); err != nil {
						return err
					}
					s.publish(ctx, org, id)
					return nil
				})
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ent.TxFromContext(ctx) == nil {
		out = out.Unwrap()
	}
	return out, nil
}

// publish is best effort: a lost message costs only liveness.
func (s *Service) publish(ctx context.Context, orgID, jobID pulid.ID) {
	if err := jobs.PublishJob(auth.SystemContext(ctx), s.client, s.publisher, orgID, jobID); err != nil {
		s.log.Warn("guard: publish job", "err", err)
	}
}

func countIn(items []*ent.JobItem, integrationID pulid.ID) int {
	n := 0
	for _, it := range items {
		if it.IntegrationID == integrationID {
			n++
		}
	}
	return n
}

// release makes the held items PENDING again and sends their tasks anew
// (outbox rows tied to the items, so the sweeper also finds them).
func release(ctx context.Context, c *ent.Client, j *ent.Job, held []*ent.JobItem, now time.Time) error {
	ids := make([]pulid.ID, len(held))
	rows := make([]*ent.OutboxCreate, len(held))
	// Forced jobs (resync, retry) re-read the remote account; keep that.
	force := slices.Contains([]string{jobs.JobRetry, jobs.JobResyncUsers, jobs.JobResyncIntegration}, j.Kind)
	for i, it := range held {
		ids[i] = it.ID
		t := jobs.ReconcileUser{OrgID: j.OrganizationID, IntegrationID: it.IntegrationID, JobID: j.ID, ItemID: it.ID, Force: force}
		if it.UserID != nil {
			t.UserID = *it.UserID
		}
		if it.LinkID != nil {
			t.LinkID = *it.LinkID
		}
		payload, err := json.Marshal(t)
		if err != nil {
			return err
		}
		rows[i] = c.Outbox.Create().SetOrganizationID(j.OrganizationID).SetKind(jobs.KindReconcileUser).
			SetPayload(payload).SetJobItemID(it.ID)
	}
	for chunk := range slices.Chunk(ids, 1000) {
		if err := c.JobItem.Update().Where(jobitem.IDIn(chunk...), jobitem.StatusEQ(jobitem.StatusAWAITING_APPROVAL)).
			SetStatus(jobitem.StatusPENDING).SetUpdatedAt(now).Exec(ctx); err != nil {
			return fmt.Errorf("guard: release items: %w", err)
		}
	}
	for chunk := range slices.Chunk(rows, 1000) {
		if err := c.Outbox.CreateBulk(chunk...).Exec(ctx); err != nil {
			return fmt.Errorf("guard: write outbox: %w", err)
		}
	}
	if _, err := c.ExecContext(ctx, `UPDATE jobs SET status = 'RUNNING', updated_at = $2 WHERE id = $1`, j.ID, now); err != nil {
		return fmt.Errorf("guard: job running: %w", err)
	}
	if len(rows) > 0 {
		if _, err := c.ExecContext(ctx, "SELECT pg_notify($1, '')", outbox.Channel); err != nil {
			return fmt.Errorf("guard: notify relay: %w", err)
		}
	}
	return nil
}

// drop ends the held items SKIPPED and counts them done in one statement,
// settling the job when nothing else is left.
func drop(ctx context.Context, c *ent.Client, j *ent.Job, held []*ent.JobItem, now time.Time) error {
	ids := make([]pulid.ID, len(held))
	for i, it := range held {
		ids[i] = it.ID
	}
	n := 0
	for chunk := range slices.Chunk(ids, 1000) {
		k, err := c.JobItem.Update().Where(jobitem.IDIn(chunk...), jobitem.StatusEQ(jobitem.StatusAWAITING_APPROVAL)).
			SetStatus(jobitem.StatusSUCCEEDED).SetResult(jobs.ResultSkipped).
			SetErrorMessage(provision.ReasonDisableCancelled).SetUpdatedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("guard: drop items: %w", err)
		}
		n += k
	}
	// Same settling rule as jobs.AdvanceJob, for n items at once.
	_, err := c.ExecContext(ctx, `UPDATE jobs SET
		   done = done + $2,
		   updated_at = $3,
		   status = CASE
		     WHEN done + $2 < total THEN 'RUNNING'
		     WHEN failed >= total THEN 'FAILED'
		     WHEN failed = 0 THEN 'SUCCEEDED'
		     ELSE 'PARTIAL' END,
		   finished_at = CASE WHEN done + $2 >= total THEN $3 ELSE finished_at END
		 WHERE id = $1`, j.ID, n, now)
	if err != nil {
		return fmt.Errorf("guard: settle job %s: %w", j.ID, err)
	}
	return nil
}

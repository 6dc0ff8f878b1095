// Package recovery holds the operator's levers for work that did not end as it
// should (issue 8): re-running the failed items of a job, and forcing a
// reconcile that re-reads the remote accounts when the directory did not change
// but the tenant did. Like every other write it only records a job and its
// outbox rows in the caller's transaction; the worker does the remote part.
package recovery

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	_ "github.com/dirsync/dirsync/ent/runtime" // registers schema hooks and privacy policies
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/userbinding"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/txn"
)

// Service performs the recovery writes. Tenancy is the privacy policy's: an id
// of another organization is not found.
type Service struct {
	client *ent.Client
}

// New returns a Service.
func New(client *ent.Client) *Service { return &Service{client: client} }

// RetryJob re-runs the FAILED items of a FAILED or PARTIAL job as a new job of
// kind RETRY that names the original (retry_of_id). The original keeps its
// items, counters and status as they ended: its history stays true, and live
// subscribers, who drop updates whose progress goes back, are not confused.
// A job still QUEUED or RUNNING, or one that SUCCEEDED, is refused with
// FAILED_PRECONDITION. While a retry of the job is still QUEUED or RUNNING it
// is returned instead of a second one (a double click starts nothing). Each
// retried item is a forced reconcile: the remote account is read again.
func (s *Service) RetryJob(ctx context.Context, id pulid.ID) (retried, started *ent.Job, err error) {
	err = txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		// FOR UPDATE: two concurrent retries of one job serialise here, so the
		// second sees the first one's job.
		j, err := c.Job.Query().Where(job.ID(id)).ForUpdate().Only(ctx)
		if err != nil {
			if ent.IsNotFound(err) {
				return gqlerr.NotFoundf("id", "job %s not found", id)
			}
			return err
		}
		retried = j
		switch j.Status {
		case job.StatusQUEUED, job.StatusRUNNING:
			return gqlerr.Newf(gqlerr.FailedPrecondition, "id", "job %s is still %s: wait until it ends", id, j.Status)
		case job.StatusSUCCEEDED:
			return gqlerr.Newf(gqlerr.FailedPrecondition, "id", "job %s succeeded: nothing to retry", id)
		}
		running, err := c.Job.Query().Where(job.RetryOfID(id), job.StatusIn(job.StatusQUEUED, job.StatusRUNNING)).
			Order(ent.Desc(job.FieldCreatedAt)).First(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return fmt.Errorf("recovery: reading retries: %w", err)
		}
		if running != nil {
			started = running
			return nil
		}
		items, err := c.JobItem.Query().Where(jobitem.JobID(id), jobitem.StatusEQ(jobitem.StatusFAILED)).
			Order(ent.Asc(jobitem.FieldID)).All(ctx)
		if err != nil {
			return fmt.Errorf("recovery: reading failed items: %w", err)
		}
		authorized, err := authorizedAmong(ctx, c, items)
		if err != nil {
			return err
		}
		targets := make([]jobs.Target, 0, len(items))
		for _, it := range items {
			if !authorized[it.IntegrationID] {
				continue
			}
			t := jobs.Target{IntegrationID: it.IntegrationID, Force: true}
			if it.UserID != nil {
				t.UserID = *it.UserID
			}
			if it.LinkID != nil {
				t.LinkID = *it.LinkID
			}
			targets = append(targets, t)
		}
		if len(targets) == 0 {
			return gqlerr.Newf(gqlerr.FailedPrecondition, "id",
				"the failed items of job %s belong to integrations that are no longer authorized: authorize them first", id)
		}
		integrationID := pulid.ID("")
		if j.IntegrationID != nil {
			integrationID = *j.IntegrationID
		}
		started, err = jobs.Start(ctx, c, j.OrganizationID, jobs.JobRetry, integrationID, targets, jobs.RetryOf(id))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return detach(ctx, retried), detach(ctx, started), nil
}

// authorizedAmong reports which integrations of the items are AUTHORIZED:
// nothing may be sent to another (I5).
func authorizedAmong(ctx context.Context, c *ent.Client, items []*ent.JobItem) (map[pulid.ID]bool, error) {
	ids := make([]pulid.ID, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.IntegrationID)
	}
	found, err := c.Integration.Query().
		Where(integration.IDIn(ids...), integration.StatusEQ(integration.StatusAUTHORIZED)).IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("recovery: reading integrations: %w", err)
	}
	out := make(map[pulid.ID]bool, len(found))
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

// ResyncUsers forces a reconcile of users in one AUTHORIZED integration: each
// linked remote account is read and whatever drifted from what the directory
// wants is written again (an account someone disabled, an exported attribute
// someone edited in the tenant); users not provisioned yet are provisioned as
// usual. userIDs nil: every user connected to the integration (bound directly
// or through a bound group). Given ids must be users connected to it or still
// linked in it; an empty list starts nothing.
func (s *Service) ResyncUsers(ctx context.Context, integrationID pulid.ID, userIDs []pulid.ID) (*ent.Job, error) {
	all := userIDs == nil
	ids, err := directory.UniqueIDs("userIDs", userIDs)
	if err != nil {
		return nil, err
	}
	return s.resync(ctx, integrationID, "integrationID", jobs.JobResyncUsers, func(ctx context.Context, c *ent.Client, in *ent.Integration) ([]jobs.Target, error) {
		connected := user.Or(
			user.HasBindingsWith(userbinding.IntegrationID(in.ID)),
			user.HasGroupsWith(usergroup.HasBindingsWith(groupbinding.IntegrationID(in.ID))),
		)
		q := c.User.Query()
		switch {
		case all:
			q = q.Where(connected)
		case len(ids) == 0:
			return nil, nil
		default:
			if err := checkUsers(ctx, c, in, ids); err != nil {
				return nil, err
			}
			q = q.Where(user.IDIn(ids...))
		}
		users, err := q.Order(ent.Asc(user.FieldID)).IDs(ctx)
		if err != nil {
			return nil, fmt.Errorf("recovery: reading users: %w", err)
		}
		out := make([]jobs.Target, len(users))
		for i, u := range users {
			out[i] = jobs.Target{IntegrationID: in.ID, UserID: u}
		}
		return out, nil
	})
}

// checkUsers refuses ids that are not users of the caller (NOT_FOUND) or that
// have nothing to do with the integration (BAD_USER_INPUT): a resync there
// could only ever answer "not connected".
func checkUsers(ctx context.Context, c *ent.Client, in *ent.Integration, ids []pulid.ID) error {
	found, err := c.User.Query().Where(user.IDIn(ids...)).IDs(ctx)
	if err != nil {
		return fmt.Errorf("recovery: reading users: %w", err)
	}
	related, err := c.User.Query().Where(user.IDIn(ids...), user.Or(
		user.HasBindingsWith(userbinding.IntegrationID(in.ID)),
		user.HasGroupsWith(usergroup.HasBindingsWith(groupbinding.IntegrationID(in.ID))),
		user.HasLinksWith(remotelink.IntegrationID(in.ID)),
	)).IDs(ctx)
	if err != nil {
		return fmt.Errorf("recovery: reading connections: %w", err)
	}
	exists, rel := set(found), set(related)
	for _, id := range ids {
		switch {
		case !exists[id]:
			return gqlerr.NotFoundf("userIDs", "user %s not found", id)
		case !rel[id]:
			return gqlerr.BadInput("userIDs", "user %s is neither connected to nor provisioned in integration %q", id, in.Name)
		}
	}
	return nil
}

// ResyncIntegration forces a reconcile of everything the integration manages:
// its connected users and every user — deleted ones included — it still holds
// a managed remote account for, so an account someone re-enabled after we
// deprovisioned it is disabled again.
func (s *Service) ResyncIntegration(ctx context.Context, id pulid.ID) (*ent.Job, error) {
	return s.resync(ctx, id, "id", jobs.JobResyncIntegration, func(ctx context.Context, c *ent.Client, in *ent.Integration) ([]jobs.Target, error) {
		ts, err := connect.IntegrationTargets(ctx, c, in.ID)
		if err != nil {
			return nil, err
		}
		// Managed groups a drift round saw deleted in the tenant are resolved
		// again (docs/drift.md); the other groups need no forced pass.
		gone, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.KindEQ(remotelink.KindGROUP),
			remotelink.StatusEQ(remotelink.StatusREMOTE_DELETED), remotelink.GroupIDNotNil()).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("recovery: reading deleted groups: %w", err)
		}
		for _, l := range gone {
			ts = append(ts, jobs.Target{IntegrationID: in.ID, GroupID: *l.GroupID, Group: true})
		}
		return ts, nil
	})
}

// resync is the frame of both resyncs: the integration locked FOR SHARE (a
// concurrent de-authorization waits), AUTHORIZED or FAILED_PRECONDITION, one
// job whose every item is forced.
func (s *Service) resync(ctx context.Context, id pulid.ID, field, kind string,
	targets func(ctx context.Context, c *ent.Client, in *ent.Integration) ([]jobs.Target, error),
) (*ent.Job, error) {
	var started *ent.Job
	err := txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		in, err := c.Integration.Query().Where(integration.ID(id)).ForShare().Only(ctx)
		if err != nil {
			if ent.IsNotFound(err) {
				return gqlerr.NotFoundf(field, "integration %s not found", id)
			}
			return err
		}
		if in.Status != integration.StatusAUTHORIZED {
			return gqlerr.Newf(gqlerr.FailedPrecondition, field, "integration %q is not authorized: authorize it first", in.Name)
		}
		ts, err := targets(ctx, c, in)
		if err != nil {
			return err
		}
		for i := range ts {
			ts[i].Force = true
		}
		started, err = jobs.Start(ctx, c, in.OrganizationID, kind, in.ID, ts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return detach(ctx, started), nil
}

func set(ids []pulid.ID) map[pulid.ID]bool {
	out := make(map[pulid.ID]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// detach makes a job returned from its own transaction usable afterwards;
// under the request's transaction it stays attached to it.
func detach(ctx context.Context, j *ent.Job) *ent.Job {
	if j != nil && ent.TxFromContext(ctx) == nil {
		return j.Unwrap()
	}
	return j
}

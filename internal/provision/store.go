package provision

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
)

// saveLink writes the link as the outcome leaves it.
func (r *Reconciler) saveLink(ctx context.Context, c *ent.Client, st *state, o outcome) error {
	s := o.link
	now := r.cfg.Now()
	if o.dropLink {
		if st.link == nil {
			return nil
		}
		if err := c.RemoteLink.DeleteOneID(st.link.ID).Exec(ctx); err != nil && !ent.IsNotFound(err) {
			return fmt.Errorf("provision: drop link: %w", err)
		}
		return nil
	}
	if st.link == nil && st.u == nil {
		return nil
	}
	status := remotelink.Status(s.Status)
	if st.link != nil {
		up := c.RemoteLink.UpdateOneID(st.link.ID).
			SetRemoteID(s.RemoteID).SetUpn(s.UPN).SetStatus(status).SetStatusReason(jobs.Truncate(s.Reason, 2000)).
			SetTakenOver(s.TakenOver).SetAppliedHash(s.AppliedHash).
			SetLastErrorCode(jobs.Truncate(s.ErrCode, 200)).SetLastErrorMessage(jobs.Truncate(s.ErrMessage, 2000)).
			SetLastErrorRequestID(jobs.Truncate(s.ErrRequestID, 100)).SetLastSyncedAt(now).SetOwnerMarked(s.OwnerMarked)
		if s.RemoteEnabled != nil {
			up.SetRemoteEnabled(*s.RemoteEnabled)
		} else {
			up.ClearRemoteEnabled()
		}
		if s.RemoteCreatedAt != nil {
			up.SetRemoteCreatedAt(*s.RemoteCreatedAt)
		} else {
			up.ClearRemoteCreatedAt()
		}
		if clearsDrift(st, o) {
			up.ClearDrift()
		}
		if err := up.Exec(ctx); err != nil {
			return fmt.Errorf("provision: save link: %w", err)
		}
		return nil
	}
	err := c.RemoteLink.Create().SetOrganizationID(st.t.OrgID).SetIntegrationID(st.in.ID).SetUserID(st.u.ID).
		SetRemoteID(s.RemoteID).SetUpn(s.UPN).SetStatus(status).SetStatusReason(jobs.Truncate(s.Reason, 2000)).
		SetTakenOver(s.TakenOver).SetAppliedHash(s.AppliedHash).
		SetLastErrorCode(jobs.Truncate(s.ErrCode, 200)).SetLastErrorMessage(jobs.Truncate(s.ErrMessage, 2000)).
		SetLastErrorRequestID(jobs.Truncate(s.ErrRequestID, 100)).SetLastSyncedAt(now).
		SetNillableRemoteEnabled(s.RemoteEnabled).SetNillableRemoteCreatedAt(s.RemoteCreatedAt).
		SetOwnerMarked(s.OwnerMarked).Exec(ctx)
	if err != nil {
		return fmt.Errorf("provision: create link: %w", err)
	}
	return nil
}

func (r *Reconciler) publishJob(ctx context.Context, log *slog.Logger, orgID, jobID pulid.ID) {
	if err := jobs.PublishJob(ctx, r.cfg.Ent, r.cfg.Publisher, orgID, jobID); err != nil {
		log.Warn("provision: publish job", "err", err)
	}
}

func (r *Reconciler) publishEvent(ctx context.Context, log *slog.Logger, ev *ent.Event) {
	if r.cfg.Publisher == nil {
		return
	}
	m, err := jobs.EventMessage(ev)
	if err == nil {
		err = r.cfg.Publisher.Publish(ctx, m)
	}
	if err != nil {
		log.Warn("provision: publish event", "err", err)
	}
}

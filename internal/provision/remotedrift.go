package provision

import (
	"context"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/internal/jobs"
)

// StatusRemoteDeleted: a drift round saw the linked account deleted in the
// tenant (docs/drift.md). Only a forced reconcile (resyncUsers,
// resyncIntegration, retryJob) creates or takes over an account again.
const StatusRemoteDeleted = "REMOTE_DELETED"

// Expect is the plan a reconcile of (u, link) in integration in would make
// now, read on c and changing nothing: a drift round compares what the tenant
// shows with it. link may be nil.
func (r *Reconciler) Expect(ctx context.Context, c *ent.Client, in *ent.Integration, u *ent.User, link *ent.RemoteLink) (Plan, error) {
	st := &state{t: jobs.ReconcileUser{OrgID: in.OrganizationID, IntegrationID: in.ID, UserID: u.ID},
		in: in, u: u, userID: u.ID, link: link}
	d, _, _, err := r.desired(ctx, c, st)
	if err != nil {
		return Plan{}, err
	}
	return Decide(d, linkStateOf(link).plan()), nil
}

// remoteDeleted settles a reconcile of a REMOTE_DELETED link before any
// plan: an ordinary reconcile leaves it alone (stop), so a directory edit
// never silently re-creates an account someone deleted in the tenant; a
// forced one forgets the deleted account and converges from scratch (P1).
// A deleted user's link holds nothing worth keeping.
func remoteDeleted(st *state, o *outcome) (stop bool) {
	if st.link == nil || st.link.Status != remotelink.StatusREMOTE_DELETED {
		return false
	}
	if st.t.Force {
		o.link.forgetRemote()
		o.link.Status = StatusPending
		return false
	}
	o.result = jobs.ResultSkipped
	if st.u == nil {
		o.dropLink, o.result = true, jobs.ResultUnchanged
		return true
	}
	o.skipLink = true
	return true
}

// clearsDrift: after this outcome the link no longer shows drift — the
// reconcile wrote the directory's values, or it was forced and so compared
// every exported property with the tenant (and re-applied what differed).
func clearsDrift(st *state, o outcome) bool {
	if o.failed || o.transient != nil || st.link == nil || st.link.Drift == nil {
		return false
	}
	switch o.result {
	case jobs.ResultCreated, jobs.ResultTakenOver, jobs.ResultUpdated, jobs.ResultDisabled, jobs.ResultEnabled:
		return true
	}
	return st.t.Force
}

// ReasonRemoteDeleted is the status reason of a REMOTE_DELETED link.
const ReasonRemoteDeleted = "deleted in the tenant: a resync (resyncUsers, resyncIntegration) creates it again"

// goneRemotely: a write found the linked account deleted in the tenant
// before any drift round saw it. Like a round, an ordinary reconcile marks
// the link REMOTE_DELETED and creates nothing (stop); a forced one goes on
// to create or take over an account again.
func goneRemotely(st *state, o *outcome) (stop bool) {
	if st.t.Force {
		return false
	}
	o.link.Status, o.link.Reason = StatusRemoteDeleted, ReasonRemoteDeleted
	o.clearError()
	o.deprovision = false
	o.result = jobs.ResultSkipped
	return true
}

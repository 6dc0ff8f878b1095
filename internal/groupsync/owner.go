package groupsync

import (
	"context"

	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/ownership"
)

// The ownership marker on managed security groups (internal/ownership,
// docs/ownership.md): a group dirsync creates or takes over (G2) carries
// it; taking over the only same-name group marked by another integration
// or deployment fails the item naming the owner unless the binding forced
// it; unbinding with releaseOwnership removes ours.

func (r *Reconciler) marker(st *state) ownership.Marker {
	return ownership.Marker{Deployment: r.cfg.Deployment, OrganizationID: string(st.in.OrganizationID),
		IntegrationID: string(st.in.ID), IntegrationName: st.in.Name}
}

// claim checks and marks a group about to be taken over. stop: refused or
// failed, the outcome says why.
func (r *Reconciler) claim(ctx context.Context, gc *msgraph.Client, st *state, o *outcome, id string) (stop bool) {
	if r.cfg.Deployment == "" {
		return false
	}
	prev, err := ownership.Claim(ctx, gc, "groups", id, r.marker(st), st.t.ForceTakeover, r.cfg.Now())
	if e, owned := ownership.IsOwned(err); owned {
		o.failWith(ownership.CodeOwnedElsewhere, e.Error(), "")
		return true
	}
	if err != nil {
		o.remoteErr(err)
		return true
	}
	o.l.OwnerMarked = true
	if prev != nil && !prev.Same(r.marker(st)) {
		o.note("forced: the group was managed by %s", prev.String())
	}
	return false
}

// ensureMarked marks a managed group that is not marked yet (created by this
// pass, or linked before markers existed). Best effort: a failure is logged
// and the next pass tries again.
func (r *Reconciler) ensureMarked(ctx context.Context, gc *msgraph.Client, st *state, o *outcome) {
	if r.cfg.Deployment == "" || o.l.OwnerMarked || o.l.RemoteID == "" || o.transient != nil || o.failed {
		return
	}
	if _, err := ownership.Claim(ctx, gc, "groups", o.l.RemoteID, r.marker(st), false, r.cfg.Now()); err != nil {
		r.log.Warn("groupsync: ownership marker not written", "remote", o.l.RemoteID, "err", err)
		return
	}
	o.l.OwnerMarked = true
}

// releaseMarker removes our marker from a group this integration stopped
// managing, when the unbinding asked for it.
func (r *Reconciler) releaseMarker(ctx context.Context, st *state, o *outcome) {
	if r.cfg.Deployment == "" || !st.t.ReleaseOwnership || st.in == nil || st.link == nil ||
		!o.l.OwnerMarked || o.l.RemoteID == "" || o.l.Status != string(remotelink.StatusOUT_OF_SCOPE) {
		return
	}
	gc, err := r.cfg.Tenants.Client(st.in)
	if err == nil {
		err = ownership.Release(ctx, gc, "groups", o.l.RemoteID, r.marker(st))
	}
	if err != nil {
		r.log.Warn("groupsync: ownership marker not released", "remote", o.l.RemoteID, "err", err)
		return
	}
	o.l.OwnerMarked = false
	o.note("ownership marker released")
}

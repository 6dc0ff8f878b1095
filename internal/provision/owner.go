package provision

import (
	"context"

	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/ownership"
	"github.com/dirsync/dirsync/internal/upn"
)

// The ownership marker (internal/ownership, docs/ownership.md) from the
// reconcile's side: created accounts are marked, takeovers check and mark,
// linked accounts not marked yet (older links) are marked on their next
// reconcile, and an unbind asked to release removes it.

func (a *applier) marker() ownership.Marker {
	in := a.st.in
	return ownership.Marker{Deployment: a.r.cfg.Deployment, OrganizationID: string(in.OrganizationID),
		IntegrationID: string(in.ID), IntegrationName: in.Name}
}

func (a *applier) marking() bool { return a.r.cfg.Deployment != "" }

// claim is the takeover's check (P1): an account another integration or
// deployment marked is refused per item with an error naming the owner,
// unless the binding forced it. stop: the outcome says why.
func (a *applier) claim(ctx context.Context, gc *msgraph.Client, remoteID string) (stop bool) {
	if !a.marking() {
		return false
	}
	prev, err := ownership.Claim(ctx, gc, "users", remoteID, a.marker(), a.st.t.ForceTakeover, a.now)
	if e, owned := ownership.IsOwned(err); owned {
		a.o.failWith(ownership.CodeOwnedElsewhere, e.Error(), "")
		return true
	}
	if err != nil {
		a.remoteErr(err)
		return true
	}
	a.o.link.OwnerMarked = true
	if prev != nil && !prev.Same(a.marker()) {
		a.forcedFrom = prev
	}
	return false
}

// markCreated marks an account this reconcile created. A failure does not
// undo the create: the link stays unmarked and the next reconcile marks it.
func (a *applier) markCreated(ctx context.Context, gc *msgraph.Client, remoteID string) {
	if !a.marking() {
		return
	}
	if err := ownership.Mark(ctx, gc, "users", remoteID, a.marker(), a.now); err != nil {
		a.r.log.Warn("provision: ownership marker not written, next reconcile retries", "remote", remoteID, "err", err)
		return
	}
	a.o.link.OwnerMarked = true
}

// ownership runs after a successful apply: it marks a managed account not
// marked yet and, when the task asks (unbind with releaseOwnership), removes
// our marker from an account this integration stopped managing. Failures
// are logged and retried by a later reconcile; they never fail the item.
func (a *applier) ownership(ctx context.Context) {
	o := a.o
	if !a.marking() || o.failed || o.transient != nil || o.dropLink || o.link.RemoteID == "" {
		return
	}
	if a.forcedFrom != nil {
		o.detail += "; forced: it was managed by " + a.forcedFrom.String()
	}
	wanted := a.d.Exists && a.d.Connected && a.d.Owner && a.d.Decision.Scope == upn.InScope
	gc, err := a.graph()
	if err != nil {
		return
	}
	switch {
	case wanted && !o.link.OwnerMarked && o.link.Status == StatusInSync:
		_, err := ownership.Claim(a.fresh(ctx), gc, "users", o.link.RemoteID, a.marker(), false, a.now)
		if err == nil {
			o.link.OwnerMarked = true
		} else {
			a.r.log.Warn("provision: ownership marker not written", "remote", o.link.RemoteID, "err", err)
		}
	case !wanted && o.link.OwnerMarked && a.st.t.ReleaseOwnership:
		if err := ownership.Release(a.fresh(ctx), gc, "users", o.link.RemoteID, a.marker()); err != nil {
			a.r.log.Warn("provision: ownership marker not released", "remote", o.link.RemoteID, "err", err)
			return
		}
		o.link.OwnerMarked = false
		o.detail += "; ownership marker released"
	}
}

package groupsync

import (
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/internal/jobs"
)

// remoteDeleted: a drift round saw the managed remote group deleted in the
// tenant (REMOTE_DELETED). An ordinary pass leaves it so (true: nothing more
// to do), so no directory edit re-creates a group an admin deleted; a forced
// one (resyncIntegration) forgets it and resolves again (G2). Reports false
// when the link is not REMOTE_DELETED or the pass goes on.
func remoteDeleted(st *state, o *outcome) bool {
	if st.link == nil || st.link.Status != remotelink.StatusREMOTE_DELETED {
		return false
	}
	if st.t.Force {
		o.note("the remote group %s was deleted in the tenant: resolving it again", o.l.RemoteID)
		o.l.RemoteID, o.l.Hash, o.l.TakenOver, o.l.CreatedAt, o.l.MemberIDs, o.l.InSync = "", "", false, nil, nil, 0
		o.l.OwnerMarked = false
		return false
	}
	o.result, o.skipLink = jobs.ResultSkipped, true
	return true
}

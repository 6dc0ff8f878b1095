package provision_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/userbinding"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/provision"
)

// X1–X4 each disable the remote account (never delete it); re-activation and
// re-connection enable it again.
func TestDeprovisioning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	x1 := e.user("x1", "x1@contoso.com", active)
	x2 := e.user("x2", "x2@contoso.com", active)
	x3 := e.user("x3", "x3@contoso.com", active)
	x4 := e.user("x4", "x4@contoso.com", active)
	g, err := e.client.UserGroup.Create().SetOrganizationID(e.org.ID).SetName("sales").AddMembers(x4).Save(e.ctx)
	require.NoError(t, err)
	require.NoError(t, e.client.GroupBinding.Create().SetOrganizationID(e.org.ID).SetIntegrationID(e.in.ID).SetGroupID(g.ID).Exec(e.ctx))
	e.bind(e.in, x1, x2, x3)
	targets, err := connect.GroupMemberTargets(e.ctx, e.client, []pulid.ID{g.ID}, e.in.ID)
	require.NoError(t, err)
	e.start(jobs.JobBindGroups, e.in.ID, targets...)
	e.run()
	for _, u := range []string{"x1", "x2", "x3", "x4"} {
		require.True(t, e.remote(e.creds.TenantID, u+"@contoso.com").AccountEnabled, u)
	}
	remoteID := map[string]string{}
	for _, u := range []*ent.User{x1, x2, x3, x4} {
		remoteID[u.Username] = e.link(e.in, u).RemoteID
	}
	changed := func(kind string, u *ent.User) *ent.Job {
		t.Helper()
		ts, err := connect.UserTargets(e.ctx, e.client, []pulid.ID{u.ID})
		require.NoError(t, err)
		return e.start(kind, "", ts...)
	}
	disabled := func(name string, j *ent.Job) {
		t.Helper()
		r := e.remote(e.creds.TenantID, name+"@contoso.com")
		require.NotNil(t, r, "%s: never deleted", name)
		require.Equal(t, remoteID[name], r.ID)
		require.False(t, r.AccountEnabled, name)
		require.Equal(t, jobs.ResultDisabled, e.items(j.ID)[0].Result, name)
	}

	// X1: suspension.
	require.NoError(t, e.client.User.UpdateOne(x1).SetState(user.StateSUSPENDED).Exec(e.ctx))
	j := changed(jobs.JobUserSuspend, x1)
	e.run()
	disabled("x1", j)
	require.False(t, *e.link(e.in, x1).RemoteEnabled)

	// X2: the direct binding removed, no group holds the user.
	_, err = e.client.UserBinding.Delete().Where(userbinding.UserID(x2.ID)).Exec(e.ctx)
	require.NoError(t, err)
	j = e.start(jobs.JobUnbindUsers, e.in.ID, jobs.Target{IntegrationID: e.in.ID, UserID: x2.ID})
	e.run()
	disabled("x2", j)
	l2 := e.link(e.in, x2)
	require.Equal(t, remotelink.StatusIN_SYNC, l2.Status)
	require.Equal(t, "not connected", l2.StatusReason)
	require.Empty(t, l2.AppliedHash, "re-connection must PATCH again")

	// X3: deletion. The link outlives the user (user_id NULL) and carries the task.
	l3 := e.link(e.in, x3)
	require.NoError(t, e.client.User.DeleteOne(x3).Exec(e.ctx))
	j = e.start(jobs.JobUserDelete, e.in.ID, jobs.Target{IntegrationID: e.in.ID, UserID: x3.ID, LinkID: l3.ID})
	e.run()
	disabled("x3", j)
	n, err := e.client.RemoteLink.Query().Where(remotelink.ID(l3.ID)).Count(e.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a deleted user's link goes once the account is off")
	evs := e.events(provision.EventUserDeprovision)
	require.Equal(t, x3.ID, *evs[len(evs)-1].UserID, "the event keeps the deleted user's id")

	// X4: the only bound group that connected the user is unbound.
	targets, err = connect.GroupMemberTargets(e.ctx, e.client, []pulid.ID{g.ID}, e.in.ID)
	require.NoError(t, err)
	_, err = e.client.GroupBinding.Delete().Where(groupbinding.GroupID(g.ID)).Exec(e.ctx)
	require.NoError(t, err)
	j = e.start(jobs.JobUnbindGroups, e.in.ID, targets...)
	e.run()
	disabled("x4", j)
	require.Len(t, e.events(provision.EventUserDeprovision), 4)

	// Repeating a deprovisioning changes nothing remote.
	e.sim.ClearRequests()
	j = e.start(jobs.JobUnbindUsers, e.in.ID, jobs.Target{IntegrationID: e.in.ID, UserID: x2.ID})
	e.run()
	require.Zero(t, e.writes("PATCH"))
	require.Equal(t, jobs.ResultUnchanged, e.items(j.ID)[0].Result)

	// Re-activation and re-connection enable the same accounts again.
	require.NoError(t, e.client.User.UpdateOne(x1).SetState(user.StateACTIVE).Exec(e.ctx))
	j1 := changed(jobs.JobUserActivate, x1)
	j2 := e.bind(e.in, x2)
	e.run()
	for name, jb := range map[string]*ent.Job{"x1": j1, "x2": j2} {
		r := e.remote(e.creds.TenantID, name+"@contoso.com")
		require.True(t, r.AccountEnabled, name)
		require.Equal(t, remoteID[name], r.ID)
		require.Equal(t, jobs.ResultEnabled, e.items(jb.ID)[0].Result, name)
	}
	require.Equal(t, 4, e.remoteCount(e.creds.TenantID), "no remote user was ever deleted or duplicated")
}

// I5: de-authorizing releases the links (OUT_OF_SCOPE, remote ids kept) and
// removes bindings without deprovisioning; after re-authorization a user who is
// not bound again is left alone, and re-binding manages the same account again.
func TestReleasedByDeauthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	u := e.user("rel", "rel@contoso.com", active)
	e.bind(e.in, u)
	e.run()
	rid := e.link(e.in, u).RemoteID
	// What integrations.Deauthorize does, then a re-authorization.
	_, err := e.client.UserBinding.Delete().Where(userbinding.IntegrationID(e.in.ID)).Exec(e.ctx)
	require.NoError(t, err)
	require.NoError(t, e.client.RemoteLink.Update().Where(remotelink.IntegrationID(e.in.ID)).
		SetStatus(remotelink.StatusOUT_OF_SCOPE).SetStatusReason("released").Exec(e.ctx))

	e.sim.ClearRequests()
	require.NoError(t, e.client.User.UpdateOne(u).SetJobTitle("Changed").Exec(e.ctx))
	ts, err := connect.UserTargets(e.ctx, e.client, []pulid.ID{u.ID})
	require.NoError(t, err)
	j := e.start(jobs.JobUserChange, "", ts...)
	e.run()
	require.Zero(t, e.writes("PATCH"), "a released account is left as it is")
	require.True(t, e.remote(e.creds.TenantID, "rel@contoso.com").AccountEnabled)
	l := e.link(e.in, u)
	require.Equal(t, remotelink.StatusOUT_OF_SCOPE, l.Status)
	require.Equal(t, "released", l.StatusReason)
	require.Equal(t, jobs.ResultOutOfScope, e.items(j.ID)[0].Result)

	e.bind(e.in, u)
	e.run()
	l = e.link(e.in, u)
	require.Equal(t, remotelink.StatusIN_SYNC, l.Status)
	require.Equal(t, rid, l.RemoteID)
	require.Equal(t, "Changed", e.remote(e.creds.TenantID, "rel@contoso.com").Properties["jobTitle"])
	require.Equal(t, 1, e.remoteCount(e.creds.TenantID))
}

// X3 reached by link id only (an integration change lists orphan links so):
// the account is disabled and the orphan link removed.
func TestOrphanLinkByLinkID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	u := e.user("orf", "orf@contoso.com", active)
	e.bind(e.in, u)
	e.run()
	l := e.link(e.in, u)
	require.NoError(t, e.client.User.DeleteOne(u).Exec(e.ctx))
	ts, err := connect.IntegrationTargets(e.ctx, e.client, e.in.ID)
	require.NoError(t, err)
	require.Equal(t, []jobs.Target{{IntegrationID: e.in.ID, LinkID: l.ID}}, ts)
	j := e.start(jobs.JobIntegrationChange, e.in.ID, ts...)
	e.run()
	require.False(t, e.remote(e.creds.TenantID, "orf@contoso.com").AccountEnabled)
	require.Equal(t, jobs.ResultDisabled, e.items(j.ID)[0].Result)
	n, err := e.client.RemoteLink.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

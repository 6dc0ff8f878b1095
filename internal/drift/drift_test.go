package drift_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/drift"
	"github.com/dirsync/dirsync/internal/drift/driftinfo"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/recovery"
)

// The first round reads everything and establishes the baseline: what we
// just applied is no drift. A quiet round afterwards reads only the two
// deltaLinks and finds nothing (issue 14; P1, P4).
func TestFirstRoundIsBaselineWithoutDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{groups: true})
	ann, bob := e.user("ann"), e.user("bob")
	e.bind(ann, bob)
	e.group("Pilots", ann, bob)
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 5)) // not ours: never drift

	res := e.round()
	require.True(t, res.FullUsers)
	require.True(t, res.FullGroups)
	require.Empty(t, res.Drifted)
	require.Nil(t, res.Job)
	require.Empty(t, e.events(drift.EventRemoteDrift))
	require.Nil(t, e.link(ann).Drift)
	in, err := e.client.Integration.Get(e.ctx, e.in.ID)
	require.NoError(t, err)
	require.NotEmpty(t, in.UsersDeltaLink)
	require.NotEmpty(t, in.GroupsDeltaLink)
	require.NotNil(t, in.DriftCheckedAt)

	e.sim.ClearRequests()
	res = e.round()
	require.False(t, res.FullUsers)
	require.Zero(t, res.Changed)
	require.Empty(t, res.Drifted)
	require.Equal(t, 2, e.graphCalls(), "a quiet round is one users and one groups delta page")
	require.Zero(t, e.pending())
}

// A managed attribute edited in the tenant (CORRECT, the default): the link
// shows the drift, a remote_drift event names it, a DRIFT_CORRECTION job
// writes the directory's value back and clears the drift; the correction's
// own write is no drift in the next round.
func TestAttributeEditCorrected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ann, bob := e.user("ann"), e.user("bob")
	e.bind(ann, bob)
	e.round()
	rid := e.link(ann).RemoteID
	require.NoError(t, e.sim.AdminUpdateUser(e.creds.TenantID, rid, map[string]any{"jobTitle": "Intruder", "department": "Sales"}))

	res := e.round()
	require.Equal(t, []pulid.ID{e.link(ann).ID}, res.Drifted)
	l := e.link(ann)
	require.NotNil(t, l.Drift)
	require.Equal(t, []string{"department", "jobTitle"}, l.Drift.Properties)
	require.Equal(t, driftinfo.ActionCorrect, l.Drift.Action)
	require.False(t, l.Drift.Deleted)
	require.NotNil(t, res.Job)
	require.Equal(t, jobs.JobDriftCorrection, res.Job.Kind)
	require.Equal(t, res.Job.ID, l.Drift.JobID)
	evs := e.events(drift.EventRemoteDrift)
	require.Len(t, evs, 1)
	require.Contains(t, evs[0].Detail, "department, jobTitle")
	require.Equal(t, ann.ID, *evs[0].UserID)
	require.Equal(t, res.Job.ID, *evs[0].JobID)
	require.Nil(t, e.link(bob).Drift)

	e.run()
	r := e.remoteUser(rid)
	require.Equal(t, "Engineer", r.Properties["jobTitle"])
	require.NotContains(t, r.Properties, "department")
	require.Nil(t, e.link(ann).Drift, "the correcting reconcile clears the drift")
	j, err := e.client.Job.Get(e.ctx, res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, job.StatusSUCCEEDED, j.Status)

	res = e.round()
	require.Equal(t, 1, res.Changed, "our own correction shows in the delta")
	require.Empty(t, res.Drifted)
	require.Nil(t, res.Job)
}

// REPORT only records: the drift on the link and the event, no job, the
// tenant left as the admin made it. A later round that sees the value back
// as we applied it clears the drift.
func TestAttributeEditReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{action: driftinfo.ActionReport})
	ann := e.user("ann")
	e.bind(ann)
	e.round()
	rid := e.link(ann).RemoteID
	require.NoError(t, e.sim.AdminUpdateUser(e.creds.TenantID, rid, map[string]any{"jobTitle": "Intruder"}))

	res := e.round()
	require.Nil(t, res.Job)
	require.Zero(t, e.pending())
	l := e.link(ann)
	require.Equal(t, []string{"jobTitle"}, l.Drift.Properties)
	require.Equal(t, driftinfo.ActionReport, l.Drift.Action)
	require.Empty(t, l.Drift.JobID)
	require.Len(t, e.events(drift.EventRemoteDrift), 1)
	require.Contains(t, e.events(drift.EventRemoteDrift)[0].Detail, "reported only")
	require.Equal(t, "Intruder", e.remoteUser(rid).Properties["jobTitle"])

	require.NoError(t, e.sim.AdminUpdateUser(e.creds.TenantID, rid, map[string]any{"jobTitle": "Engineer"}))
	res = e.round()
	require.Empty(t, res.Drifted)
	require.Nil(t, e.link(ann).Drift)
}

// A deprovisioned account (X1) re-enabled in the tenant is disabled again
// (CORRECT), or only reported (REPORT).
func TestReEnabledDeprovisionedAccount(t *testing.T) {
	t.Parallel()
	for _, action := range []string{driftinfo.ActionCorrect, driftinfo.ActionReport} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{action: action})
			ann := e.user("ann")
			e.bind(ann)
			require.NoError(t, e.client.User.UpdateOne(ann).SetState(user.StateSUSPENDED).Exec(e.ctx))
			e.start(jobs.JobUserSuspend, jobs.Target{IntegrationID: e.in.ID, UserID: ann.ID})
			e.run()
			rid := e.link(ann).RemoteID
			require.False(t, e.remoteUser(rid).AccountEnabled)
			e.round()

			require.NoError(t, e.sim.AdminUpdateUser(e.creds.TenantID, rid, map[string]any{"accountEnabled": true}))
			res := e.round()
			require.Len(t, res.Drifted, 1)
			require.Equal(t, []string{"accountEnabled"}, e.link(ann).Drift.Properties)
			e.run()
			if action == driftinfo.ActionCorrect {
				require.NotNil(t, res.Job)
				require.False(t, e.remoteUser(rid).AccountEnabled, "disabled again")
				require.Nil(t, e.link(ann).Drift)
			} else {
				require.Nil(t, res.Job)
				require.True(t, e.remoteUser(rid).AccountEnabled, "left as the admin made it")
				require.NotNil(t, e.link(ann).Drift)
			}
		})
	}
}

// A managed group's membership edited in the tenant: a member of ours
// removed and another account of ours added; CORRECT restores the
// directory's membership, REPORT only records it. A foreign member added is
// no drift (left alone by design).
func TestGroupMembershipEdited(t *testing.T) {
	t.Parallel()
	for _, action := range []string{driftinfo.ActionCorrect, driftinfo.ActionReport} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{groups: true, action: action})
			ann, bob, cat := e.user("ann"), e.user("bob"), e.user("cat")
			e.bind(cat)
			g := e.group("Pilots", ann, bob)
			gl := e.groupLink(g)
			require.Equal(t, remotelink.StatusIN_SYNC, gl.Status)
			e.round()

			tn := e.creds.TenantID
			require.NoError(t, e.sim.SeedUsers(tn, 1))
			var foreign string
			for _, u := range e.sim.Users(tn) {
				if u.UserPrincipalName != "" && u.ID != e.link(ann).RemoteID && u.ID != e.link(bob).RemoteID && u.ID != e.link(cat).RemoteID {
					foreign = u.ID
				}
			}
			require.NoError(t, e.sim.AdminAddMember(tn, gl.RemoteID, foreign))
			res := e.round()
			require.Empty(t, res.Drifted, "a foreign member is not ours to judge")

			require.NoError(t, e.sim.AdminRemoveMember(tn, gl.RemoteID, e.link(ann).RemoteID))
			require.NoError(t, e.sim.AdminAddMember(tn, gl.RemoteID, e.link(cat).RemoteID))
			res = e.round()
			require.Equal(t, []pulid.ID{gl.ID}, res.Drifted)
			d := e.groupLink(g).Drift
			require.Equal(t, []string{"members"}, d.Properties)
			evs := e.events(drift.EventRemoteDrift)
			require.Len(t, evs, 1)
			require.Equal(t, g.ID, *evs[0].GroupID)
			e.run()
			members := e.remoteGroup(gl.RemoteID).Members
			if action == driftinfo.ActionCorrect {
				require.ElementsMatch(t, []string{e.link(ann).RemoteID, e.link(bob).RemoteID, foreign}, members)
				require.Nil(t, e.groupLink(g).Drift)
			} else {
				require.ElementsMatch(t, []string{e.link(bob).RemoteID, e.link(cat).RemoteID, foreign}, members)
				require.NotNil(t, e.groupLink(g).Drift)
			}
		})
	}
}

// A managed group renamed in the tenant gets its name back (CORRECT).
func TestGroupRenameCorrected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{groups: true})
	ann := e.user("ann")
	g := e.group("Pilots", ann)
	e.round()
	rid := e.groupLink(g).RemoteID
	require.NoError(t, e.sim.AdminUpdateGroup(e.creds.TenantID, rid, map[string]any{"displayName": "Hijacked"}))
	res := e.round()
	require.Len(t, res.Drifted, 1)
	require.Equal(t, []string{"displayName"}, e.groupLink(g).Drift.Properties)
	e.run()
	require.Equal(t, "Pilots", e.remoteGroup(rid).DisplayName)
	require.Nil(t, e.groupLink(g).Drift)
}

// A linked user deleted in the tenant: the link becomes REMOTE_DELETED (both
// actions), nothing is re-created by later rounds or ordinary reconciles, and
// resyncUsers creates the account again.
func TestRemoteUserDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ann, bob := e.user("ann"), e.user("bob")
	e.bind(ann, bob)
	e.round()
	old := e.link(ann).RemoteID
	require.NoError(t, e.sim.AdminDeleteUser(e.creds.TenantID, old))

	res := e.round()
	require.Equal(t, 1, res.Deleted)
	require.Nil(t, res.Job, "a deletion is never corrected by a round")
	l := e.link(ann)
	require.Equal(t, remotelink.StatusREMOTE_DELETED, l.Status)
	require.True(t, l.Drift.Deleted)
	require.Equal(t, []string{"deleted"}, l.Drift.Properties)
	require.Len(t, e.events(drift.EventRemoteDrift), 1)
	require.Zero(t, e.pending())

	// Later rounds and a directory edit leave it deleted.
	res = e.round()
	require.Empty(t, res.Drifted)
	require.NoError(t, e.client.User.UpdateOne(ann).SetJobTitle("Pilot").Exec(e.ctx))
	e.start(jobs.JobUserChange, jobs.Target{IntegrationID: e.in.ID, UserID: ann.ID})
	e.run()
	require.Equal(t, remotelink.StatusREMOTE_DELETED, e.link(ann).Status)
	require.Len(t, e.sim.Users(e.creds.TenantID), 1)

	_, err := recovery.New(e.client).ResyncUsers(e.ctx, e.in.ID, []pulid.ID{ann.ID})
	require.NoError(t, err)
	e.run()
	l = e.link(ann)
	require.Equal(t, remotelink.StatusIN_SYNC, l.Status)
	require.NotEqual(t, old, l.RemoteID)
	require.NotNil(t, e.remoteUser(l.RemoteID))
	require.Nil(t, l.Drift)
	require.Empty(t, e.round().Drifted)
}

// A managed group deleted in the tenant: REMOTE_DELETED, not re-created by a
// group pass (a membership change), re-created by resyncIntegration.
func TestRemoteGroupDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{groups: true})
	ann, bob := e.user("ann"), e.user("bob")
	g := e.group("Pilots", ann)
	e.round()
	old := e.groupLink(g).RemoteID
	require.NoError(t, e.sim.AdminDeleteGroup(e.creds.TenantID, old))

	res := e.round()
	require.Equal(t, 1, res.Deleted)
	require.Equal(t, remotelink.StatusREMOTE_DELETED, e.groupLink(g).Status)
	require.Empty(t, e.sim.Groups(e.creds.TenantID))

	require.NoError(t, e.client.UserGroup.UpdateOne(g).AddMembers(bob).Exec(e.ctx))
	ts, err := groupTargets(e, g)
	require.NoError(t, err)
	e.start(jobs.JobGroupMembers, ts...)
	e.run()
	require.Empty(t, e.sim.Groups(e.creds.TenantID), "an ordinary pass creates nothing")
	require.Equal(t, remotelink.StatusREMOTE_DELETED, e.groupLink(g).Status)

	_, err = recovery.New(e.client).ResyncIntegration(e.ctx, e.in.ID)
	require.NoError(t, err)
	e.run()
	gl := e.groupLink(g)
	require.Equal(t, remotelink.StatusIN_SYNC, gl.Status)
	require.NotEqual(t, old, gl.RemoteID)
	require.ElementsMatch(t, []string{e.link(ann).RemoteID, e.link(bob).RemoteID}, e.remoteGroup(gl.RemoteID).Members)
}

// An expired or unknown delta token (410 Gone, or 400 syncStateNotFound
// where the emulator is switched to it) makes the round read everything
// again, without reporting what we applied as drift; a real edit made
// meanwhile is still found.
func TestExpiredTokenFullResyncWithoutFalseDrift(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]graphsim.Config{"410": {}, "400": {DeltaResync400: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{sim: cfg, groups: true})
			ann, bob := e.user("ann"), e.user("bob")
			e.bind(ann, bob)
			e.group("Pilots", ann, bob)
			e.round()
			e.sim.ExpireDeltaTokens()
			res := e.round()
			require.True(t, res.FullUsers)
			require.True(t, res.FullGroups)
			require.Empty(t, res.Drifted)
			require.Empty(t, e.events(drift.EventRemoteDrift))

			e.sim.ExpireDeltaTokens()
			require.NoError(t, e.sim.AdminUpdateUser(e.creds.TenantID, e.link(bob).RemoteID, map[string]any{"jobTitle": "Intruder"}))
			res = e.round()
			require.True(t, res.FullUsers)
			require.Equal(t, []pulid.ID{e.link(bob).ID}, res.Drifted)
		})
	}
}

// A pending directory change is no drift: the reconcile already queued
// writes anyway, so the round neither reports nor corrects it.
func TestPendingChangeIsNoDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ann := e.user("ann")
	e.bind(ann)
	e.round()
	rid := e.link(ann).RemoteID
	require.NoError(t, e.sim.AdminUpdateUser(e.creds.TenantID, rid, map[string]any{"jobTitle": "Intruder"}))
	require.NoError(t, e.client.User.UpdateOne(ann).SetJobTitle("Captain").Exec(e.ctx))
	e.start(jobs.JobUserChange, jobs.Target{IntegrationID: e.in.ID, UserID: ann.ID})
	res := e.round()
	require.Empty(t, res.Drifted)
	e.run()
	require.Equal(t, "Captain", e.remoteUser(rid).Properties["jobTitle"])
}

// De-authorized or deleted integrations get no round (I5, I6).
func TestRoundSkipsUnauthorized(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	require.NoError(t, e.client.Integration.UpdateOne(e.in).SetStatus("UNAUTHORIZED").Exec(e.ctx))
	e.sim.ClearRequests()
	res := e.round()
	require.True(t, res.Skipped)
	require.Zero(t, e.graphCalls())
	res, err := e.det.Round(context.Background(), e.org.ID, pulid.New("IN"))
	require.NoError(t, err)
	require.True(t, res.Skipped)
}

func groupTargets(e *env, g *ent.UserGroup) ([]jobs.Target, error) {
	return []jobs.Target{{IntegrationID: e.in.ID, GroupID: g.ID, Group: true}}, nil
}

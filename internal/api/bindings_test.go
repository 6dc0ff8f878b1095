package api_test

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/notification"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
)

// onlyJob asserts the payload started exactly one job of kind over users.
func onlyJob(t *testing.T, s *simEnv, p payloadOut, kind, integrationID string, users ...string) jobOut {
	t.Helper()
	require.Len(t, p.Jobs, 1)
	j := p.Jobs[0]
	assert.Equal(t, kind, j.Kind)
	assert.Equal(t, "QUEUED", j.Status)
	assert.Equal(t, len(users), j.Total)
	assert.Equal(t, sortedIDs(users...), j.users())
	for _, e := range j.Items.Edges {
		assert.Equal(t, integrationID, e.Node.IntegrationID)
	}
	// One outbox row per item, committed with the change.
	rows := s.outboxFor(j.ID)
	require.Len(t, rows, len(users))
	var got []string
	for _, r := range rows {
		assert.Equal(t, integrationID, string(r.IntegrationID))
		assert.NotEmpty(t, r.ItemID)
		got = append(got, string(r.UserID))
	}
	sort.Strings(got)
	assert.Equal(t, sortedIDs(users...), got)
	return j
}

func notified(t *testing.T, s *simEnv) []string {
	t.Helper()
	ns, err := s.client.Notification.Query().Where(notification.Kind("integration_bound")).All(sysCtx())
	require.NoError(t, err)
	var out []string
	for _, n := range ns {
		out = append(out, string(*n.UserID))
	}
	sort.Strings(out)
	return out
}

// Binding and unbinding take many ids, are idempotent, start one job over the
// users whose connection may have changed, and notify newly connected users (P5).
func TestBindingsStartOneJob(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	in := s.authorized(org.admin, "Contoso", s.bootstrap("contoso", "contoso.com"), nil)
	ann, bob, cid, dan := s.createUser(org.admin, "ann"), s.createUser(org.admin, "bob"), s.createUser(org.admin, "cid"), s.createUser(org.admin, "dan")
	g := s.createGroup(org.admin, "staff")
	s.must(org.admin, addMembers, map[string]any{"g": g, "u": []string{ann.ID, cid.ID}}, nil)
	require.Zero(t, s.outboxCount(), "no group is bound yet: membership starts nothing")

	p := s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{ann.ID, bob.ID, ann.ID}})
	bind := onlyJob(t, s, p, jobs.JobBindUsers, in.ID, ann.ID, bob.ID)
	assert.Equal(t, in.ID, *bind.IntegrationID)
	assert.Equal(t, sortedIDs(ann.ID, bob.ID), notified(t, s))

	before := s.outboxCount()
	p = s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{bob.ID, ann.ID}})
	assert.Empty(t, p.Jobs, "re-binding changes nothing")
	assert.Equal(t, before, s.outboxCount())
	assert.Equal(t, sortedIDs(ann.ID, bob.ID), notified(t, s), "nobody notified twice")
	assert.Empty(t, s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{}}).Jobs)

	// Binding the group reconciles its members; only cid is newly connected.
	p = s.mutate(org.admin, bindGroups, map[string]any{"i": in.ID, "ids": []string{g}})
	onlyJob(t, s, p, jobs.JobBindGroups, in.ID, ann.ID, cid.ID)
	assert.Equal(t, sortedIDs(ann.ID, bob.ID, cid.ID), notified(t, s))
	assert.Empty(t, s.mutate(org.admin, bindGroups, map[string]any{"i": in.ID, "ids": []string{g, g}}).Jobs)

	// Unbinding: targets are the users that were bound; the worker decides
	// (ann is still connected through the group).
	p = s.mutate(org.admin, unbindUsers, map[string]any{"i": in.ID, "ids": []string{ann.ID, bob.ID, dan.ID}})
	onlyJob(t, s, p, jobs.JobUnbindUsers, in.ID, ann.ID, bob.ID)
	assert.Empty(t, s.mutate(org.admin, unbindUsers, map[string]any{"i": in.ID, "ids": []string{ann.ID, bob.ID}}).Jobs)
	p = s.mutate(org.admin, unbindGroups, map[string]any{"i": in.ID, "ids": []string{g}})
	onlyJob(t, s, p, jobs.JobUnbindGroups, in.ID, ann.ID, cid.ID)
	assert.Empty(t, s.mutate(org.admin, unbindGroups, map[string]any{"i": in.ID, "ids": []string{g}}).Jobs)
	require.Zero(t, s.client.UserBinding.Query().CountX(sysCtx()))
	require.Zero(t, s.client.GroupBinding.Query().CountX(sysCtx()))

	// Jobs are queryable: job(id), jobs(where, orderBy).
	var q struct {
		Job  jobOut
		Jobs struct {
			TotalCount int
			Edges      []struct{ Node struct{ Kind string } }
		}
	}
	s.must(org.readOnly, `query($id: ID!) { job(id: $id) { `+jobFields+` }
		jobs(where: {kindIn: ["BIND_USERS", "BIND_USER_GROUPS"]}, orderBy: {field: CREATED_AT, direction: DESC}) { totalCount edges { node { kind } } } }`,
		map[string]any{"id": bind.ID}, &q)
	assert.Equal(t, bind.ID, q.Job.ID)
	assert.Equal(t, 2, q.Job.Items.TotalCount)
	require.Equal(t, 2, q.Jobs.TotalCount)
	assert.Equal(t, jobs.JobBindGroups, q.Jobs.Edges[0].Node.Kind)

	var lists struct {
		Integrations struct {
			TotalCount int
			Edges      []struct{ Node struct{ Name, Status string } }
		}
		Events struct{ TotalCount int }
	}
	s.must(org.readOnly, `{ integrations(where: {status: AUTHORIZED, nameContainsFold: "CONT"}, orderBy: {field: NAME}) { totalCount edges { node { name status } } }
		events(where: {type: "user_create_provision"}, orderBy: {field: CREATED_AT}) { totalCount } }`, nil, &lists)
	require.Equal(t, 1, lists.Integrations.TotalCount)
	assert.Equal(t, "Contoso", lists.Integrations.Edges[0].Node.Name)
	assert.Zero(t, lists.Events.TotalCount, "events come from the worker")

	// Another organization: ids are unknown, its job query answers null.
	other := s.tenant("globex")
	theirUser := s.createUser(other.admin, "eve")
	theirGroup := s.createGroup(other.admin, "theirs")
	before = s.outboxCount()
	e := s.fails(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{dan.ID, theirUser.ID}}, "NOT_FOUND", "userIDs")
	assert.Contains(t, e.Message, theirUser.ID)
	s.fails(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{"US00000000000000000000000000"}}, "NOT_FOUND", "userIDs")
	s.fails(org.admin, bindGroups, map[string]any{"i": in.ID, "ids": []string{theirGroup}}, "NOT_FOUND", "groupIDs")
	s.fails(org.admin, unbindGroups, map[string]any{"i": in.ID, "ids": []string{theirGroup}}, "NOT_FOUND", "groupIDs")
	s.fails(other.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{theirUser.ID}}, "NOT_FOUND", "integrationID")
	s.fails(org.readOnly, bindUsers, map[string]any{"i": in.ID, "ids": []string{dan.ID}}, "FORBIDDEN", "")
	s.fails(org.readOnly, unbindGroups, map[string]any{"i": in.ID, "ids": []string{g}}, "FORBIDDEN", "")
	assert.Equal(t, before, s.outboxCount(), "refused calls wrote nothing")
	require.Zero(t, s.client.UserBinding.Query().CountX(sysCtx()))
	var none struct{ Job *jobOut }
	s.must(other.admin, `query($id: ID!) { job(id: $id) { id } }`, map[string]any{"id": bind.ID}, &none)
	assert.Nil(t, none.Job)
	s.must(org.admin, `query($id: ID!) { job(id: $id) { id } }`, map[string]any{"id": "JB00000000000000000000000000"}, &none)
	assert.Nil(t, none.Job)

	// Too many ids at once.
	many := make([]string, 1001)
	for i := range many {
		many[i] = string(pulid.New("US"))
	}
	s.fails(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": many}, "BAD_USER_INPUT", "userIDs")
}

// Every relevant user change starts one job at once, only for users connected
// to (or linked in) an authorized integration (P4, X1, X3, B1).
func TestUserChangesStartJobs(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")
	in := s.authorized(org.admin, "Contoso", creds, nil)
	idle := s.createIntegration(org.admin, s.input("Idle", creds, nil)) // never authorized
	ann := s.createUser(org.admin, "ann")                               // bound directly
	bob := s.createUser(org.admin, "bob")                               // not connected
	cid := s.createUser(org.admin, "cid")                               // member of a bound group
	dan := s.createUser(org.admin, "dan")                               // linked only
	eve := s.createUser(org.admin, "eve")                               // linked only in the unauthorized integration
	g := s.createGroup(org.admin, "staff")
	loose := s.createGroup(org.admin, "loose") // not bound
	s.must(org.admin, addMembers, map[string]any{"g": g, "u": []string{cid.ID}}, nil)
	s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{ann.ID}})
	s.mutate(org.admin, bindGroups, map[string]any{"i": in.ID, "ids": []string{g}})
	danLink := s.link(org.id, in.ID, dan.ID, "r-dan")
	s.link(org.id, idle.ID, eve.ID, "r-eve")

	const update = `mutation($id: ID!, $in: UpdateUserInput!) { updateUser(id: $id, input: $in) { user { id } jobs { ` + jobFields + ` } } }`
	const suspend = `mutation($id: ID!) { suspendUser(id: $id) { user { state } jobs { ` + jobFields + ` } } }`
	const activate = `mutation($id: ID!) { activateUser(id: $id) { user { state } jobs { ` + jobFields + ` } } }`
	const addM = `mutation($g: ID!, $u: [ID!]!) { addUserGroupMembers(groupID: $g, userIDs: $u) { userGroup { id } jobs { ` + jobFields + ` } } }`
	const removeM = `mutation($g: ID!, $u: [ID!]!) { removeUserGroupMembers(groupID: $g, userIDs: $u) { userGroup { id } jobs { ` + jobFields + ` } } }`
	const delUser = `mutation($id: ID!) { deleteUser(id: $id) { deletedID jobs { ` + jobFields + ` } } }`
	const delGroup = `mutation($id: ID!) { deleteUserGroup(id: $id) { deletedID jobs { ` + jobFields + ` } } }`

	jobTitle := func(v string) map[string]any { return map[string]any{"jobTitle": v} }
	for _, u := range []userOut{bob, eve} {
		assert.Empty(t, s.mutate(org.admin, update, map[string]any{"id": u.ID, "in": jobTitle("Chef")}).Jobs, u.Username)
		assert.Empty(t, s.mutate(org.admin, suspend, map[string]any{"id": u.ID}).Jobs, u.Username)
	}
	for _, u := range []userOut{ann, cid, dan} {
		onlyJob(t, s, s.mutate(org.admin, update, map[string]any{"id": u.ID, "in": jobTitle("Chef")}), jobs.JobUserChange, in.ID, u.ID)
	}
	assert.Empty(t, s.mutate(org.admin, update, map[string]any{"id": ann.ID, "in": jobTitle("Chef")}).Jobs, "nothing changed")
	assert.Empty(t, s.mutate(org.admin, update, map[string]any{"id": ann.ID, "in": map[string]any{"username": "anna"}}).Jobs, "username is not synced")
	onlyJob(t, s, s.mutate(org.admin, update, map[string]any{"id": ann.ID, "in": map[string]any{"alternateEmail": "ann@elsewhere.org"}}), jobs.JobUserChange, in.ID, ann.ID)

	// X1 and re-activation.
	onlyJob(t, s, s.mutate(org.admin, suspend, map[string]any{"id": ann.ID}), jobs.JobUserSuspend, in.ID, ann.ID)
	assert.Empty(t, s.mutate(org.admin, suspend, map[string]any{"id": ann.ID}).Jobs, "already suspended")
	onlyJob(t, s, s.mutate(org.admin, activate, map[string]any{"id": ann.ID}), jobs.JobUserActivate, in.ID, ann.ID)

	// Membership of a bound group changes connection; of an unbound one, nothing.
	onlyJob(t, s, s.mutate(org.admin, addM, map[string]any{"g": g, "u": []string{bob.ID, cid.ID}}), jobs.JobGroupMembers, in.ID, bob.ID)
	assert.Empty(t, s.mutate(org.admin, addM, map[string]any{"g": g, "u": []string{bob.ID}}).Jobs)
	assert.Empty(t, s.mutate(org.admin, addM, map[string]any{"g": loose, "u": []string{ann.ID, bob.ID}}).Jobs)
	onlyJob(t, s, s.mutate(org.admin, removeM, map[string]any{"g": g, "u": []string{bob.ID, ann.ID}}), jobs.JobGroupMembers, in.ID, bob.ID)
	assert.Empty(t, s.mutate(org.admin, removeM, map[string]any{"g": g, "u": []string{bob.ID}}).Jobs)

	// X3: the deletion's job names the link, which outlives the user row.
	p := s.mutate(org.admin, delUser, map[string]any{"id": dan.ID})
	j := onlyJob(t, s, p, jobs.JobUserDelete, in.ID, dan.ID)
	require.NotNil(t, j.Items.Edges[0].Node.LinkID)
	assert.Equal(t, string(danLink.ID), *j.Items.Edges[0].Node.LinkID)
	rows := s.outboxFor(j.ID)
	assert.Equal(t, danLink.ID, rows[0].LinkID)
	l, err := s.client.RemoteLink.Get(sysCtx(), danLink.ID)
	require.NoError(t, err)
	assert.Nil(t, l.UserID, "the link stays with its user nulled")
	assert.Empty(t, s.mutate(org.admin, delUser, map[string]any{"id": bob.ID}).Jobs, "never provisioned: nothing to disable")

	// Deleting a bound group reconciles its members (X4).
	onlyJob(t, s, s.mutate(org.admin, delGroup, map[string]any{"id": g}), jobs.JobGroupDelete, in.ID, cid.ID)
	assert.Empty(t, s.mutate(org.admin, delGroup, map[string]any{"id": loose}).Jobs)

	// A failed mutation rolls its job back with it.
	before := s.outboxCount()
	s.fails(org.admin, update, map[string]any{"id": ann.ID, "in": map[string]any{"email": "not an email"}}, "BAD_USER_INPUT", "email")
	assert.Equal(t, before, s.outboxCount())
}

// Changing what decides scope of an authorized integration reconciles every
// user of it; re-authorizing after a credential change reconciles the users
// still bound.
func TestIntegrationChangesStartJobs(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com", "contoso.net")
	in := s.authorized(org.admin, "Contoso", creds, map[string]any{"domains": []string{"contoso.com"}})
	ann, bob, cid := s.createUser(org.admin, "ann"), s.createUser(org.admin, "bob"), s.createUser(org.admin, "cid")
	g := s.createGroup(org.admin, "staff")
	s.must(org.admin, addMembers, map[string]any{"g": g, "u": []string{bob.ID}}, nil)
	s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{ann.ID}})
	s.mutate(org.admin, bindGroups, map[string]any{"i": in.ID, "ids": []string{g}})
	s.link(org.id, in.ID, cid.ID, "r-cid") // provisioned earlier, since unbound

	p := s.mutate(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"domains": []string{"contoso.com", "contoso.net"}, "defaultDomain": "contoso.com"}})
	onlyJob(t, s, p, jobs.JobIntegrationChange, in.ID, ann.ID, bob.ID, cid.ID)
	onlyJob(t, s, s.mutate(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"emailSource": "ALTERNATE"}}), jobs.JobIntegrationChange, in.ID, ann.ID, bob.ID, cid.ID)
	assert.Empty(t, s.mutate(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"emailSource": "ALTERNATE", "name": "Renamed"}}).Jobs)
	// Group management on: one job over the bound group only (docs/groups.md).
	gm := s.mutate(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"groupManagement": true}})
	require.Len(t, gm.Jobs, 1)
	assert.Equal(t, 1, gm.Jobs[0].Total)
	assert.Empty(t, gm.Jobs[0].users())

	// A new secret de-authorizes but keeps bindings; authorizing again reconciles.
	p = s.mutate(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"clientSecret": creds.ClientSecret, "suspendOnLockout": true}})
	assert.Equal(t, "UNAUTHORIZED", p.Integration.Status)
	assert.Empty(t, p.Jobs)
	assert.Equal(t, 1, s.client.UserBinding.Query().CountX(sysCtx()))
	assert.Empty(t, s.mutate(org.admin, update2, map[string]any{"id": ann.ID, "in": map[string]any{"jobTitle": "x"}}).Jobs, "nothing is sent to an unauthorized integration")
	au := s.mutate(org.admin, authorizeIntegration, map[string]any{"id": in.ID})
	require.Len(t, au.Jobs, 1)
	assert.Equal(t, jobs.JobIntegrationAuthorize, au.Jobs[0].Kind)
	assert.Equal(t, 4, au.Jobs[0].Total, "the three users and the managed group")
	assert.Equal(t, sortedIDs(ann.ID, bob.ID, cid.ID), au.Jobs[0].users())

	// The tenant cannot change under existing links.
	s.fails(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"tenantID": "fabrikam.onmicrosoft.com"}}, "BAD_USER_INPUT", "tenantID")
}

const update2 = `mutation($id: ID!, $in: UpdateUserInput!) { updateUser(id: $id, input: $in) { user { id } jobs { id } } }`

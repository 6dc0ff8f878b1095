package stacktest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// live asserts the user is provisioned and enabled in the integration.
func (w *world) live(t *testing.T, where, uid, x, upn string) {
	t.Helper()
	in := w.in[x]
	if r := w.s.remote(in.tenantID, upn); assert.NotNil(t, r, "%s: %s has %s", where, x, upn) {
		assert.True(t, r.AccountEnabled, "%s: %s is live in %s", where, upn, x)
	}
	if l := w.s.link(uid, in.id); assert.NotNil(t, l, "%s: link in %s", where, x) {
		assert.Equal(t, "IN_SYNC", string(l.Status), "%s: link in %s (%s)", where, x, l.StatusReason)
	}
}

// out asserts the integration records the user OUT_OF_SCOPE and its account,
// which must exist when created, is disabled.
func (w *world) out(t *testing.T, where, uid, x, upn string, created bool) {
	t.Helper()
	in := w.in[x]
	r := w.s.remote(in.tenantID, upn)
	if created {
		require.NotNil(t, r, "%s: %s in %s is disabled, never deleted", where, upn, x)
	}
	if r != nil {
		assert.False(t, r.AccountEnabled, "%s: %s must not be live in %s", where, upn, x)
	}
	if l := w.s.link(uid, in.id); assert.NotNil(t, l, "%s: link in %s", where, x) {
		assert.Equal(t, "OUT_OF_SCOPE", string(l.Status), "%s: link in %s (%s)", where, x, l.StatusReason)
	}
}

// off asserts the account exists and is disabled (the user left the integration).
func (w *world) off(t *testing.T, where, x, upn string) {
	t.Helper()
	if r := w.s.remote(w.in[x].tenantID, upn); assert.NotNil(t, r, "%s: %s in %s", where, upn, x) {
		assert.False(t, r.AccountEnabled, "%s: %s must not be live in %s", where, upn, x)
	}
}

// do runs a mutation returning jobs under field and waits for them.
func (w *world) do(t *testing.T, field, query string, vars map[string]any) {
	t.Helper()
	js := w.s.mutateJobs(w.s.admin, field, query, vars)
	require.NotEmpty(t, js, "%s started no job", field)
	w.s.wait(js...)
}

const (
	addMembersQ    = `mutation($g: ID!, $u: [ID!]!) { addUserGroupMembers(groupID: $g, userIDs: $u) { jobs { id } } }`
	removeMembersQ = `mutation($g: ID!, $u: [ID!]!) { removeUserGroupMembers(groupID: $g, userIDs: $u) { jobs { id } } }`
	bindUsersQ     = `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`
	bindGroupsQ    = `mutation($i: ID!, $g: [ID!]!) { bindUserGroups(integrationID: $i, groupIDs: $g) { jobs { id } } }`
	unbindGroupsQ  = `mutation($i: ID!, $g: [ID!]!) { unbindUserGroups(integrationID: $i, groupIDs: $g) { jobs { id } } }`
	deleteGroupQ   = `mutation($id: ID!) { deleteUserGroup(id: $id) { jobs { id } } }`
	updateDomainsQ = `mutation($id: ID!, $in: UpdateIntegrationInput!) { updateIntegration(id: $id, input: $in) { jobs { id } } }`
)

func (s *stack) createGroup(name string) string {
	s.t.Helper()
	var out struct {
		CreateUserGroup struct{ UserGroup struct{ ID string } }
	}
	s.must(s.admin, `mutation($in: CreateUserGroupInput!) { createUserGroup(input: $in) { userGroup { id } } }`,
		map[string]any{"in": map[string]any{"name": name}}, &out)
	return out.CreateUserGroup.UserGroup.ID
}

// Group bindings and group membership move ownership like direct bindings:
// a user live in Delta through the D4 rewrite who joins a group bound to
// Alpha (or whose group gets bound to Alpha) is disabled in Delta; leaving
// the group, unbinding it or deleting it hands the user back to Delta.
func TestOwnershipFollowsGroups(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.s
	alpha, delta := w.in[owner].id, w.in[deflt].id

	// Membership of a group already bound to Alpha.
	uid := s.createUser("gm", "gm@alpha.com")
	g := s.createGroup("alpha-staff")
	require.Empty(t, s.mutateJobs(s.admin, "bindUserGroups", `mutation($i: ID!, $g: [ID!]!) { bindUserGroups(integrationID: $i, groupIDs: $g) { jobs { id } } }`,
		map[string]any{"i": alpha, "g": []string{g}}), "an empty group connects nobody")
	w.do(t, "bindUsers", bindUsersQ, map[string]any{"i": delta, "u": []string{uid}})
	w.live(t, "bound to Delta", uid, deflt, "gm@delta.com")
	w.do(t, "addUserGroupMembers", addMembersQ, map[string]any{"g": g, "u": []string{uid}})
	w.live(t, "joined Alpha's group", uid, owner, "gm@alpha.com")
	w.out(t, "joined Alpha's group", uid, deflt, "gm@delta.com", true)
	w.do(t, "removeUserGroupMembers", removeMembersQ, map[string]any{"g": g, "u": []string{uid}})
	w.live(t, "left Alpha's group", uid, deflt, "gm@delta.com")
	w.off(t, "left Alpha's group", owner, "gm@alpha.com")
	w.do(t, "addUserGroupMembers", addMembersQ, map[string]any{"g": g, "u": []string{uid}})
	w.live(t, "joined again", uid, owner, "gm@alpha.com")
	w.out(t, "joined again", uid, deflt, "gm@delta.com", true)
	w.do(t, "deleteUserGroup", deleteGroupQ, map[string]any{"id": g})
	w.live(t, "group deleted", uid, deflt, "gm@delta.com")
	w.off(t, "group deleted", owner, "gm@alpha.com")

	// Binding and unbinding a group the user is already a member of.
	uid = s.createUser("gb", "gb@alpha.com")
	h := s.createGroup("alpha-team")
	require.Empty(t, s.mutateJobs(s.admin, "addUserGroupMembers", addMembersQ, map[string]any{"g": h, "u": []string{uid}}), "h is bound nowhere yet")
	w.do(t, "bindUsers", bindUsersQ, map[string]any{"i": delta, "u": []string{uid}})
	w.live(t, "bound to Delta", uid, deflt, "gb@delta.com")
	w.do(t, "bindUserGroups", bindGroupsQ, map[string]any{"i": alpha, "g": []string{h}})
	w.live(t, "group bound to Alpha", uid, owner, "gb@alpha.com")
	w.out(t, "group bound to Alpha", uid, deflt, "gb@delta.com", true)
	w.do(t, "unbindUserGroups", unbindGroupsQ, map[string]any{"i": alpha, "g": []string{h}})
	w.live(t, "group unbound from Alpha", uid, deflt, "gb@delta.com")
	w.off(t, "group unbound from Alpha", owner, "gb@alpha.com")
}

// An integration's domain settings move ownership too: when Beta starts
// listing the user's domain it takes the user over from Delta (which disables
// its account); when it stops, Delta gets the user back. Before the fix only
// Beta's users were reconciled, leaving the user live in both tenants.
func TestOwnershipFollowsDomainSettings(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.s
	const beta = "Beta"
	w.in[beta] = s.integration(beta, []string{"beta.com", "beta2.com"}, map[string]any{"domains": []string{"beta2.com"}})
	uid := s.createUser("ds", "ds@beta.com")
	w.do(t, "bindUsers", bindUsersQ, map[string]any{"i": w.in[deflt].id, "u": []string{uid}})
	w.do(t, "bindUsers", bindUsersQ, map[string]any{"i": w.in[beta].id, "u": []string{uid}})
	w.live(t, "Beta does not list beta.com", uid, deflt, "ds@delta.com")
	w.out(t, "Beta does not list beta.com", uid, beta, "ds@beta.com", false)

	w.do(t, "updateIntegration", updateDomainsQ, map[string]any{"id": w.in[beta].id, "in": map[string]any{"domains": []string{"beta.com", "beta2.com"}}})
	w.live(t, "Beta lists beta.com", uid, beta, "ds@beta.com")
	w.out(t, "Beta lists beta.com", uid, deflt, "ds@delta.com", true)

	w.do(t, "updateIntegration", updateDomainsQ, map[string]any{"id": w.in[beta].id, "in": map[string]any{"domains": []string{"beta2.com"}}})
	w.live(t, "Beta stops listing beta.com", uid, deflt, "ds@delta.com")
	w.out(t, "Beta stops listing beta.com", uid, beta, "ds@beta.com", true)
}

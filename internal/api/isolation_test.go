package api_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
)

// O1: nothing of organization B is visible to or changeable by A's key; an id
// of B behaves for A exactly like an id that does not exist.
func TestOrganizationsAreIsolated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	a, b := e.tenant("a"), e.tenant("b")
	aUser := e.createUser(a.admin, "anna")
	aGroup := e.createGroup(a.admin, "a-staff")
	bUser := e.createUser(b.admin, "bert")
	bGroup := e.createGroup(b.admin, "b-staff")
	e.must(b.admin, addMembers, map[string]any{"g": bGroup, "u": []string{bUser.ID}}, nil)

	t.Run("node", func(t *testing.T) {
		for _, id := range []string{bUser.ID, bGroup, b.id} {
			r := e.post(a.admin, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id})
			require.JSONEq(t, `{"node":null}`, string(r.Data))
			require.Len(t, r.Errors, 1)
			require.Equal(t, "NOT_FOUND", r.Errors[0].code())
		}
	})
	t.Run("nodes", func(t *testing.T) {
		r := e.post(a.admin, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []string{aUser.ID, bUser.ID}})
		require.NotEmpty(t, r.Errors)
		require.Equal(t, "NOT_FOUND", r.Errors[0].code())
		require.NotContains(t, string(r.Data), bUser.ID)
	})
	t.Run("connection filters", func(t *testing.T) {
		var out struct {
			Users      struct{ TotalCount int }
			UserGroups struct{ TotalCount int }
			Byname     struct{ TotalCount int }
			Members    struct{ TotalCount int }
		}
		e.must(a.admin, `query($u: ID!, $g: ID!) {
			users(where: {id: $u}) { totalCount }
			userGroups(where: {id: $g}) { totalCount }
			byname: users(where: {username: "bert"}) { totalCount }
			members: users(where: {hasGroupsWith: {id: $g}}) { totalCount }
		}`, map[string]any{"u": bUser.ID, "g": bGroup}, &out)
		require.Zero(t, out.Users.TotalCount)
		require.Zero(t, out.UserGroups.TotalCount)
		require.Zero(t, out.Byname.TotalCount)
		require.Zero(t, out.Members.TotalCount)
		require.Equal(t, 1, e.userCount(a.admin))
	})
	t.Run("organization", func(t *testing.T) {
		var out struct{ Organization struct{ ID, Name string } }
		e.must(a.admin, `{ organization { id name } }`, nil, &out)
		require.Equal(t, a.id, out.Organization.ID)
		require.Equal(t, "a", out.Organization.Name)
	})
	t.Run("writes", func(t *testing.T) {
		writes := []struct {
			name, query, field string
			vars               map[string]any
		}{
			{"update user", `mutation($id: ID!) { updateUser(id: $id, input: {firstName: "hacked"}) { user { id } } }`, "id", map[string]any{"id": bUser.ID}},
			{"delete user", `mutation($id: ID!) { deleteUser(id: $id) { deletedID } }`, "id", map[string]any{"id": bUser.ID}},
			{"suspend user", `mutation($id: ID!) { suspendUser(id: $id) { user { id } } }`, "id", map[string]any{"id": bUser.ID}},
			{"activate user", `mutation($id: ID!) { activateUser(id: $id) { user { id } } }`, "id", map[string]any{"id": bUser.ID}},
			{"update group", `mutation($id: ID!) { updateUserGroup(id: $id, input: {name: "hacked"}) { userGroup { id } } }`, "id", map[string]any{"id": bGroup}},
			{"delete group", `mutation($id: ID!) { deleteUserGroup(id: $id) { deletedID } }`, "id", map[string]any{"id": bGroup}},
			{"add B's user to A's group", addMembers, "userIDs", map[string]any{"g": aGroup, "u": []string{aUser.ID, bUser.ID}}},
			{"add A's user to B's group", addMembers, "groupID", map[string]any{"g": bGroup, "u": []string{aUser.ID}}},
			{"remove B's member", removeMembers, "groupID", map[string]any{"g": bGroup, "u": []string{bUser.ID}}},
			{"remove B's user from A's group", removeMembers, "userIDs", map[string]any{"g": aGroup, "u": []string{bUser.ID}}},
		}
		for _, w := range writes {
			t.Run(w.name, func(t *testing.T) {
				e.fails(a.admin, w.query, w.vars, "NOT_FOUND", w.field)
			})
		}
	})

	// B's data is exactly as before, and A's group got no member.
	var bOut struct {
		Users struct {
			Edges []struct {
				Node struct {
					FirstName, State string
					Groups           struct{ TotalCount int }
				}
			}
		}
		UserGroups struct {
			Edges []struct{ Node struct{ Name string } }
		}
	}
	e.must(b.admin, `{ users { edges { node { firstName state groups { totalCount } } } } userGroups { edges { node { name } } } }`, nil, &bOut)
	require.Len(t, bOut.Users.Edges, 1)
	require.Equal(t, "", bOut.Users.Edges[0].Node.FirstName)
	require.Equal(t, "STAGED", bOut.Users.Edges[0].Node.State)
	require.Equal(t, 1, bOut.Users.Edges[0].Node.Groups.TotalCount)
	require.Equal(t, "b-staff", bOut.UserGroups.Edges[0].Node.Name)
	var aOut struct {
		Node struct{ Members struct{ TotalCount int } }
	}
	e.must(a.admin, `query($id: ID!) { node(id: $id) { ... on UserGroup { members { totalCount } } } }`, map[string]any{"id": aGroup}, &aOut)
	require.Zero(t, aOut.Node.Members.TotalCount)
}

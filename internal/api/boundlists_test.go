package api_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bindings are listable: Integration.boundUsers / boundUserGroups (paged,
// filtered) and User.bindings (direct and through which groups).
func TestBindingsAreListable(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	in := s.authorized(org.admin, "Contoso", s.bootstrap("contoso", "contoso.com"), nil)
	ann, bob, cid := s.createUser(org.admin, "ann"), s.createUser(org.admin, "bob"), s.createUser(org.admin, "cid")
	g := s.createGroup(org.admin, "staff")
	s.must(org.admin, addMembers, map[string]any{"g": g, "u": []string{ann.ID, cid.ID}}, nil)
	s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{ann.ID, bob.ID}})
	s.mutate(org.admin, bindGroups, map[string]any{"i": in.ID, "ids": []string{g}})

	var q struct {
		Node struct {
			BoundUsers struct {
				TotalCount int
				Edges      []struct{ Node struct{ Username string } }
			}
			Only            struct{ TotalCount int }
			BoundUserGroups struct {
				TotalCount int
				Edges      []struct{ Node struct{ ID string } }
			}
		}
	}
	s.must(org.readOnly, `query($id: ID!) { node(id: $id) { ... on Integration {
		boundUsers(orderBy: {field: USERNAME, direction: DESC}, first: 10) { totalCount edges { node { username } } }
		only: boundUsers(where: {username: "bob"}) { totalCount }
		boundUserGroups { totalCount edges { node { id } } } } } }`, map[string]any{"id": in.ID}, &q)
	require.Equal(t, 2, q.Node.BoundUsers.TotalCount, "direct bindings only: cid comes through the group")
	assert.Equal(t, "bob", q.Node.BoundUsers.Edges[0].Node.Username)
	assert.Equal(t, 1, q.Node.Only.TotalCount)
	require.Equal(t, 1, q.Node.BoundUserGroups.TotalCount)
	assert.Equal(t, g, q.Node.BoundUserGroups.Edges[0].Node.ID)

	type binding struct {
		Integration struct{ ID string }
		Direct      bool
		ViaGroups   []struct{ ID string }
	}
	bindingsOf := func(id string) []binding {
		var u struct{ Node struct{ Bindings []binding } }
		s.must(org.readOnly, `query($id: ID!) { node(id: $id) { ... on User { bindings { integration { id } direct viaGroups { id } } } } }`,
			map[string]any{"id": id}, &u)
		return u.Node.Bindings
	}
	a := bindingsOf(ann.ID)
	require.Len(t, a, 1)
	assert.Equal(t, in.ID, a[0].Integration.ID)
	assert.True(t, a[0].Direct)
	require.Len(t, a[0].ViaGroups, 1)
	assert.Equal(t, g, a[0].ViaGroups[0].ID)
	c := bindingsOf(cid.ID)
	require.Len(t, c, 1)
	assert.False(t, c[0].Direct)
	b := bindingsOf(bob.ID)
	require.Len(t, b, 1)
	assert.Empty(t, b[0].ViaGroups)

	s.mutate(org.admin, unbindGroups, map[string]any{"i": in.ID, "ids": []string{g}})
	assert.Empty(t, bindingsOf(cid.ID))

	// Another organisation sees none of it.
	other := s.tenant("globex")
	s.fails(other.admin, `query($id: ID!) { node(id: $id) { ... on Integration { boundUsers { totalCount } } } }`,
		map[string]any{"id": in.ID}, "NOT_FOUND", "")
}

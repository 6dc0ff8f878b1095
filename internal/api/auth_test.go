package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
)

func TestMissingOrWrongKeyIs401WithGraphQLError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	for name, key := range map[string]string{
		"no key":          "",
		"unknown key":     "dsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"not a dsk key":   "hunter2",
		"key with suffix": org.admin + "x",
	} {
		t.Run(name, func(t *testing.T) {
			r := e.post(key, `{ users { totalCount } }`, nil)
			require.Equal(t, http.StatusUnauthorized, r.status)
			require.Len(t, r.Errors, 1)
			require.Equal(t, "UNAUTHENTICATED", r.Errors[0].code())
			require.Nil(t, r.Data)
		})
	}
	t.Run("basic auth scheme", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, e.url, strings.NewReader(`{"query":"{ users { totalCount } }"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Basic "+org.admin)
		require.Equal(t, http.StatusUnauthorized, e.send(req).status)
	})
	t.Run("valid key over GET", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, e.url+"?query="+`%7B%20users%20%7B%20totalCount%20%7D%20%7D`, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "bearer "+org.admin)
		r := e.send(req)
		require.Equal(t, http.StatusOK, r.status)
		require.JSONEq(t, `{"users":{"totalCount":0}}`, string(r.Data))
	})
}

// O2: a read-only key reads everything of its organization and every
// mutation answers FORBIDDEN without changing anything.
func TestReadOnlyKeyCanQueryButEveryMutationIsForbidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	u := e.createUser(org.admin, "alice")
	g := e.createGroup(org.admin, "staff")
	e.must(org.admin, addMembers, map[string]any{"g": g, "u": []string{u.ID}}, nil)

	require.Equal(t, 1, e.userCount(org.readOnly))

	mutations := map[string]struct {
		query string
		vars  map[string]any
	}{
		"createUser":             {createUser, map[string]any{"in": map[string]any{"username": "bob", "email": "bob@example.com"}}},
		"updateUser":             {`mutation($id: ID!) { updateUser(id: $id, input: {firstName: "X"}) { user { id } } }`, map[string]any{"id": u.ID}},
		"deleteUser":             {`mutation($id: ID!) { deleteUser(id: $id) { deletedID } }`, map[string]any{"id": u.ID}},
		"suspendUser":            {`mutation($id: ID!) { suspendUser(id: $id) { user { id } } }`, map[string]any{"id": u.ID}},
		"activateUser":           {`mutation($id: ID!) { activateUser(id: $id) { user { id } } }`, map[string]any{"id": u.ID}},
		"createUserGroup":        {createGroup, map[string]any{"in": map[string]any{"name": "other"}}},
		"updateUserGroup":        {`mutation($id: ID!) { updateUserGroup(id: $id, input: {name: "renamed"}) { userGroup { id } } }`, map[string]any{"id": g}},
		"deleteUserGroup":        {`mutation($id: ID!) { deleteUserGroup(id: $id) { deletedID } }`, map[string]any{"id": g}},
		"addUserGroupMembers":    {addMembers, map[string]any{"g": g, "u": []string{u.ID}}}, // would be a no-op
		"removeUserGroupMembers": {removeMembers, map[string]any{"g": g, "u": []string{u.ID}}},
		"updateOrganization":     {`mutation { updateOrganization(input: {passwordTakeover: true}) { organization { id } } }`, nil},
	}
	for name, m := range mutations {
		t.Run(name, func(t *testing.T) {
			e.fails(org.readOnly, m.query, m.vars, "FORBIDDEN", "")
		})
	}

	var after struct {
		Users struct {
			Edges []struct {
				Node struct {
					State     string
					FirstName string
					Groups    struct{ TotalCount int }
				}
			}
		}
		UserGroups   struct{ TotalCount int }
		Organization struct{ PasswordTakeover bool }
	}
	e.must(org.readOnly, `{ users { edges { node { state firstName groups { totalCount } } } } userGroups { totalCount } organization { passwordTakeover } }`, nil, &after)
	require.Len(t, after.Users.Edges, 1)
	require.Equal(t, "STAGED", after.Users.Edges[0].Node.State)
	require.Empty(t, after.Users.Edges[0].Node.FirstName)
	require.Equal(t, 1, after.Users.Edges[0].Node.Groups.TotalCount)
	require.Equal(t, 1, after.UserGroups.TotalCount)
	require.False(t, after.Organization.PasswordTakeover)
}

func TestIntrospectionOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	const q = `{ __schema { queryType { name } } }`
	off := newEnv(t, api.Config{})
	r := off.post(off.tenant("a").admin, q, nil)
	require.NotEmpty(t, r.Errors)

	on := newEnv(t, api.Config{Introspection: true})
	on.must(on.tenant("a").admin, q, nil, nil)
}

// A list costs its fields times its rows, so the default limit admits a
// full page of users with their groups but not three nested full pages.
func TestComplexityLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	e.must(org.admin, `{ users(first: 100) { totalCount edges { node { id username email firstName lastName state
		groups(first: 10) { edges { node { id name } } } } } } }`, nil, nil)
	r := e.post(org.admin, `{ users(first: 100) { edges { node { groups(first: 100) { edges { node { members(first: 100) { edges { node { id } } } } } } } } } }`, nil)
	require.Len(t, r.Errors, 1)
	require.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", r.Errors[0].code())

	small := newEnv(t, api.Config{ComplexityLimit: 5})
	r = small.post(small.tenant("acme").admin, `{ users(first: 2) { edges { node { id username email } } } }`, nil)
	require.Len(t, r.Errors, 1)
	require.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", r.Errors[0].code())
}

// O3: an admin changes its organization's settings; a bad value changes nothing.
func TestUpdateOrganizationSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	const q = `mutation($in: UpdateOrganizationInput!) { updateOrganization(input: $in) {
		organization { id defaultImportState userLimit passwordTakeover } } }`
	var out struct {
		UpdateOrganization struct {
			Organization struct {
				ID                 string
				DefaultImportState string
				UserLimit          *int
				PasswordTakeover   bool
			}
		}
	}
	e.must(org.admin, q, map[string]any{"in": map[string]any{"defaultImportState": "ACTIVE", "userLimit": 10, "passwordTakeover": true}}, &out)
	o := out.UpdateOrganization.Organization
	require.Equal(t, org.id, o.ID)
	require.Equal(t, "ACTIVE", o.DefaultImportState)
	require.Equal(t, 10, *o.UserLimit)
	require.True(t, o.PasswordTakeover)

	e.fails(org.admin, q, map[string]any{"in": map[string]any{"userLimit": -1, "passwordTakeover": false}}, "BAD_USER_INPUT", "userLimit")
	e.must(org.admin, `{ organization { id defaultImportState userLimit passwordTakeover } }`, nil, &struct{}{})
	var after struct {
		Organization struct{ PasswordTakeover bool }
	}
	e.must(org.admin, `{ organization { passwordTakeover } }`, nil, &after)
	require.True(t, after.Organization.PasswordTakeover)
}

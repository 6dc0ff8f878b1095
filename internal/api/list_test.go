package api_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
)

// seedUsers inserts n users u0000… directly (as the organization's admin), fast.
func (e *env) seedUsers(org tenant, n int, mutate func(i int, c *ent.UserCreate)) []string {
	e.t.Helper()
	ctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: pulid.ID(org.id), Role: auth.RoleAdmin})
	builders := make([]*ent.UserCreate, n)
	for i := range builders {
		c := e.client.User.Create().SetUsername(fmt.Sprintf("u%04d", i)).SetEmail(fmt.Sprintf("u%04d@example.com", i))
		if mutate != nil {
			mutate(i, c)
		}
		builders[i] = c
	}
	users, err := e.client.User.CreateBulk(builders...).Save(ctx)
	require.NoError(e.t, err)
	ids := make([]string, n)
	for i, u := range users {
		ids[i] = string(u.ID)
	}
	return ids
}

type page struct {
	Users struct {
		TotalCount int
		PageInfo   struct {
			HasNextPage, HasPreviousPage bool
			StartCursor, EndCursor       *string
		}
		Edges []struct {
			Node struct{ Username string }
		}
	}
}

func (p page) names() []string {
	out := make([]string, len(p.Users.Edges))
	for i, e := range p.Users.Edges {
		out[i] = e.Node.Username
	}
	return out
}

const pageQuery = `query($first: Int, $after: Cursor, $last: Int, $before: Cursor, $order: UserOrder) {
	users(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
		totalCount
		pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
		edges { node { username } }
	}
}`

func TestPaginationForwardAndBackward(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	const n = 260
	e.seedUsers(org, n, nil)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("u%04d", i)
	}
	order := map[string]any{"field": "USERNAME", "direction": "ASC"}

	var forward []string
	vars := map[string]any{"first": 100, "order": order}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		var p page
		e.must(org.admin, pageQuery, vars, &p)
		require.Equal(t, n, p.Users.TotalCount)
		forward = append(forward, p.names()...)
		if !p.Users.PageInfo.HasNextPage {
			break
		}
		vars["after"] = *p.Users.PageInfo.EndCursor
	}
	require.Equal(t, want, forward)

	var backward []string
	vars = map[string]any{"last": 100, "order": order}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		var p page
		e.must(org.admin, pageQuery, vars, &p)
		backward = append(p.names(), backward...)
		if !p.Users.PageInfo.HasPreviousPage {
			break
		}
		vars["before"] = *p.Users.PageInfo.StartCursor
	}
	require.Equal(t, want, backward)

	// Default order (by id, i.e. creation order) pages the same way.
	var p page
	e.must(org.admin, pageQuery, map[string]any{"first": 3}, &p)
	require.Equal(t, want[:3], p.names())

	// Without first/last a connection returns one full page, not every row.
	e.must(org.admin, pageQuery, map[string]any{"order": order}, &p)
	require.Equal(t, want[:100], p.names())
	require.True(t, p.Users.PageInfo.HasNextPage)

	// Page size limit.
	e.fails(org.admin, pageQuery, map[string]any{"first": 101}, "BAD_USER_INPUT", "first")
	e.fails(org.admin, pageQuery, map[string]any{"last": 1000}, "BAD_USER_INPUT", "last")
	e.fails(org.admin, pageQuery, map[string]any{"first": -1}, "BAD_USER_INPUT", "first")
	e.fails(org.admin, `{ userGroups(first: 500) { totalCount } }`, nil, "BAD_USER_INPUT", "first")
	e.fails(org.admin, `{ users(first: 1) { edges { node { groups(first: 101) { totalCount } } } } }`, nil, "BAD_USER_INPUT", "first")
	manyIDs := make([]string, 101)
	for i := range manyIDs {
		manyIDs[i] = "US0000000000000000000000000" + string(rune('0'+i%10))
	}
	e.fails(org.admin, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": manyIDs}, "BAD_USER_INPUT", "ids")
	r := e.post(org.admin, pageQuery, map[string]any{"first": 1, "after": "not-a-cursor"})
	require.NotEmpty(t, r.Errors)
	require.Equal(t, "BAD_USER_INPUT", r.Errors[0].code())
}

func TestFilterAndOrderCombinations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	depts := []string{"Sales", "Engineering", "Support"}
	e.seedUsers(org, 30, func(i int, c *ent.UserCreate) {
		c.SetDepartment(depts[i%3]).SetLastName(fmt.Sprintf("L%02d", 29-i))
		if i%5 == 0 {
			c.SetState(user.StateSUSPENDED)
		}
	})
	g := e.createGroup(org.admin, "engineers")
	var eng []string
	var out page
	e.must(org.admin, `{ users(first: 100, where: {department: "Engineering"}) { totalCount edges { node { username } } } }`, nil, &out)
	require.Equal(t, 10, out.Users.TotalCount)
	var ids struct {
		Users struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	e.must(org.admin, `{ users(first: 100, where: {department: "Engineering"}) { edges { node { id } } } }`, nil, &ids)
	for _, ed := range ids.Users.Edges {
		eng = append(eng, ed.Node.ID)
	}
	e.must(org.admin, addMembers, map[string]any{"g": g, "u": eng[:4]}, nil)

	cases := []struct {
		name, args string
		want       []string
	}{
		{"state", `where: {state: SUSPENDED}, orderBy: {field: USERNAME}`, []string{"u0000", "u0005", "u0010", "u0015", "u0020", "u0025"}},
		{"state and department", `where: {state: SUSPENDED, department: "Sales"}, orderBy: {field: USERNAME}`, []string{"u0000", "u0015"}},
		{"or", `where: {or: [{username: "u0001"}, {usernameHasSuffix: "29"}]}, orderBy: {field: USERNAME, direction: DESC}`, []string{"u0029", "u0001"}},
		{"not", `where: {not: {stateIn: [STAGED]}, departmentIn: ["Support"]}, orderBy: {field: USERNAME}`, []string{"u0005", "u0020"}},
		{"case-insensitive", `where: {usernameEqualFold: "U0007"}`, []string{"u0007"}},
		{"order by other field", `where: {usernameLTE: "u0002"}, orderBy: {field: LAST_NAME}`, []string{"u0002", "u0001", "u0000"}},
		// Ties are broken by id in the same direction, so pages are stable.
		{"order by state, ties by id", `where: {usernameLTE: "u0005"}, orderBy: {field: STATE, direction: DESC}`, []string{"u0005", "u0000", "u0004", "u0003", "u0002", "u0001"}},
		{"member of group", `where: {hasGroupsWith: {name: "engineers"}}, orderBy: {field: USERNAME}`, []string{"u0001", "u0004", "u0007", "u0010"}},
		{"not member of any group", `where: {hasGroups: false, department: "Engineering"}, orderBy: {field: USERNAME}`, []string{"u0013", "u0016", "u0019", "u0022", "u0025", "u0028"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p page
			e.must(org.admin, `{ users(first: 100, `+c.args+`) { totalCount edges { node { username } } } }`, nil, &p)
			require.Equal(t, c.want, p.names())
			require.Equal(t, len(c.want), p.Users.TotalCount)
		})
	}

	// A group's members and a user's groups are connections with filters and order too.
	var gm struct {
		Node struct {
			Members struct {
				TotalCount int
				Edges      []struct{ Node struct{ Username string } }
			}
		}
	}
	e.must(org.admin, `query($id: ID!) { node(id: $id) { ... on UserGroup {
		members(first: 2, where: {usernameGT: "u0001"}, orderBy: {field: USERNAME, direction: DESC}) { totalCount edges { node { username } } }
	} } }`, map[string]any{"id": g}, &gm)
	require.Equal(t, 3, gm.Node.Members.TotalCount)
	require.Len(t, gm.Node.Members.Edges, 2, "%+v", gm)
	require.Equal(t, "u0010", gm.Node.Members.Edges[0].Node.Username)
	require.Equal(t, "u0007", gm.Node.Members.Edges[1].Node.Username)

	var ug struct {
		Node struct {
			Groups struct {
				Edges []struct{ Node struct{ Name string } }
			}
		}
	}
	e.must(org.admin, `query($id: ID!) { node(id: $id) { ... on User { groups(where: {nameHasPrefix: "eng"}, orderBy: {field: NAME}) { edges { node { name } } } } } }`,
		map[string]any{"id": eng[0]}, &ug)
	require.Len(t, ug.Node.Groups.Edges, 1)
	require.Equal(t, "engineers", ug.Node.Groups.Edges[0].Node.Name)
	require.True(t, slices.Contains(eng, eng[0]))
}

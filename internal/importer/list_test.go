package importer_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const listQuery = `query($in: ID!, $first: Int, $after: Cursor, $where: RemoteUserWhereInput) {
  remoteUsers(integrationID: $in, first: $first, after: $after, where: $where) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { remoteID userPrincipalName mail mailNickname displayName givenName accountEnabled inDirectory directoryUser { id username } } }
  }
}`

type listOut struct {
	RemoteUsers struct {
		TotalCount *int
		PageInfo   struct {
			HasNextPage, HasPreviousPage bool
			EndCursor                    *string
		}
		Edges []struct {
			Cursor string
			Node   struct {
				RemoteID, UserPrincipalName, GivenName string
				AccountEnabled, InDirectory            bool
				DirectoryUser                          *struct{ ID, Username string }
			}
		}
	}
}

// list pages through remoteUsers with where and returns every node's UPN,
// the totalCount of the first page and the number of calls made.
func (e *env) list(key string, first int, where map[string]any) (upns []string, total *int, calls int, inDir map[string]bool) {
	e.t.Helper()
	inDir = map[string]bool{}
	var after any
	for {
		var out listOut
		e.must(key, listQuery, map[string]any{"in": e.in.ID, "first": first, "after": after, "where": where}, &out)
		calls++
		c := out.RemoteUsers
		if calls == 1 {
			total = c.TotalCount
			require.False(e.t, c.PageInfo.HasPreviousPage)
		} else {
			require.True(e.t, c.PageInfo.HasPreviousPage)
		}
		require.LessOrEqual(e.t, len(c.Edges), first)
		for _, ed := range c.Edges {
			require.True(e.t, ed.Node.AccountEnabled)
			upns = append(upns, ed.Node.UserPrincipalName)
			inDir[ed.Node.UserPrincipalName] = ed.Node.InDirectory
			require.Equal(e.t, ed.Node.InDirectory, ed.Node.DirectoryUser != nil)
		}
		if !c.PageInfo.HasNextPage {
			return
		}
		require.NotNil(e.t, c.PageInfo.EndCursor)
		after = *c.PageInfo.EndCursor
		require.Less(e.t, calls, 100, "paging must end")
	}
}

// TestRemoteUsersPagingAndFilters: M1 — active users only, Relay paging over
// Graph's skiptoken with totalCount from $count, inDirectory (email match or
// link) and search filters, cursor validation, read-only access, org
// isolation.
func TestRemoteUsersPagingAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0()})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 25)) // seed.user.0 … 24, given names cycle over 10
	e.remote("off@contoso.com", "off", "off@contoso.com", false, nil)
	// In the directory by email (case differs), and one by import (link).
	_, err := e.client.User.Create().SetOrganizationID(e.org.id).SetUsername("three").SetEmail("SEED.USER.3@contoso.com").Save(e.ctx)
	require.NoError(t, err)
	e.startWorker()
	var five string
	for _, u := range e.sim.Users(e.creds.TenantID) {
		if u.UserPrincipalName == "seed.user.5@contoso.com" {
			five = u.ID
		}
	}
	require.Equal(t, "IMPORTED", e.importIDs(e.org.admin, []string{five}).ImportUsers.Results[0].Status)

	upns, total, calls, inDir := e.list(e.org.readOnly, 10, nil)
	require.NotNil(t, total)
	require.Equal(t, 25, *total, "disabled users are not listed")
	require.Len(t, upns, 25)
	require.Equal(t, 3, calls)
	seen := map[string]bool{}
	for _, u := range upns {
		require.False(t, seen[u], "no user twice across pages: %s", u)
		seen[u] = true
		require.Equal(t, u == "seed.user.3@contoso.com" || u == "seed.user.5@contoso.com", inDir[u], u)
	}
	// Odd page sizes cross Graph pages the same way.
	upns7, _, _, _ := e.list(e.org.admin, 7, nil)
	require.Equal(t, upns, upns7)

	in, total, _, _ := e.list(e.org.admin, 10, map[string]any{"inDirectory": true})
	require.ElementsMatch(t, []string{"seed.user.3@contoso.com", "seed.user.5@contoso.com"}, in)
	require.Nil(t, total, "Graph cannot count what only the directory knows")
	notIn, _, _, _ := e.list(e.org.admin, 10, map[string]any{"inDirectory": false})
	require.Len(t, notIn, 23)

	// Given names cycle Ada, Alan, Grace…: Grace is k = 2, 12, 22.
	grace, total, _, _ := e.list(e.org.admin, 2, map[string]any{"search": "grace"})
	require.ElementsMatch(t, []string{"seed.user.2@contoso.com", "seed.user.12@contoso.com", "seed.user.22@contoso.com"}, grace)
	require.Equal(t, 3, *total)
	byUPN, _, _, _ := e.list(e.org.admin, 10, map[string]any{"search": "SEED.USER.17"})
	require.Contains(t, byUPN, "seed.user.17@contoso.com")
	both, _, _, _ := e.list(e.org.admin, 10, map[string]any{"search": "grace", "inDirectory": false})
	require.Len(t, both, 3)

	// Cursors: malformed, or from another query, are refused.
	q := map[string]any{"in": e.in.ID, "first": 5}
	q["after"] = "!!!"
	e.fails(e.org.admin, listQuery, q, "BAD_USER_INPUT")
	var out listOut
	e.must(e.org.admin, listQuery, map[string]any{"in": e.in.ID, "first": 5}, &out)
	q["after"] = *out.RemoteUsers.PageInfo.EndCursor
	q["where"] = map[string]any{"search": "grace"}
	e.fails(e.org.admin, listQuery, q, "BAD_USER_INPUT")
	var users struct {
		Users struct{ PageInfo struct{ EndCursor string } }
	}
	e.must(e.org.admin, `{ users(first: 1) { pageInfo { endCursor } } }`, nil, &users)
	e.fails(e.org.admin, listQuery, map[string]any{"in": e.in.ID, "after": users.Users.PageInfo.EndCursor}, "BAD_USER_INPUT")
	e.fails(e.org.admin, listQuery, map[string]any{"in": e.in.ID, "first": 101}, "BAD_USER_INPUT")

	// Org isolation: another organization cannot list through this integration.
	other := e.newOrg("other")
	e.fails(other.admin, listQuery, map[string]any{"in": e.in.ID}, "NOT_FOUND")
	e.fails(other.readOnly, listQuery, map[string]any{"in": e.in.ID}, "NOT_FOUND")
	// …and its own integration into the same tenant sees its own directory.
	e.in = e.integration(other.id, "Other")
	_, _, _, inDir = e.list(other.admin, 50, nil)
	for u, b := range inDir {
		require.False(t, b, "%s is in acme's directory, not other's", u)
	}
}

package api_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
)

func memberCount(t *testing.T, e *env, key, query string, vars map[string]any) int {
	t.Helper()
	var out map[string]struct {
		UserGroup struct{ Members struct{ TotalCount int } }
	}
	e.must(key, query, vars, &out)
	for _, v := range out {
		return v.UserGroup.Members.TotalCount
	}
	t.Fatal("no payload")
	return 0
}

// Adding and removing members is idempotent and takes many ids at once; one
// unknown id fails the whole call and changes nothing.
func TestGroupMembershipIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	ids := e.seedUsers(org, 5, nil)
	g := e.createGroup(org.admin, "staff")

	require.Equal(t, 3, memberCount(t, e, org.admin, addMembers, map[string]any{"g": g, "u": ids[:3]}))
	require.Equal(t, 3, memberCount(t, e, org.admin, addMembers, map[string]any{"g": g, "u": ids[:3]}), "repeat is a no-op")
	require.Equal(t, 4, memberCount(t, e, org.admin, addMembers, map[string]any{"g": g, "u": []string{ids[0], ids[3], ids[3]}}), "duplicates and existing members are skipped")
	require.Equal(t, 4, memberCount(t, e, org.admin, addMembers, map[string]any{"g": g, "u": []string{}}))

	e.fails(org.admin, addMembers, map[string]any{"g": g, "u": []string{ids[4], "US00000000000000000000000000"}}, "NOT_FOUND", "userIDs")
	e.fails(org.admin, addMembers, map[string]any{"g": g, "u": []string{ids[4], g}}, "NOT_FOUND", "userIDs")
	e.fails(org.admin, addMembers, map[string]any{"g": ids[0], "u": []string{ids[4]}}, "NOT_FOUND", "groupID")
	require.Equal(t, 4, memberCount(t, e, org.admin, removeMembers, map[string]any{"g": g, "u": []string{}}), "failed adds changed nothing")

	require.Equal(t, 2, memberCount(t, e, org.admin, removeMembers, map[string]any{"g": g, "u": ids[:2]}))
	require.Equal(t, 2, memberCount(t, e, org.admin, removeMembers, map[string]any{"g": g, "u": ids[:2]}), "repeat is a no-op")
	require.Equal(t, 1, memberCount(t, e, org.admin, removeMembers, map[string]any{"g": g, "u": []string{ids[2], ids[4]}}), "non-members are ignored")

	// Deleting a member user removes the membership; deleting the group keeps the users.
	e.must(org.admin, `mutation($id: ID!) { deleteUser(id: $id) { deletedID } }`, map[string]any{"id": ids[3]}, nil)
	require.Equal(t, 0, memberCount(t, e, org.admin, removeMembers, map[string]any{"g": g, "u": []string{}}))
	e.must(org.admin, addMembers, map[string]any{"g": g, "u": ids[:1]}, nil)
	var del struct{ DeleteUserGroup struct{ DeletedID string } }
	e.must(org.admin, `mutation($id: ID!) { deleteUserGroup(id: $id) { deletedID } }`, map[string]any{"id": g}, &del)
	require.Equal(t, g, del.DeleteUserGroup.DeletedID)
	require.Equal(t, 4, e.userCount(org.admin))
	e.fails(org.admin, `mutation($id: ID!) { deleteUserGroup(id: $id) { deletedID } }`, map[string]any{"id": g}, "NOT_FOUND", "id")
}

// Listing 100 users with their groups runs a bounded number of SQL queries,
// independent of the number of users (entgql collects the edges eagerly).
func TestListingUsersWithGroupsHasNoNPlusOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	ids := e.seedUsers(org, 100, nil)
	for i := range 3 {
		g := e.createGroup(org.admin, fmt.Sprintf("g%d", i))
		e.must(org.admin, addMembers, map[string]any{"g": g, "u": ids[i*20:]}, nil)
	}
	const q = `query($n: Int!) { users(first: $n, orderBy: {field: USERNAME}) {
		totalCount
		edges { node { id username groups(first: 10, orderBy: {field: NAME}) { totalCount edges { node { id name } } } } }
	} }`
	count := func(n int) int64 {
		var out struct {
			Users struct {
				Edges []struct {
					Node struct {
						Groups struct{ TotalCount int }
					}
				}
			}
		}
		before := e.queries.Load()
		e.must(org.admin, q, map[string]any{"n": n}, &out)
		require.Len(t, out.Users.Edges, n)
		for i, ed := range out.Users.Edges {
			require.Equal(t, 1+min(i/20, 2), ed.Node.Groups.TotalCount, "user %d", i)
		}
		return e.queries.Load() - before
	}
	small, large := count(5), count(100)
	t.Logf("SQL statements: 5 users → %d, 100 users → %d", small, large)
	require.LessOrEqual(t, large, int64(6))
	require.Equal(t, small, large, "query count must not grow with the page")
}

package api_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
)

// seedMemberships makes each user a member of perUser of the groups, the
// rows inserted group by group in random order, so PostgreSQL returns them
// in no useful order.
func (e *env) seedMemberships(org tenant, users []string, groups, perUser int) []string {
	e.t.Helper()
	ctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: pulid.ID(org.id), Role: auth.RoleAdmin})
	gids := make([]string, groups)
	for i := range gids {
		g, err := e.client.UserGroup.Create().SetName(fmt.Sprintf("g%03d", groups-i)).Save(ctx) // names against id order
		require.NoError(e.t, err)
		gids[i] = string(g.ID)
	}
	members := map[string][]pulid.ID{}
	for i, u := range users {
		for k := range perUser {
			g := gids[(i*3+k*7)%groups] // 7 is prime to the group counts used: perUser distinct groups
			members[g] = append(members[g], pulid.ID(u))
		}
	}
	order := slices.Clone(gids)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, g := range order {
		require.NoError(e.t, e.client.UserGroup.UpdateOneID(pulid.ID(g)).AddMemberIDs(members[g]...).Exec(ctx))
	}
	return gids
}

// The read path of issue 12 runs a fixed number of SQL statements per
// request, whatever the page size: the API key, the page of users and, when
// asked for, one statement for every user's first groups (entgql's field
// collection with a per-parent window).
func TestReadPathSQLStatementsPerRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	ids := e.seedUsers(org, 100, nil)
	e.seedMemberships(org, ids, 20, 12)
	e.userCount(org.readOnly) // the first use of a key records last_used_at

	for _, c := range []struct {
		name, query string
		want        int64
	}{
		{"users", `query($n: Int!) { users(first: $n) { edges { node { id username email } } } }`, 2},
		{"users with groups", `query($n: Int!) { users(first: $n) { edges { node { id username email groups(first: 10) { edges { node { name } } } } } } }`, 3},
		{"users with groups, totals and cursors", `query($n: Int!) { users(first: $n) { totalCount pageInfo { endCursor } edges { cursor node { id groups(first: 10) { totalCount pageInfo { hasNextPage } edges { node { name } } } } } } }`, 5},
	} {
		for _, n := range []int{5, 100} {
			var out struct {
				Users struct {
					Edges []struct{ Node struct{ ID string } }
				}
			}
			before := e.queries.Load()
			e.must(org.readOnly, c.query, map[string]any{"n": n}, &out)
			require.Len(t, out.Users.Edges, n)
			require.Equal(t, c.want, e.queries.Load()-before, "%s, %d rows: SQL statements", c.name, n)
		}
	}
}

// Each user's nested page holds that user's first rows in the requested
// order, forwards and backwards. entgql's per-parent window picks the right
// rows, but ent hands them to their parents in the order the statement
// returns them; without an ORDER BY on it a user's first+1 rows came in any
// order and the page dropped the wrong one (issue 12).
func TestNestedConnectionPagesAreOrdered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	ids := e.seedUsers(org, 40, nil)
	e.seedMemberships(org, ids, 30, 12)
	ctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: pulid.ID(org.id), Role: auth.RoleAdmin})

	for _, c := range []struct {
		args string
		want func(u string) []string
	}{
		{"first: 10", func(u string) []string { return e.groupNames(ctx, u, usergroup.ByID(), 0, 10) }},
		{"first: 3, orderBy: {field: NAME}", func(u string) []string { return e.groupNames(ctx, u, usergroup.ByName(), 0, 3) }},
		{"first: 10, orderBy: {field: NAME, direction: DESC}", func(u string) []string {
			return e.groupNames(ctx, u, usergroup.ByName(sql.OrderDesc()), 0, 10)
		}},
		{"last: 4", func(u string) []string { return e.groupNames(ctx, u, usergroup.ByID(), 8, 4) }},
	} {
		var out struct {
			Users struct {
				Edges []struct {
					Node struct {
						ID     string
						Groups struct {
							Edges []struct{ Node struct{ Name string } }
						}
					}
				}
			}
		}
		e.must(org.readOnly, `{ users(first: 100) { edges { node { id groups(`+c.args+`) { edges { node { name } } } } } } }`, nil, &out)
		require.Len(t, out.Users.Edges, 40)
		for _, ed := range out.Users.Edges {
			var got []string
			for _, g := range ed.Node.Groups.Edges {
				got = append(got, g.Node.Name)
			}
			require.Equal(t, c.want(ed.Node.ID), got, "groups(%s) of %s", c.args, ed.Node.ID)
		}
	}
}

// groupNames is the user's groups in order, skip then take, straight from ent.
func (e *env) groupNames(ctx context.Context, u string, order usergroup.OrderOption, skip, take int) []string {
	e.t.Helper()
	gs, err := e.client.User.Query().Where(user.ID(pulid.ID(u))).QueryGroups().Order(order).Offset(skip).Limit(take).All(ctx)
	require.NoError(e.t, err)
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = g.Name
	}
	require.Len(e.t, names, take)
	return names
}

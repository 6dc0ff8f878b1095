package graphsim

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// deltaRound follows nextLinks from first and returns every item and the deltaLink.
func (e *env) deltaRound(first string, hdr ...string) ([]map[string]any, string) {
	e.t.Helper()
	var items []map[string]any
	for next := first; ; {
		m := e.json(200, "GET", next, nil, hdr...)
		for _, v := range m["value"].([]any) {
			items = append(items, v.(map[string]any))
		}
		if dl, ok := m["@odata.deltaLink"].(string); ok {
			require.NotContains(e.t, m, "@odata.nextLink")
			u, err := url.Parse(dl)
			require.NoError(e.t, err)
			require.NotEmpty(e.t, u.Query().Get("$deltatoken"))
			return items, dl
		}
		next = m["@odata.nextLink"].(string)
	}
}

func TestUserDelta(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 250))

	items, link := e.deltaRound("/users/delta?$select=displayName,jobTitle")
	require.Len(t, items, 250)
	require.Equal(t, []string{"displayName", "id", "jobTitle"}, keys(items[0]))
	// Small pages with Prefer: odata.maxpagesize.
	items2, _ := e.deltaRound("/users/delta", "Prefer", "odata.maxpagesize=50")
	require.Len(t, items2, 250)

	// Nothing changed: an empty round.
	items, link = e.deltaRound(link)
	require.Empty(t, items)

	users := e.sim.Users(e.creds.TenantID)
	created := e.json(201, "POST", "/users", newUserBody("new@contoso.com"))["id"].(string)
	e.json(204, "PATCH", "/users/"+users[0].ID, map[string]any{"jobTitle": "Boss"})
	e.json(204, "DELETE", "/users/"+users[1].ID, nil)

	items, link = e.deltaRound(link)
	require.Len(t, items, 3)
	byID := map[string]map[string]any{}
	for _, it := range items {
		byID[it["id"].(string)] = it
	}
	require.Equal(t, "Boss", byID[users[0].ID]["jobTitle"])
	require.Equal(t, map[string]any{"id": users[1].ID, "@removed": map[string]any{"reason": "changed"}}, byID[users[1].ID])
	require.Contains(t, byID, created)
	// Later rounds keep the first round's $select.
	require.Equal(t, []string{"displayName", "id", "jobTitle"}, keys(byID[created]))

	items, _ = e.deltaRound(link)
	require.Empty(t, items)

	// $deltatoken=latest: no items, just a link that sees later changes.
	m := e.json(200, "GET", "/users/delta?$deltatoken=latest", nil)
	require.Empty(t, m["value"])
	latest := m["@odata.deltaLink"].(string)
	e.json(204, "PATCH", "/users/"+users[2].ID, map[string]any{"department": "R&D"})
	items, _ = e.deltaRound(latest)
	require.Len(t, items, 1)

	// $filter on id only; unsupported options.
	items, _ = e.deltaRound("/users/delta?$filter=" + url.QueryEscape("id eq '"+users[3].ID+"' or id eq '"+users[4].ID+"'"))
	require.Len(t, items, 2)
	code, _, _ := e.graphErr(400, "GET", "/users/delta?$filter="+url.QueryEscape("displayName eq 'x'"), nil)
	require.Equal(t, codeUnsupportedQuery, code)
	for _, opt := range []string{"$top=5", "$orderby=displayName", "$expand=manager"} {
		e.graphErr(400, "GET", "/users/delta?"+opt, nil)
	}
}

func TestGroupDeltaMembers(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 5))
	users := e.sim.Users(e.creds.TenantID)
	g := e.json(201, "POST", "/groups", newGroupBody("Ops"))
	gid := g["id"].(string)
	e.json(204, "POST", "/groups/"+gid+"/members/$ref", ref(users[0].ID))
	e.json(204, "POST", "/groups/"+gid+"/members/$ref", ref(users[1].ID))

	items, link := e.deltaRound("/groups/delta?$select=displayName,members")
	require.Len(t, items, 1)
	require.Equal(t, "Ops", items[0]["displayName"])
	require.ElementsMatch(t, []any{
		map[string]any{"@odata.type": "#microsoft.graph.user", "id": users[0].ID},
		map[string]any{"@odata.type": "#microsoft.graph.user", "id": users[1].ID},
	}, items[0]["members@delta"])

	e.json(204, "DELETE", "/groups/"+gid+"/members/"+users[0].ID+"/$ref", nil)
	e.json(204, "POST", "/groups/"+gid+"/members/$ref", ref(users[2].ID))
	items, link = e.deltaRound(link)
	require.Len(t, items, 1)
	require.ElementsMatch(t, []any{
		map[string]any{"@odata.type": "#microsoft.graph.user", "id": users[0].ID, "@removed": map[string]any{"reason": "deleted"}},
		map[string]any{"@odata.type": "#microsoft.graph.user", "id": users[2].ID},
	}, items[0]["members@delta"])

	// Without members in $select there is no members@delta.
	plain, _ := e.deltaRound("/groups/delta?$select=displayName")
	require.NotContains(t, plain[0], "members@delta")

	e.json(204, "DELETE", "/groups/"+gid, nil)
	items, _ = e.deltaRound(link)
	require.Equal(t, []map[string]any{{"id": gid, "@removed": map[string]any{"reason": "deleted"}}}, items)
}

func TestDeltaTokenExpiry(t *testing.T) {
	clk := newFakeClock()
	e := newEnv(t, Config{DisableThrottling: true, Now: clk.Now})
	_, link := e.deltaRound("/users/delta")
	clk.Advance(7*24*time.Hour + time.Second)
	e.tok = e.token(e.creds.TenantID, e.creds.ClientID, e.creds.ClientSecret)
	res, b := e.do("GET", link, nil)
	require.Equal(t, 410, res.StatusCode, "%s", b)
	require.Equal(t, e.srv.URL+"/v1.0/users/delta", res.Header.Get("Location"))
	require.Contains(t, string(b), codeResyncRequired)

	e2 := newEnv(t, Config{DisableThrottling: true, DeltaResync400: true})
	_, link = e2.deltaRound("/users/delta")
	e2.sim.ExpireDeltaTokens()
	code, _, _ := e2.graphErr(400, "GET", link, nil)
	require.Equal(t, codeSyncStateNotFound, code)
	e2.graphErr(400, "GET", "/users/delta?$deltatoken=bogus", nil)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

func TestGroupDeltaSplitsBigGroups(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true, DeltaMembersPerPage: 4})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 10))
	_, err := e.sim.SeedGroups(e.creds.TenantID, 1, 10)
	require.NoError(t, err)
	e.json(201, "POST", "/groups", newGroupBody("Small"))

	pages := 0
	members := map[string]bool{}
	items := 0
	for next := "/groups/delta?$select=displayName,members"; next != ""; {
		m := e.json(200, "GET", next, nil)
		pages++
		for _, v := range m["value"].([]any) {
			it := v.(map[string]any)
			items++
			for _, md := range it["members@delta"].([]any) {
				members[md.(map[string]any)["id"].(string)] = true
			}
		}
		next, _ = m["@odata.nextLink"].(string)
	}
	require.Len(t, members, 10, "merged over the pages, every member is there")
	require.Equal(t, 4, items, "the big group comes as 3 items, the small one as 1")
	require.GreaterOrEqual(t, pages, 3)
}

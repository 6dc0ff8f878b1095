package graphsim

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// A tenant administrator's edits (admin API) change the directory as Graph
// writes do: the next delta round carries them — changed properties,
// members@delta additions and removals, @removed for deletions — while the
// app's request log and throttle budget see nothing (issue 14).
func TestTenantAdminEditsShowInDelta(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 4))
	gids, err := e.sim.SeedGroups(e.creds.TenantID, 1, 2)
	require.NoError(t, err)
	users := e.sim.Users(e.creds.TenantID)
	g := e.sim.Groups(e.creds.TenantID)[0]
	_, ulink := e.deltaRound("/users/delta?$select=jobTitle,accountEnabled")
	_, glink := e.deltaRound("/groups/delta?$select=displayName,members")
	e.sim.ClearRequests()

	base := e.srv.URL + "/_sim/tenants/" + e.creds.TenantID
	st, b := adminDo(t, base, "PATCH", "/users/"+users[0].ID, map[string]any{"jobTitle": "Edited", "accountEnabled": false})
	require.Equal(t, 204, st, "%s", b)
	var outside []string // users not in the group
	for _, u := range users {
		if !slices.Contains(g.Members, u.ID) {
			outside = append(outside, u.ID)
		}
	}
	require.Len(t, outside, 2)
	outsider, deleted := outside[0], outside[1]
	st, b = adminDo(t, base, "DELETE", "/users/"+deleted, nil)
	require.Equal(t, 204, st, "%s", b)
	st, b = adminDo(t, base, "POST", "/groups/"+gids[0]+"/members", map[string]any{"id": outsider})
	require.Equal(t, 204, st, "%s", b)
	st, b = adminDo(t, base, "DELETE", "/groups/"+gids[0]+"/members/"+g.Members[0], nil)
	require.Equal(t, 204, st, "%s", b)
	st, b = adminDo(t, base, "PATCH", "/groups/"+gids[0], map[string]any{"displayName": "Renamed"})
	require.Equal(t, 204, st, "%s", b)
	// Errors: unknown user, undeclared property, a member twice.
	st, _ = adminDo(t, base, "PATCH", "/users/nobody", map[string]any{"jobTitle": "x"})
	require.Equal(t, 400, st)
	st, _ = adminDo(t, base, "PATCH", "/users/"+users[0].ID, map[string]any{"noSuchProperty": "x"})
	require.Equal(t, 400, st)
	st, _ = adminDo(t, base, "POST", "/groups/"+gids[0]+"/members", map[string]any{"id": outsider})
	require.Equal(t, 400, st)
	require.Empty(t, e.sim.Requests(), "the tenant's admin is not the app")

	items, _ := e.deltaRound(ulink)
	byID := map[string]map[string]any{}
	for _, it := range items {
		byID[it["id"].(string)] = it
	}
	require.Len(t, items, 2)
	require.Contains(t, byID, users[0].ID)
	require.Equal(t, "Edited", byID[users[0].ID]["jobTitle"])
	require.Equal(t, false, byID[users[0].ID]["accountEnabled"])
	require.Equal(t, map[string]any{"reason": "changed"}, byID[deleted]["@removed"])

	items, _ = e.deltaRound(glink)
	require.Len(t, items, 1)
	require.Equal(t, "Renamed", items[0]["displayName"])
	md := items[0]["members@delta"].([]any)
	require.Len(t, md, 2)
	seen := map[string]bool{}
	for _, m := range md {
		mm := m.(map[string]any)
		_, removed := mm["@removed"]
		seen[mm["id"].(string)] = removed
	}
	require.Equal(t, map[string]bool{outsider: false, g.Members[0]: true}, seen)
}

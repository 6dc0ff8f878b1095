package graphsim

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func ref(id string) map[string]any {
	return map[string]any{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/" + id}
}

func TestSecurityGroupsAndMembers(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 30))
	users := e.sim.Users(e.creds.TenantID)

	g := e.json(201, "POST", "/groups", newGroupBody("Engineering"))
	require.Equal(t, e.srv.URL+"/v1.0/$metadata#groups/$entity", g["@odata.context"])
	require.Equal(t, true, g["securityEnabled"])
	require.Equal(t, false, g["mailEnabled"])
	require.Equal(t, []any{}, g["groupTypes"])
	gid := g["id"].(string)
	// G2: display names are not unique, so "more than one → create a new one" can happen.
	e.json(201, "POST", "/groups", newGroupBody("Engineering"))
	l := e.json(200, "GET", "/groups?$filter=displayName%20eq%20'Engineering'", nil)
	require.Len(t, l["value"], 2)

	// Validation.
	bad := newGroupBody("Bad")
	bad["mailNickname"] = "with.period"
	code, msg, _ := e.graphErr(400, "POST", "/groups", bad)
	require.Equal(t, codeBadRequest, code)
	require.Equal(t, "Invalid value specified for property 'mailNickname' of resource 'Group'.", msg)
	bad = newGroupBody("Bad")
	delete(bad, "securityEnabled")
	e.graphErr(400, "POST", "/groups", bad)
	bad = newGroupBody(string(make([]rune, 257)))
	e.graphErr(400, "POST", "/groups", bad)

	// Members through $ref.
	members := "/groups/" + gid + "/members"
	e.json(204, "POST", members+"/$ref", ref(users[0].ID))
	e.json(204, "POST", members+"/$ref", map[string]any{"@odata.id": e.srv.URL + "/v1.0/users/" + users[1].ID})
	code, msg, _ = e.graphErr(400, "POST", members+"/$ref", ref(users[0].ID))
	require.Equal(t, codeBadRequest, code)
	require.Equal(t, msgMemberExists, msg)
	code, _, _ = e.graphErr(404, "POST", members+"/$ref", ref("00000000-0000-4000-8000-000000000000"))
	require.Equal(t, codeNotFound, code)
	e.graphErr(404, "POST", "/groups/00000000-0000-4000-8000-000000000000/members/$ref", ref(users[0].ID))

	m := e.json(200, "GET", members, nil)
	require.Equal(t, e.srv.URL+"/v1.0/$metadata#directoryObjects", m["@odata.context"])
	require.Len(t, m["value"], 2)
	first := m["value"].([]any)[0].(map[string]any)
	require.Equal(t, "#microsoft.graph.user", first["@odata.type"])
	require.Contains(t, first, "userPrincipalName")

	e.json(204, "DELETE", members+"/"+users[0].ID+"/$ref", nil)
	code, msg, _ = e.graphErr(400, "DELETE", members+"/"+users[0].ID+"/$ref", nil)
	require.Equal(t, codeBadRequest, code)
	require.Equal(t, msgMemberAbsent, msg)

	// Bulk add: at most 20, one duplicate fails the whole request.
	bind := func(from, to int) []string {
		var out []string
		for _, u := range users[from:to] {
			out = append(out, "https://graph.microsoft.com/v1.0/directoryObjects/"+u.ID)
		}
		return out
	}
	code, _, _ = e.graphErr(400, "PATCH", "/groups/"+gid, map[string]any{"members@odata.bind": bind(2, 23)})
	require.Equal(t, codeBadRequest, code)
	code, msg, _ = e.graphErr(400, "PATCH", "/groups/"+gid, map[string]any{"members@odata.bind": bind(1, 5)})
	require.Equal(t, msgMemberExists, msg, code)
	require.Len(t, e.groupMembers(gid), 1, "a failed bulk add adds nobody")
	e.json(204, "PATCH", "/groups/"+gid, map[string]any{"members@odata.bind": bind(2, 22), "description": "Builders"})
	require.Len(t, e.groupMembers(gid), 21)

	// Paging of members, and $count.
	m = e.json(200, "GET", members+"?$top=10", nil)
	require.Len(t, m["value"], 10)
	require.Contains(t, m, "@odata.nextLink")
	res, b := e.do("GET", members+"/$count", nil, "ConsistencyLevel", "eventual")
	require.Equal(t, "21", string(b), "%d", res.StatusCode)

	// Deleting a user drops its memberships; deleting the group works.
	e.json(204, "DELETE", "/users/"+users[1].ID, nil)
	require.Len(t, e.groupMembers(gid), 20)
	e.json(204, "PATCH", "/groups/"+gid, map[string]any{"displayName": "Eng"})
	require.Equal(t, "Eng", e.json(200, "GET", "/groups/"+gid, nil)["displayName"])
	e.json(204, "DELETE", "/groups/"+gid, nil)
	e.graphErr(404, "GET", "/groups/"+gid, nil)
	e.graphErr(404, "GET", members, nil)
}

func (e *env) groupMembers(gid string) []string {
	for _, g := range e.sim.Groups(e.creds.TenantID) {
		if g.ID == gid {
			return g.Members
		}
	}
	e.t.Fatalf("no group %s", gid)
	return nil
}

// I2/I7: authorising reads the verified domains and their password validity.
func TestDomainsAndOrganization(t *testing.T) {
	sim := New(Config{})
	tn, err := sim.AddTenant(TenantSpec{Name: "fabrikam", Domains: []string{"fabrikam.com", "fabrikam.org"},
		UnverifiedDomains: []string{"fabrikam.net"}, PasswordValidityDays: 90})
	require.NoError(t, err)
	require.Equal(t, "fabrikam.onmicrosoft.com", tn.InitialDomain)
	a, err := sim.AddApp(tn.ID, AppSpec{Name: "x", Permissions: []string{PermDomainReadAll, PermOrganizationReadAll}})
	require.NoError(t, err)
	e := &env{t: t, sim: sim, srv: newServer(t, sim), creds: Credentials{TenantID: tn.ID, ClientID: a.ClientID, ClientSecret: a.ClientSecret}}
	e.tok = e.token(tn.ID, a.ClientID, a.ClientSecret)

	d := e.json(200, "GET", "/domains", nil)
	byName := map[string]map[string]any{}
	for _, v := range d["value"].([]any) {
		m := v.(map[string]any)
		byName[m["id"].(string)] = m
	}
	require.Len(t, byName, 4)
	require.Equal(t, true, byName["fabrikam.onmicrosoft.com"]["isInitial"])
	require.Equal(t, true, byName["fabrikam.com"]["isDefault"])
	require.Equal(t, false, byName["fabrikam.onmicrosoft.com"]["isDefault"])
	require.Equal(t, false, byName["fabrikam.net"]["isVerified"])
	require.EqualValues(t, 90, byName["fabrikam.org"]["passwordValidityPeriodInDays"])
	e.json(200, "GET", "/domains/fabrikam.org", nil)
	e.graphErr(404, "GET", "/domains/contoso.com", nil)

	o := e.json(200, "GET", "/organization", nil)
	org := o["value"].([]any)[0].(map[string]any)
	require.Equal(t, tn.ID, org["id"])
	require.Len(t, org["verifiedDomains"], 3)
	require.Equal(t, fmt.Sprint(tn.ID), e.json(200, "GET", "/organization/"+tn.ID, nil)["id"])
}

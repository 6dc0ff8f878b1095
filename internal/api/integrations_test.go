package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/graphsim"
)

func integrationCount(s *simEnv, key string) int {
	s.t.Helper()
	var out struct{ Integrations struct{ TotalCount int } }
	s.must(key, `{ integrations { totalCount } }`, nil, &out)
	return out.Integrations.TotalCount
}

// Every bad setting answers a typed error naming the field and stores nothing;
// the secret is sealed at rest and never comes back.
func TestIntegrationSettingsValidation(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")

	long := strings.Repeat("x", 101)
	for _, tc := range []struct {
		name  string
		extra map[string]any
		code  string
		field string
	}{
		{"blank name", map[string]any{"name": "  "}, "BAD_USER_INPUT", "name"},
		{"long name", map[string]any{"name": long}, "BAD_USER_INPUT", "name"},
		{"control in name", map[string]any{"name": "a\x00b"}, "BAD_USER_INPUT", "name"},
		{"blank tenant", map[string]any{"tenantID": ""}, "BAD_USER_INPUT", "tenantID"},
		{"tenant with path", map[string]any{"tenantID": "../evil"}, "BAD_USER_INPUT", "tenantID"},
		{"blank client", map[string]any{"clientID": " "}, "BAD_USER_INPUT", "clientID"},
		{"blank secret", map[string]any{"clientSecret": ""}, "BAD_USER_INPUT", "clientSecret"},
		{"graph URL scheme", map[string]any{"graphBaseURL": "ftp://graph.example.com"}, "BAD_USER_INPUT", "graphBaseURL"},
		{"login URL relative", map[string]any{"loginBaseURL": "login/here"}, "BAD_USER_INPUT", "loginBaseURL"},
		{"bad domain", map[string]any{"domains": []string{"contoso.com", "not a domain"}}, "BAD_USER_INPUT", "domains"},
		{"single label domain", map[string]any{"domains": []string{"localhost"}}, "BAD_USER_INPUT", "domains"},
		{"default not listed", map[string]any{"domains": []string{"contoso.com"}, "defaultDomain": "fabrikam.com"}, "BAD_USER_INPUT", "defaultDomain"},
		{"default without domains", map[string]any{"defaultDomain": "contoso.com"}, "BAD_USER_INPUT", "defaultDomain"},
		{"unknown attribute", map[string]any{"attributeMappings": []map[string]any{{"attribute": "shoeSize", "property": "givenName", "export": true, "import": false}}}, "BAD_USER_INPUT", "attributeMappings"},
		{"property exported twice", map[string]any{"attributeMappings": []map[string]any{
			{"attribute": "firstName", "property": "givenName", "export": true, "import": false},
			{"attribute": "lastName", "property": "givenName", "export": true, "import": false},
		}}, "BAD_USER_INPUT", "attributeMappings"},
	} {
		e := s.fails(org.admin, createIntegration, map[string]any{"in": s.input("bad", creds, tc.extra)}, tc.code, tc.field)
		assert.NotContains(t, e.Message, creds.ClientSecret, tc.name)
	}
	require.Zero(t, integrationCount(s, org.admin), "failed creates stored nothing")
	s.fails(org.readOnly, createIntegration, map[string]any{"in": s.input("ro", creds, nil)}, "FORBIDDEN", "")

	// A valid one: domains normalised, default mapping, secret sealed.
	raw := s.post(org.admin, createIntegration, map[string]any{"in": s.input("Contoso", creds, map[string]any{
		"domains": []string{" Contoso.COM ", "contoso.com", "Fabrikam.com."}, "defaultDomain": "FABRIKAM.com",
	})})
	require.Empty(t, raw.Errors)
	require.NotContains(t, string(raw.Data), creds.ClientSecret, "the secret is never returned")
	var created struct{ CreateIntegration payloadOut }
	require.NoError(t, jsonUnmarshal(raw.Data, &created))
	in := created.CreateIntegration.Integration
	assert.Equal(t, "UNAUTHORIZED", in.Status)
	assert.Equal(t, []string{"contoso.com", "fabrikam.com"}, in.Domains)
	assert.Equal(t, "fabrikam.com", *in.DefaultDomain)
	assert.True(t, in.HasClientSecret)
	assert.Len(t, in.AttributeMappings, 20, "the shipped default table")
	assert.Equal(t, "COMPANY", in.EmailSource)
	assert.Empty(t, created.CreateIntegration.Jobs)

	row, err := s.client.Integration.Get(sysCtx(), pulidID(in.ID))
	require.NoError(t, err)
	require.NotEmpty(t, row.ClientSecretSealed)
	require.NotContains(t, row.ClientSecretSealed, creds.ClientSecret, "stored sealed, not in plain text")

	var listed struct {
		Integrations struct {
			Edges []struct {
				Node struct{ HasClientSecret bool }
			}
		}
	}
	s.must(org.readOnly, `{ integrations { edges { node { hasClientSecret } } } }`, nil, &listed)
	require.Len(t, listed.Integrations.Edges, 1)
	assert.True(t, listed.Integrations.Edges[0].Node.HasClientSecret, "the sealed column is loaded even when only hasClientSecret is asked")

	s.fails(org.admin, createIntegration, map[string]any{"in": s.input("CONTOSO", creds, nil)}, "CONFLICT", "name")

	// Updates are validated the same way and change nothing when refused.
	for _, tc := range []struct {
		in    map[string]any
		field string
	}{
		{map[string]any{"name": ""}, "name"},
		{map[string]any{"clientSecret": ""}, "clientSecret"},
		{map[string]any{"graphBaseURL": s.simURL, "clearGraphBaseURL": true}, "graphBaseURL"},
		{map[string]any{"domains": []string{"contoso.com"}}, "defaultDomain"},
		{map[string]any{"defaultDomain": "other.com"}, "defaultDomain"},
		{map[string]any{"domains": []string{"-bad-.com"}}, "domains"},
		{map[string]any{"attributeMappings": []map[string]any{}, "resetAttributeMappings": true}, "attributeMappings"},
	} {
		s.fails(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": tc.in}, "BAD_USER_INPUT", tc.field)
	}
	s.fails(org.admin, updateIntegration, map[string]any{"id": "IN00000000000000000000000000", "in": map[string]any{"name": "x"}}, "NOT_FOUND", "id")
	require.Equal(t, in, s.integration(org.admin, in.ID), "refused updates changed nothing")

	up := s.mutate(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{
		"name": "Contoso EU", "clearDefaultDomain": true, "emailSource": "ALTERNATE", "attributeMappings": []map[string]any{},
	}})
	assert.Equal(t, "Contoso EU", up.Integration.Name)
	assert.Nil(t, emptyToNil(up.Integration.DefaultDomain))
	assert.Equal(t, "ALTERNATE", up.Integration.EmailSource)
	assert.Empty(t, up.Integration.AttributeMappings)
	assert.Empty(t, up.Jobs, "an unauthorized integration has nothing to reconcile")
	up = s.mutate(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"resetAttributeMappings": true}})
	assert.Len(t, up.Integration.AttributeMappings, 20)

	// Another organization sees none of it.
	other := s.tenant("globex")
	require.Zero(t, integrationCount(s, other.admin))
	s.fails(other.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"name": "mine"}}, "NOT_FOUND", "id")
	s.fails(other.admin, deleteIntegration, map[string]any{"id": in.ID}, "NOT_FOUND", "id")
}

// Without AllowCustomURLs only Microsoft's endpoints are accepted (SSRF).
func TestIntegrationCustomURLsRefused(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, false)
	org := s.tenant("acme")
	creds := graphsim.Credentials{TenantID: "contoso.onmicrosoft.com", ClientID: "11111111-2222-3333-4444-555555555555", ClientSecret: "s3cr3t"}
	s.fails(org.admin, createIntegration, map[string]any{"in": s.input("sim", creds, map[string]any{"loginBaseURL": nil})}, "BAD_USER_INPUT", "graphBaseURL")
	s.fails(org.admin, createIntegration, map[string]any{"in": s.input("sim", creds, map[string]any{"graphBaseURL": nil})}, "BAD_USER_INPUT", "loginBaseURL")
	s.fails(org.admin, createIntegration, map[string]any{"in": s.input("sim", creds, map[string]any{
		"graphBaseURL": "http://graph.microsoft.com/v1.0", "loginBaseURL": nil})}, "BAD_USER_INPUT", "graphBaseURL")
	in := s.createIntegration(org.admin, s.input("ms", creds, map[string]any{
		"graphBaseURL": "https://graph.microsoft.com/v1.0", "loginBaseURL": "https://login.microsoftonline.com/"}))
	assert.Equal(t, "https://login.microsoftonline.com", *in.LoginBaseURL)
	in = s.createIntegration(org.admin, s.input("default", creds, map[string]any{"graphBaseURL": nil, "loginBaseURL": nil}))
	assert.Nil(t, emptyToNil(in.GraphBaseURL))
	s.fails(org.admin, updateIntegration, map[string]any{"id": in.ID, "in": map[string]any{"graphBaseURL": s.simURL}}, "BAD_USER_INPUT", "graphBaseURL")
}

// Authorization failures are typed, name the setting at fault, leave the
// integration UNAUTHORIZED and record why.
func TestAuthorizeErrors(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")
	weak, err := s.sim.AddApp(creds.TenantID, graphsim.AppSpec{Name: "weak", Permissions: []string{graphsim.PermUserReadWriteAll}})
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		creds graphsim.Credentials
		extra map[string]any
		code  string
		field string
	}{
		{"bad secret", graphsim.Credentials{TenantID: creds.TenantID, ClientID: creds.ClientID, ClientSecret: "wrong-secret"}, nil, "BAD_USER_INPUT", "clientSecret"},
		{"unknown tenant", graphsim.Credentials{TenantID: "00000000-0000-0000-0000-000000000000", ClientID: creds.ClientID, ClientSecret: creds.ClientSecret}, nil, "BAD_USER_INPUT", "tenantID"},
		{"unknown client", graphsim.Credentials{TenantID: creds.TenantID, ClientID: "99999999-0000-0000-0000-000000000000", ClientSecret: creds.ClientSecret}, nil, "BAD_USER_INPUT", "clientID"},
		{"no Domain.Read.All", graphsim.Credentials{TenantID: creds.TenantID, ClientID: weak.ClientID, ClientSecret: weak.ClientSecret}, nil, "FAILED_PRECONDITION", ""},
		{"unreachable", creds, map[string]any{"loginBaseURL": "http://127.0.0.1:1", "graphBaseURL": "http://127.0.0.1:1/v1.0"}, "UNAVAILABLE", ""},
	} {
		in := s.createIntegration(org.admin, s.input(tc.name, tc.creds, tc.extra))
		e := s.fails(org.admin, authorizeIntegration, map[string]any{"id": in.ID}, tc.code, tc.field)
		assert.NotContains(t, e.Message, creds.ClientSecret, tc.name)
		got := s.integration(org.admin, in.ID)
		assert.Equal(t, "UNAUTHORIZED", got.Status, tc.name)
		assert.NotEmpty(t, got.lastError(), "%s: last error recorded", tc.name)
		assert.Empty(t, got.VerifiedDomains, tc.name)
	}

	good := s.createIntegration(org.admin, s.input("good", creds, nil))
	p := s.mutate(org.admin, authorizeIntegration, map[string]any{"id": good.ID})
	assert.Equal(t, "AUTHORIZED", p.Integration.Status)
	assert.NotNil(t, p.Integration.AuthorizedAt)
	assert.Equal(t, []string{"contoso.com", "contoso.onmicrosoft.com"}, p.Integration.VerifiedDomains)
	assert.False(t, p.Integration.TenantPasswordExpiry)
	assert.Empty(t, p.Integration.lastError())
	assert.Empty(t, p.Jobs, "nobody bound yet")

	// Changing credentials de-authorizes; re-authorizing works again.
	up := s.mutate(org.admin, updateIntegration, map[string]any{"id": good.ID, "in": map[string]any{"clientSecret": creds.ClientSecret}})
	assert.Equal(t, "UNAUTHORIZED", up.Integration.Status)
	assert.Nil(t, up.Integration.AuthorizedAt)
	s.fails(org.readOnly, authorizeIntegration, map[string]any{"id": good.ID}, "FORBIDDEN", "")
	assert.Equal(t, "AUTHORIZED", s.mutate(org.admin, authorizeIntegration, map[string]any{"id": good.ID}).Integration.Status)
	s.fails(org.admin, authorizeIntegration, map[string]any{"id": "IN00000000000000000000000000"}, "NOT_FOUND", "id")
}

// I3: a domain authorized in one integration is refused in another, naming it.
// D5: configured domains must be verified. I7: password expiry is reported.
func TestAuthorizeDomainRules(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com", "contoso.net")
	require.NoError(t, s.sim.AddDomain(creds.TenantID, "pending.com", false))

	first := s.authorized(org.admin, "First", creds, map[string]any{"domains": []string{"contoso.com"}})

	second := s.createIntegration(org.admin, s.input("Second", creds, map[string]any{"domains": []string{"Contoso.com"}}))
	e := s.fails(org.admin, authorizeIntegration, map[string]any{"id": second.ID}, "CONFLICT", "domains")
	assert.Contains(t, e.Message, `"First"`)
	assert.Contains(t, e.Message, "contoso.com")
	assert.Equal(t, "UNAUTHORIZED", s.integration(org.admin, second.ID).Status)
	assert.Contains(t, s.integration(org.admin, second.ID).lastError(), "First")

	// D2 (no domains) claims every verified domain, contoso.com included.
	d2 := s.createIntegration(org.admin, s.input("Everything", creds, nil))
	s.fails(org.admin, authorizeIntegration, map[string]any{"id": d2.ID}, "CONFLICT", "domains")

	// A disjoint domain of the same tenant is fine.
	net := s.authorized(org.admin, "Net", creds, map[string]any{"domains": []string{"contoso.net"}})

	// D5 at authorization and on a later domain change.
	pending := s.createIntegration(org.admin, s.input("Pending", creds, map[string]any{"domains": []string{"pending.com"}}))
	e = s.fails(org.admin, authorizeIntegration, map[string]any{"id": pending.ID}, "BAD_USER_INPUT", "domains")
	assert.Contains(t, e.Message, "pending.com")
	s.fails(org.admin, updateIntegration, map[string]any{"id": net.ID, "in": map[string]any{"domains": []string{"contoso.net", "pending.com"}}}, "BAD_USER_INPUT", "domains")
	s.fails(org.admin, updateIntegration, map[string]any{"id": net.ID, "in": map[string]any{"domains": []string{"contoso.net", "contoso.com"}}}, "CONFLICT", "domains")
	assert.Equal(t, []string{"contoso.net"}, s.integration(org.admin, net.ID).Domains)

	// Once the first is de-authorized its domain is free again.
	s.mutate(org.admin, deauthorize, map[string]any{"id": first.ID})
	assert.Equal(t, "AUTHORIZED", s.mutate(org.admin, authorizeIntegration, map[string]any{"id": second.ID}).Integration.Status)

	// Another organization may authorize the same domains (I3 is per organization).
	other := s.tenant("globex")
	s.authorized(other.admin, "Theirs", creds, map[string]any{"domains": []string{"contoso.com"}})

	// I7: a tenant whose domains expire passwords.
	tn, err := s.sim.AddTenant(graphsim.TenantSpec{Name: "expiring", Domains: []string{"expiring.com"}, PasswordValidityDays: 90})
	require.NoError(t, err)
	app, err := s.sim.AddApp(tn.ID, graphsim.AppSpec{Permissions: graphsim.AllPermissions})
	require.NoError(t, err)
	exp := s.authorized(org.admin, "Expiring", graphsim.Credentials{TenantID: tn.ID, ClientID: app.ClientID, ClientSecret: app.ClientSecret}, nil)
	assert.True(t, exp.TenantPasswordExpiry)
}

// I5: de-authorizing removes every binding, keeps links and calls nobody.
// I6: deleting removes bindings and links for good, and calls nobody either.
func TestDeauthorizeAndDelete(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")
	in := s.authorized(org.admin, "Contoso", creds, nil)
	u1, u2 := s.createUser(org.admin, "ann"), s.createUser(org.admin, "bob")
	g := s.createGroup(org.admin, "staff")
	s.must(org.admin, addMembers, map[string]any{"g": g, "u": []string{u2.ID}}, nil)
	s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{u1.ID}})
	s.mutate(org.admin, bindGroups, map[string]any{"i": in.ID, "ids": []string{g}})
	l1 := s.link(org.id, in.ID, u1.ID, "r1")
	s.link(org.id, in.ID, u2.ID, "r2")

	s.sim.ClearRequests()
	p := s.mutate(org.admin, deauthorize, map[string]any{"id": in.ID})
	assert.Equal(t, "UNAUTHORIZED", p.Integration.Status)
	assert.Empty(t, p.Jobs)
	assert.Empty(t, s.sim.Requests(), "I5 sends nothing to the tenant")
	ctx := sysCtx()
	require.Zero(t, s.client.UserBinding.Query().CountX(ctx))
	require.Zero(t, s.client.GroupBinding.Query().CountX(ctx))
	require.Equal(t, 2, s.client.RemoteLink.Query().CountX(ctx), "links stay")

	var links struct {
		Node struct {
			Links struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						IntegrationID, Status string
						RemoteID              *string
					}
				}
			}
		}
	}
	s.must(org.readOnly, `query($id: ID!) { node(id: $id) { ... on User { links { totalCount edges { node { integrationID status remoteID } } } } } }`, map[string]any{"id": u1.ID}, &links)
	require.Equal(t, 1, links.Node.Links.TotalCount)
	require.Len(t, links.Node.Links.Edges, 1)
	assert.Equal(t, "OUT_OF_SCOPE", links.Node.Links.Edges[0].Node.Status, "released: no longer managed")
	var ilinks struct {
		Node struct{ Links struct{ TotalCount int } }
	}
	s.must(org.readOnly, `query($id: ID!) { node(id: $id) { ... on Integration { links(where: {status: OUT_OF_SCOPE}) { totalCount } } } }`, map[string]any{"id": in.ID}, &ilinks)
	assert.Equal(t, 2, ilinks.Node.Links.TotalCount)

	s.fails(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{u1.ID}}, "FAILED_PRECONDITION", "integrationID")
	s.fails(org.readOnly, deleteIntegration, map[string]any{"id": in.ID}, "FORBIDDEN", "")
	jobsBefore := s.client.Job.Query().CountX(ctx)

	// Re-authorizing needs re-binding (I5): nothing is bound, so no job.
	require.Empty(t, s.mutate(org.admin, authorizeIntegration, map[string]any{"id": in.ID}).Jobs)
	s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{u1.ID}})

	s.sim.ClearRequests()
	del := s.mutate(org.admin, deleteIntegration, map[string]any{"id": in.ID})
	assert.Equal(t, in.ID, del.DeletedID)
	assert.Empty(t, s.sim.Requests(), "I6 sends nothing to the tenant")
	require.Zero(t, s.client.UserBinding.Query().CountX(ctx))
	require.Zero(t, s.client.RemoteLink.Query().CountX(ctx), "links gone for good")
	_, err := s.client.RemoteLink.Get(ctx, l1.ID)
	require.Error(t, err)
	require.Equal(t, jobsBefore+1, s.client.Job.Query().CountX(ctx), "jobs stay as history")
	require.Zero(t, integrationCount(s, org.admin))
	s.fails(org.admin, deleteIntegration, map[string]any{"id": in.ID}, "NOT_FOUND", "id")
}

// I3 holds under concurrency: of two integrations claiming the same domain,
// authorized at the same time, exactly one wins.
func TestConcurrentAuthorizeOneWins(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")
	a := s.createIntegration(org.admin, s.input("A", creds, map[string]any{"domains": []string{"contoso.com"}}))
	b := s.createIntegration(org.admin, s.input("B", creds, map[string]any{"domains": []string{"contoso.com"}}))

	results := make(chan gqlResponse, 2)
	for _, id := range []string{a.ID, b.ID} {
		go func() { results <- s.post(org.admin, authorizeIntegration, map[string]any{"id": id}) }()
	}
	var won, lost int
	for range 2 {
		r := <-results
		if len(r.Errors) == 0 {
			won++
			continue
		}
		require.Equal(t, "CONFLICT", r.Errors[0].code(), "%+v", r.Errors[0])
		lost++
	}
	assert.Equal(t, 1, won)
	assert.Equal(t, 1, lost)
	statuses := []string{s.integration(org.admin, a.ID).Status, s.integration(org.admin, b.ID).Status}
	assert.ElementsMatch(t, []string{"AUTHORIZED", "UNAUTHORIZED"}, statuses)
}

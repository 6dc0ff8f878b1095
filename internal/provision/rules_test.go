package provision_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/provision"
)

// D1–D4 through the whole reconcile: what reaches the tenant, what is recorded.
// The tenant verifies contoso.com and fabrikam.com (not sub.contoso.com).
func TestDomainRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	type user struct {
		email, alternate string
		upn              string // "" = nothing remote
		status           remotelink.Status
		result           string
		code             string
	}
	cases := []struct {
		name    string
		set     func(*ent.IntegrationCreate)
		users   []user
		results map[string]string
	}{
		{"D2 no domains: mapped email as is, if verified", nil, []user{
			{email: "d2a@contoso.com", upn: "d2a@contoso.com", status: remotelink.StatusIN_SYNC, result: jobs.ResultCreated},
			{email: "d2b@FABRIKAM.com", upn: "d2b@fabrikam.com", status: remotelink.StatusIN_SYNC, result: jobs.ResultCreated},
			{email: "d2c@sub.contoso.com", status: remotelink.StatusERROR, result: jobs.ResultError, code: "UNVERIFIED_DOMAIN"},
			{email: "d2d@gmail.com", status: remotelink.StatusERROR, result: jobs.ResultError, code: "UNVERIFIED_DOMAIN"},
		}, nil},
		{"D3 listed domains, no default", func(c *ent.IntegrationCreate) { c.SetDomains([]string{"contoso.com"}) }, []user{
			{email: "d3a@Contoso.com", upn: "d3a@contoso.com", status: remotelink.StatusIN_SYNC, result: jobs.ResultCreated},
			{email: "d3b@fabrikam.com", status: remotelink.StatusOUT_OF_SCOPE, result: jobs.ResultOutOfScope},
			{email: "d3c@sub.contoso.com", status: remotelink.StatusOUT_OF_SCOPE, result: jobs.ResultOutOfScope},
		}, nil},
		{"D4 default domain rewrites the rest", func(c *ent.IntegrationCreate) {
			c.SetDomains([]string{"contoso.com", "fabrikam.com"}).SetDefaultDomain("contoso.com")
		}, []user{
			{email: "d4a@gmail.com", upn: "d4a@contoso.com", status: remotelink.StatusIN_SYNC, result: jobs.ResultCreated},
			{email: "d4b@FABRIKAM.COM", upn: "d4b@fabrikam.com", status: remotelink.StatusIN_SYNC, result: jobs.ResultCreated},
			{email: "d4c@sub.fabrikam.com", upn: "d4c@contoso.com", status: remotelink.StatusIN_SYNC, result: jobs.ResultCreated},
		}, nil},
		{"D1 alternate email", func(c *ent.IntegrationCreate) {
			c.SetEmailSource(integration.EmailSourceALTERNATE).SetDomains([]string{"fabrikam.com"})
		}, []user{
			{email: "d1a@contoso.com", alternate: "d1a.alt@fabrikam.com", upn: "d1a.alt@fabrikam.com", status: remotelink.StatusIN_SYNC, result: jobs.ResultCreated},
			{email: "d1b@fabrikam.com", alternate: "d1b@contoso.com", status: remotelink.StatusOUT_OF_SCOPE, result: jobs.ResultOutOfScope},
			{email: "d1c@fabrikam.com", status: remotelink.StatusERROR, result: jobs.ResultError, code: "NO_MAPPED_EMAIL"},
		}, nil},
	}
	for i, tc := range cases {
		in := e.integration("rules"+string(rune('a'+i)), e.creds, tc.set)
		var us []*ent.User
		for j, cu := range tc.users {
			u := e.user("u"+string(rune('a'+i))+string(rune('a'+j)), cu.email, active, func(c *ent.UserCreate) {
				if cu.alternate != "" {
					c.SetAlternateEmail(cu.alternate)
				}
			})
			us = append(us, u)
		}
		jb := e.bind(in, us...)
		e.run()
		items := e.items(jb.ID)
		for j, cu := range tc.users {
			l := e.link(in, us[j])
			require.NotNil(t, l, "%s: %s", tc.name, cu.email)
			require.Equal(t, cu.status, l.Status, "%s: %s (%s)", tc.name, cu.email, l.StatusReason)
			require.Equal(t, cu.result, items[j].Result, "%s: %s", tc.name, cu.email)
			if cu.upn != "" {
				r := e.remote(e.creds.TenantID, cu.upn)
				require.NotNil(t, r, "%s: %s", tc.name, cu.upn)
				require.Equal(t, cu.upn, r.UserPrincipalName)
				require.Equal(t, r.ID, l.RemoteID)
			} else {
				require.Empty(t, l.RemoteID)
				require.NotEmpty(t, l.StatusReason)
			}
			if cu.code != "" {
				require.Equal(t, jobitem.StatusFAILED, items[j].Status)
				require.Equal(t, cu.code, items[j].ErrorCode)
				require.Equal(t, cu.code, l.LastErrorCode)
			} else {
				require.Equal(t, jobitem.StatusSUCCEEDED, items[j].Status, "%s: %s", tc.name, cu.email)
			}
		}
	}
	// Only in-scope users reached the tenant; out-of-scope ones are not errors.
	require.Equal(t, 7, e.remoteCount(e.creds.TenantID))
	require.Len(t, e.events(provision.EventProvisionFailed), 3)
}

// I4: a user bound to two integrations syncs only to the one whose domains hold
// its mapped email; the other records OUT_OF_SCOPE. Moving the email moves it.
func TestOneOwnerAmongIntegrations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	fab, err := e.sim.Bootstrap("northwind", "northwind.com")
	require.NoError(t, err)
	require.NoError(t, e.client.Integration.UpdateOne(e.in).SetDomains([]string{"contoso.com"}).Exec(e.ctx))
	e.in = e.integration("northwind", fab, func(c *ent.IntegrationCreate) { c.SetDomains([]string{"northwind.com"}) })
	contoso, err := e.client.Integration.Query().Where(integration.Name("M365")).Only(e.ctx)
	require.NoError(t, err)

	u := e.user("ivy", "ivy@northwind.com", active)
	e.bind(contoso, u)
	e.bind(e.in, u)
	e.run()
	require.Equal(t, remotelink.StatusOUT_OF_SCOPE, e.link(contoso, u).Status)
	require.Empty(t, e.link(contoso, u).RemoteID)
	require.Equal(t, remotelink.StatusIN_SYNC, e.link(e.in, u).Status)
	require.NotNil(t, e.remote(fab.TenantID, "ivy@northwind.com"))
	require.Zero(t, e.remoteCount(e.creds.TenantID))
}

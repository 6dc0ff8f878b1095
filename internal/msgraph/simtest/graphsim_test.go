package simtest_test

// Integration tests: the client against the in-process emulator
// (internal/graphsim behind httptest), one test per endpoint and per error case
// of ../shared/GRAPH.md (issue 3). Time is compressed with the emulator's
// TimeScale/QuotaMultiplier and a short client BaseDelay; Retry-After stays whole
// seconds as Graph sends it, so throttling tests wait ~1 s per round.
//
// Emulator deviations found while writing these tests (429s without
// x-ms-resource-unit) were fixed in internal/graphsim; docs/graphsim.md lists
// the known differences from real Graph. Whole-second Retry-After (>= 1 s, as
// Graph) means each throttled round costs one real second here, whatever TimeScale.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/msgraph"
)

type env struct {
	sim    *graphsim.Sim
	srv    *httptest.Server
	creds  graphsim.Credentials
	c      *msgraph.Client
	domain string // a verified custom domain
}

const customDomain = "contoso.example"

func newEnv(t *testing.T, cfg graphsim.Config, tweak ...func(*msgraph.Config)) *env {
	t.Helper()
	sim := graphsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	creds, err := sim.Bootstrap("contoso", customDomain)
	require.NoError(t, err)
	e := &env{sim: sim, srv: srv, creds: creds, domain: customDomain}
	e.c = e.client(t, creds, tweak...)
	return e
}

func (e *env) client(t *testing.T, creds graphsim.Credentials, tweak ...func(*msgraph.Config)) *msgraph.Client {
	t.Helper()
	mc := msgraph.Config{
		TenantID: creds.TenantID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		LoginBaseURL: e.srv.URL, GraphBaseURL: e.srv.URL + "/v1.0",
		HTTPClient: e.srv.Client(),
		Retry:      msgraph.RetryPolicy{BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxAttempts: 8},
	}
	for _, f := range tweak {
		f(&mc)
	}
	c, err := msgraph.New(mc)
	require.NoError(t, err)
	return c
}

func (e *env) upn(local string) string { return local + "@" + e.domain }

func newUser(upn, nick string) msgraph.UserFields {
	return msgraph.UserFields{
		AccountEnabled:    msgraph.Ptr(true),
		DisplayName:       msgraph.Ptr("User " + nick),
		MailNickname:      msgraph.Ptr(nick),
		UserPrincipalName: msgraph.Ptr(upn),
		PasswordProfile:   &msgraph.PasswordProfile{Password: "Xy7!pLq-3vR9", ForceChangePasswordNextSignIn: false},
	}
}

func (e *env) requests(method, pathSuffix string) []graphsim.RequestLog {
	var out []graphsim.RequestLog
	for _, r := range e.sim.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, pathSuffix) {
			out = append(out, r)
		}
	}
	return out
}

func noThrottle() graphsim.Config { return graphsim.Config{DisableThrottling: true, Seed: 1} }

// I2: bad secret, unknown client and unknown tenant are told apart.
func TestSimAuthErrorsAreClassified(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	tok, err := e.c.Token(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, tok)

	for _, tc := range []struct {
		name   string
		creds  graphsim.Credentials
		reason string
	}{
		{"bad secret", graphsim.Credentials{TenantID: e.creds.TenantID, ClientID: e.creds.ClientID, ClientSecret: "wrong"}, "bad_secret"},
		{"unknown client", graphsim.Credentials{TenantID: e.creds.TenantID, ClientID: "00000000-0000-0000-0000-00000000beef", ClientSecret: "x"}, "unknown_client"},
		{"unknown tenant", graphsim.Credentials{TenantID: "11111111-1111-1111-1111-111111111111", ClientID: e.creds.ClientID, ClientSecret: e.creds.ClientSecret}, "unknown_tenant"},
	} {
		c := e.client(t, tc.creds)
		_, err := c.ListDomains(ctx)
		ae, ok := msgraph.IsAuthError(err)
		require.True(t, ok, "%s: %v", tc.name, err)
		assert.Equal(t, tc.reason, ae.Reason(), "%s: %v", tc.name, ae)
		assert.NotEmpty(t, ae.AADSTSCodes, tc.name)
		assert.NotContains(t, err.Error(), e.creds.ClientSecret)
	}
}

// A bad scope is its own AADSTS answer.
func TestSimAuthBadScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	c := e.client(t, e.creds, func(mc *msgraph.Config) { mc.Scope = "https://example.com/.default" })
	_, err := c.Token(context.Background())
	ae, ok := msgraph.IsAuthError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "bad_scope", ae.Reason(), "%v", ae)
}

// I7: DisablePasswordExpiration is written and read back; the tenant's
// password validity is visible on /domains.
func TestSimPasswordPoliciesAndValidity(t *testing.T) {
	t.Parallel()
	sim := graphsim.New(noThrottle())
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	ten, err := sim.AddTenant(graphsim.TenantSpec{Name: "expiring", Domains: []string{"exp.example"}, PasswordValidityDays: 90})
	require.NoError(t, err)
	app, err := sim.AddApp(ten.ID, graphsim.AppSpec{Permissions: []string{"User.ReadWrite.All", "Domain.Read.All"}})
	require.NoError(t, err)
	e := &env{sim: sim, srv: srv, domain: "exp.example",
		creds: graphsim.Credentials{TenantID: ten.ID, ClientID: app.ClientID, ClientSecret: app.ClientSecret}}
	e.c = e.client(t, e.creds)
	ctx := context.Background()
	ds, err := e.c.ListDomains(ctx)
	require.NoError(t, err)
	for _, d := range ds {
		require.NotNil(t, d.PasswordValidityPeriodInDays, d.ID)
		assert.Equal(t, 90, *d.PasswordValidityPeriodInDays, d.ID)
	}
	u, err := e.c.CreateUser(ctx, newUser(e.upn("pp"), "pp"))
	require.NoError(t, err)
	require.NoError(t, e.c.UpdateUser(ctx, u.ID, msgraph.UserFields{PasswordPolicies: msgraph.Ptr("DisablePasswordExpiration")}))
	got, err := e.c.GetUser(ctx, u.ID, "passwordPolicies")
	require.NoError(t, err)
	assert.Equal(t, "DisablePasswordExpiration", got.PasswordPolicies)
}

// I2/D5/I7: domains as the authorize flow reads them.
func TestSimDomainsAndOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	ds, err := e.c.ListDomains(ctx)
	require.NoError(t, err)
	byID := map[string]msgraph.Domain{}
	for _, d := range ds {
		byID[d.ID] = d
	}
	require.Contains(t, byID, "contoso.onmicrosoft.com")
	require.Contains(t, byID, customDomain)
	assert.True(t, byID["contoso.onmicrosoft.com"].IsInitial)
	assert.True(t, byID[customDomain].IsVerified)
	assert.NotNil(t, byID[customDomain].PasswordValidityPeriodInDays)

	org, err := e.c.GetOrganization(ctx)
	require.NoError(t, err)
	assert.Equal(t, e.creds.TenantID, org.ID)
	assert.NotEmpty(t, org.VerifiedDomains)
}

// P1/P3/P4: create, read by id and by UPN, patch only what is set, delete.
func TestSimUserLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	u, err := e.c.CreateUser(ctx, newUser(e.upn("ann"), "ann"))
	require.NoError(t, err)
	require.NotEmpty(t, u.ID)
	assert.Equal(t, e.upn("ann"), u.UserPrincipalName)

	got, err := e.c.GetUser(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, "User ann", got.DisplayName)
	assert.Nil(t, got.AccountEnabled, "not in Graph's default property set")
	got, err = e.c.GetUser(ctx, e.upn("ann"), "id", "accountEnabled", "mailNickname")
	require.NoError(t, err)
	require.NotNil(t, got.AccountEnabled)
	assert.True(t, *got.AccountEnabled)
	assert.Equal(t, "ann", got.MailNickname)
	assert.Empty(t, got.DisplayName, "$select honoured")

	require.NoError(t, e.c.UpdateUser(ctx, u.ID, msgraph.UserFields{JobTitle: msgraph.Ptr("Chef"), MobilePhone: msgraph.Ptr("+1 555 0100")}))
	require.NoError(t, e.c.UpdateUser(ctx, u.ID, msgraph.UserFields{AccountEnabled: msgraph.Ptr(false), Null: []string{"mobilePhone"}}))
	got, err = e.c.GetUser(ctx, u.ID, "jobTitle", "mobilePhone", "accountEnabled", "displayName")
	require.NoError(t, err)
	assert.Equal(t, "Chef", got.JobTitle, "second PATCH did not touch jobTitle")
	assert.Empty(t, got.MobilePhone, "cleared with null")
	assert.False(t, *got.AccountEnabled)
	assert.Equal(t, "User ann", got.DisplayName)

	found, err := e.c.FindUserByUPN(ctx, strings.ToUpper(e.upn("ann")))
	require.NoError(t, err)
	require.NotNil(t, found, "UPN comparison is case-insensitive")
	assert.Equal(t, u.ID, found.ID)

	require.NoError(t, e.c.DeleteUser(ctx, u.ID))
	_, err = e.c.GetUser(ctx, u.ID)
	assert.True(t, msgraph.IsNotFound(err), "%v", err)
	err = e.c.DeleteUser(ctx, u.ID)
	assert.True(t, msgraph.IsNotFound(err), "%v", err)
}

// Quotes in a UPN must not break (or inject into) the $filter literal.
func TestSimFindUserByUPNWithApostrophe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	u, err := e.c.CreateUser(ctx, newUser(e.upn("o'brien"), "obrien"))
	require.NoError(t, err)
	found, err := e.c.FindUserByUPN(ctx, e.upn("o'brien"))
	require.NoError(t, err)
	require.NotNil(t, found)
	assert.Equal(t, u.ID, found.ID)
	none, err := e.c.FindUserByUPN(ctx, e.upn("nobody"))
	require.NoError(t, err)
	assert.Nil(t, none)
}

// Every user error case of GRAPH.md "Error envelope" and "Users".
func TestSimUserErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	_, err := e.c.CreateUser(ctx, newUser(e.upn("dup"), "dup"))
	require.NoError(t, err)

	_, err = e.c.CreateUser(ctx, newUser(e.upn("dup"), "dup2"))
	assert.True(t, msgraph.IsUPNConflict(err), "duplicate UPN: %v", err)
	assert.True(t, msgraph.IsPermanent(err))

	_, err = e.c.CreateUser(ctx, newUser("x@unverified.example", "x"))
	assert.True(t, msgraph.IsUnverifiedDomain(err), "D2 unverified domain: %v", err)

	weak := newUser(e.upn("weak"), "weak")
	weak.PasswordProfile.Password = "password"
	_, err = e.c.CreateUser(ctx, weak)
	assert.True(t, msgraph.IsWeakPassword(err), "weak password: %v", err)

	containsName := newUser(e.upn("kim"), "kim")
	containsName.PasswordProfile.Password = "Kim-is-9-Great"
	_, err = e.c.CreateUser(ctx, containsName)
	assert.True(t, msgraph.IsWeakPassword(err), "password containing the UPN local part: %v", err)

	_, err = e.c.CreateUser(ctx, newUser(e.upn("nick"), "bad nick@"))
	prop, ok := msgraph.IsInvalidValue(err)
	assert.True(t, ok, "bad mailNickname: %v", err)
	assert.Equal(t, "mailNickname", prop)

	missing := newUser(e.upn("nopw"), "nopw")
	missing.PasswordProfile = nil
	_, err = e.c.CreateUser(ctx, missing)
	var ge *msgraph.Error
	require.ErrorAs(t, err, &ge, "missing passwordProfile")
	assert.Equal(t, http.StatusBadRequest, ge.Status)
	assert.NotEmpty(t, ge.RequestID)
	assert.NotEmpty(t, ge.ClientRequestID)

	long := strings.Repeat("a", 65)
	_, err = e.c.CreateUser(ctx, newUser(e.upn(long), "longone"))
	require.ErrorAs(t, err, &ge, "UPN local part > 64")
	assert.Equal(t, http.StatusBadRequest, ge.Status)

	_, err = e.c.CreateUser(ctx, newUser("a b@"+e.domain, "ab"))
	require.ErrorAs(t, err, &ge, "space in UPN local part")
	assert.Equal(t, http.StatusBadRequest, ge.Status)

	_, err = e.c.GetUser(ctx, "00000000-0000-0000-0000-000000000001")
	assert.True(t, msgraph.IsNotFound(err))
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, msgraph.CodeResourceNotFound, ge.Code)

	err = e.c.UpdateUser(ctx, "00000000-0000-0000-0000-000000000001", msgraph.UserFields{JobTitle: msgraph.Ptr("x")})
	assert.True(t, msgraph.IsNotFound(err))

	// $top out of range.
	_, _, err = e.c.ListUsers(msgraph.ListOptions{Top: 1000}).NextPage(ctx)
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, http.StatusBadRequest, ge.Status)
	assert.Contains(t, ge.Message, "Invalid page size specified: '1000'")

	// ne/endsWith need advanced query mode.
	_, _, err = e.c.ListUsers(msgraph.ListOptions{Filter: "userPrincipalName ne 'a@b.c'"}).NextPage(ctx)
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, msgraph.CodeUnsupportedQuery, ge.Code)
	got, err := e.c.ListUsers(msgraph.ListOptions{Filter: "endsWith(userPrincipalName,'@" + e.domain + "')", Advanced: true}).Collect(ctx)
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

// GRAPH.md "Auth": passwordProfile on an existing user needs the role.
func TestSimPasswordWriteNeedsUserAdministrator(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	u, err := e.c.CreateUser(ctx, newUser(e.upn("pw"), "pw"))
	require.NoError(t, err)
	require.NoError(t, e.c.UpdateUser(ctx, u.ID, msgraph.UserFields{PasswordProfile: &msgraph.PasswordProfile{Password: "N3w-Passw0rd!x"}}))
	assert.Equal(t, "N3w-Passw0rd!x", simUser(t, e, u.ID).Password)

	app, err := e.sim.AddApp(e.creds.TenantID, graphsim.AppSpec{Name: "no-role",
		Permissions: []string{"User.ReadWrite.All", "User-PasswordProfile.ReadWrite.All", "Domain.Read.All"}})
	require.NoError(t, err)
	c := e.client(t, graphsim.Credentials{TenantID: e.creds.TenantID, ClientID: app.ClientID, ClientSecret: app.ClientSecret})
	err = c.UpdateUser(ctx, u.ID, msgraph.UserFields{PasswordProfile: &msgraph.PasswordProfile{Password: "An0ther-Pass!x"}})
	assert.True(t, msgraph.IsForbidden(err), "%v", err)
	assert.True(t, msgraph.IsPermanent(err))
	// Creating with an initial password needs only User.ReadWrite.All.
	_, err = c.CreateUser(ctx, newUser(e.upn("pw2"), "pw2"))
	require.NoError(t, err)

	ro, err := e.sim.AddApp(e.creds.TenantID, graphsim.AppSpec{Name: "read-only", Permissions: []string{"Domain.Read.All"}})
	require.NoError(t, err)
	c = e.client(t, graphsim.Credentials{TenantID: e.creds.TenantID, ClientID: ro.ClientID, ClientSecret: ro.ClientSecret})
	_, err = c.CreateUser(ctx, newUser(e.upn("pw3"), "pw3"))
	assert.True(t, msgraph.IsForbidden(err), "%v", err)
}

func simUser(t *testing.T, e *env, id string) graphsim.User {
	t.Helper()
	for _, u := range e.sim.Users(e.creds.TenantID) {
		if u.ID == id {
			return u
		}
	}
	t.Fatalf("user %s not in emulator", id)
	return graphsim.User{}
}

func simGroup(t *testing.T, e *env, id string) graphsim.Group {
	t.Helper()
	for _, g := range e.sim.Groups(e.creds.TenantID) {
		if g.ID == id {
			return g
		}
	}
	t.Fatalf("group %s not in emulator", id)
	return graphsim.Group{}
}

// Issue 3: paging over 2,500 users, $top 999 and the default page of 100;
// $count with ConsistencyLevel.
func TestSimPagingOver2500Users(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 2500))

	p := e.c.ListUsers(msgraph.ListOptions{Top: 999, Select: []string{"id", "userPrincipalName"}})
	seen := map[string]bool{}
	pages := 0
	for {
		items, ok, err := p.NextPage(ctx)
		require.NoError(t, err)
		if !ok {
			break
		}
		pages++
		assert.LessOrEqual(t, len(items), 999)
		for _, u := range items {
			assert.False(t, seen[u.ID], "duplicate %s", u.ID)
			seen[u.ID] = true
		}
	}
	assert.Equal(t, 2500, len(seen))
	assert.Equal(t, 3, pages)

	e.sim.ClearRequests()
	all, err := e.c.ListUsers(msgraph.ListOptions{}).Collect(ctx)
	require.NoError(t, err)
	assert.Len(t, all, 2500)
	assert.Len(t, e.requests(http.MethodGet, "/v1.0/users"), 25, "default page is 100")

	n, err := e.c.CountUsers(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, 2500, n)
	n, err = e.c.CountUsers(ctx, "startsWith(userPrincipalName,'zzz')")
	require.NoError(t, err)
	assert.Equal(t, 0, n)

	p = e.c.ListUsers(msgraph.ListOptions{Top: 5, Advanced: true})
	_, _, err = p.NextPage(ctx)
	require.NoError(t, err)
	require.NotNil(t, p.Count(), "@odata.count in advanced mode")
	assert.Equal(t, 2500, *p.Count())
}

// G2/G3: security groups, duplicate names, members one by one and in bulk.
func TestSimGroupsAndMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	g, err := e.c.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "Engineering", MailNickname: "eng", Description: "d"})
	require.NoError(t, err)
	require.NotEmpty(t, g.ID)
	sg := simGroup(t, e, g.ID)
	assert.True(t, sg.SecurityEnabled)
	assert.False(t, sg.MailEnabled)

	g2, err := e.c.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "Engineering", MailNickname: "eng2"})
	require.NoError(t, err, "display names are not unique")
	found, err := e.c.FindGroupsByDisplayName(ctx, "Engineering")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{g.ID, g2.ID}, []string{found[0].ID, found[1].ID})
	none, err := e.c.FindGroupsByDisplayName(ctx, "Sales")
	require.NoError(t, err)
	assert.Empty(t, none)

	require.NoError(t, e.c.UpdateGroup(ctx, g.ID, msgraph.GroupFields{DisplayName: msgraph.Ptr("Engineering EU")}))
	got, err := e.c.GetGroup(ctx, g.ID)
	require.NoError(t, err)
	assert.Equal(t, "Engineering EU", got.DisplayName)
	assert.Equal(t, "d", got.Description, "PATCH left description alone")

	_, err = e.c.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "Bad", MailNickname: "has space"})
	var ge *msgraph.Error
	require.ErrorAs(t, err, &ge, "bad group mailNickname")
	assert.Equal(t, http.StatusBadRequest, ge.Status)

	var ids []string
	for i := range 45 {
		u, err := e.c.CreateUser(ctx, newUser(e.upn("m"+strconv.Itoa(i)), "m"+strconv.Itoa(i)))
		require.NoError(t, err)
		ids = append(ids, u.ID)
	}
	require.NoError(t, e.c.AddGroupMember(ctx, g.ID, ids[0]))
	err = e.c.AddGroupMember(ctx, g.ID, ids[0])
	assert.True(t, msgraph.IsMemberAlreadyPresent(err), "%v", err)
	err = e.c.AddGroupMember(ctx, g.ID, "00000000-0000-0000-0000-000000000009")
	assert.True(t, msgraph.IsNotFound(err), "unknown member id: %v", err)

	e.sim.ClearRequests()
	// ids[0] is already a member: its chunk is redone one by one.
	require.NoError(t, e.c.AddGroupMembers(ctx, g.ID, ids))
	assert.ElementsMatch(t, ids, simGroup(t, e, g.ID).Members)
	patches := e.requests(http.MethodPatch, "/groups/"+g.ID)
	require.Len(t, patches, 3, "20+20+5 members@odata.bind")
	assert.Equal(t, http.StatusBadRequest, patches[0].Status, "first chunk holds the existing member")
	assert.Len(t, e.requests(http.MethodPost, "/members/$ref"), 20)

	// An unknown member fails its chunk; the others still get in and the
	// error names the unknown one.
	// (Created through another client: for a group this client just created,
	// every 404 would first be retried as replication delay.)
	g3, err := e.client(t, e.creds).CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "Partial", MailNickname: "partial"})
	require.NoError(t, err)
	const ghost = "00000000-0000-0000-0000-00000000dead"
	err = e.c.AddGroupMembers(ctx, g3.ID, []string{ids[2], ghost, ids[3]})
	var me *msgraph.MemberError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, ghost, me.MemberID)
	assert.True(t, msgraph.IsNotFound(err))
	assert.ElementsMatch(t, []string{ids[2], ids[3]}, simGroup(t, e, g3.ID).Members)
	err = e.c.AddGroupMembers(ctx, "00000000-0000-0000-0000-00000000beef", ids[:2])
	assert.True(t, msgraph.IsNotFound(err), "unknown group: %v", err)
	assert.False(t, errors.As(err, &me), "an unknown group is not blamed on its members")

	members, err := e.c.ListGroupMembers(g.ID, msgraph.ListOptions{Top: 10}).Collect(ctx)
	require.NoError(t, err)
	assert.Len(t, members, 45)
	assert.Equal(t, "#microsoft.graph.user", members[0].ODataType)

	require.NoError(t, e.c.RemoveGroupMember(ctx, g.ID, ids[1]))
	err = e.c.RemoveGroupMember(ctx, g.ID, ids[1])
	assert.True(t, msgraph.IsMemberAbsent(err), "%v", err)
	assert.Len(t, simGroup(t, e, g.ID).Members, 44)

	require.NoError(t, e.c.DeleteGroup(ctx, g2.ID))
	_, err = e.c.GetGroup(ctx, g2.ID)
	assert.True(t, msgraph.IsNotFound(err))
}

// Issue 3: delta rounds covering create, update, delete and membership
// add/remove; $deltatoken=latest; expired token → ErrDeltaReset.
func TestSimDeltaRounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 250))
	a, err := e.c.CreateUser(ctx, newUser(e.upn("a"), "a"))
	require.NoError(t, err)
	b, err := e.c.CreateUser(ctx, newUser(e.upn("b"), "b"))
	require.NoError(t, err)
	g, err := e.c.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "G", MailNickname: "g"})
	require.NoError(t, err)
	require.NoError(t, e.c.AddGroupMember(ctx, g.ID, a.ID))

	changed, removed, link, err := e.c.UsersDelta(msgraph.DeltaOptions{Select: []string{"id", "displayName", "accountEnabled"}}).Collect(ctx)
	require.NoError(t, err)
	assert.Len(t, changed, 252)
	assert.Empty(t, removed)
	require.NotEmpty(t, link)

	groups, _, glink, err := e.c.GroupsDelta(msgraph.DeltaOptions{Select: []string{"displayName", "members"}}).Collect(ctx)
	require.NoError(t, err)
	groups = msgraph.MergeGroupDeltas(groups)
	require.Len(t, groups, 1)
	assert.Equal(t, []msgraph.MemberDelta{{ODataType: "#microsoft.graph.user", ID: a.ID}}, stripType(groups[0].MembersDelta, "#microsoft.graph.user"))

	// Round 2: nothing changed; walked page by page this time.
	it := e.c.UsersDelta(msgraph.DeltaOptions{DeltaLink: link})
	pages := 0
	for {
		pg, ok, err := it.Next(ctx)
		require.NoError(t, err)
		if !ok {
			break
		}
		pages++
		assert.Empty(t, pg.Changed)
		assert.Empty(t, pg.Removed)
	}
	assert.Equal(t, 1, pages)
	link2 := it.DeltaLink()
	require.NotEmpty(t, link2)

	// Round 3: create, update, delete.
	c, err := e.c.CreateUser(ctx, newUser(e.upn("c"), "c"))
	require.NoError(t, err)
	require.NoError(t, e.c.UpdateUser(ctx, a.ID, msgraph.UserFields{DisplayName: msgraph.Ptr("Ann Renamed")}))
	require.NoError(t, e.c.DeleteUser(ctx, b.ID))
	changed, removed, link3, err := e.c.UsersDelta(msgraph.DeltaOptions{DeltaLink: link2}).Collect(ctx)
	require.NoError(t, err)
	byID := map[string]msgraph.User{}
	for _, u := range changed {
		byID[u.ID] = u
	}
	assert.Len(t, byID, 2)
	assert.Contains(t, byID, c.ID)
	assert.Equal(t, "Ann Renamed", byID[a.ID].DisplayName)
	require.Len(t, removed, 1)
	assert.Equal(t, b.ID, removed[0].ID)
	assert.Contains(t, []string{"deleted", "changed"}, removed[0].Reason)
	assert.NotEqual(t, link2, link3)

	// Groups: membership add and remove.
	require.NoError(t, e.c.AddGroupMember(ctx, g.ID, c.ID))
	require.NoError(t, e.c.RemoveGroupMember(ctx, g.ID, a.ID))
	groups, _, _, err = e.c.GroupsDelta(msgraph.DeltaOptions{DeltaLink: glink}).Collect(ctx)
	require.NoError(t, err)
	groups = msgraph.MergeGroupDeltas(groups)
	require.Len(t, groups, 1)
	md := map[string]bool{} // id → removed
	for _, m := range groups[0].MembersDelta {
		md[m.ID] = m.Removed != nil
	}
	assert.Equal(t, map[string]bool{c.ID: false, a.ID: true}, md)

	// $deltatoken=latest: no items, just a link that sees later changes.
	changed, removed, latest, err := e.c.UsersDelta(msgraph.DeltaOptions{Latest: true}).Collect(ctx)
	require.NoError(t, err)
	assert.Empty(t, changed)
	assert.Empty(t, removed)
	require.NotEmpty(t, latest)
	d, err := e.c.CreateUser(ctx, newUser(e.upn("d"), "d"))
	require.NoError(t, err)
	changed, _, _, err = e.c.UsersDelta(msgraph.DeltaOptions{DeltaLink: latest}).Collect(ctx)
	require.NoError(t, err)
	require.Len(t, changed, 1)
	assert.Equal(t, d.ID, changed[0].ID)

	// Unknown/expired token.
	e.sim.ExpireDeltaTokens()
	_, _, _, err = e.c.UsersDelta(msgraph.DeltaOptions{DeltaLink: link3}).Collect(ctx)
	assert.ErrorIs(t, err, msgraph.ErrDeltaReset)
}

func stripType(ms []msgraph.MemberDelta, typ string) []msgraph.MemberDelta {
	out := slices.Clone(ms)
	for i := range out {
		if out[i].ODataType == "" {
			out[i].ODataType = typ
		}
	}
	return out
}

// GRAPH.md "Delta": the 400 syncStateNotFound form of the reset.
func TestSimDeltaReset400Form(t *testing.T) {
	t.Parallel()
	cfg := noThrottle()
	cfg.DeltaResync400 = true
	e := newEnv(t, cfg)
	_, _, _, err := e.c.UsersDelta(msgraph.DeltaOptions{DeltaLink: e.srv.URL + "/v1.0/users/delta?$deltatoken=bogus"}).Collect(context.Background())
	assert.ErrorIs(t, err, msgraph.ErrDeltaReset)
}

// Issue 3: $batch with a failed dependsOn and an inner 429 re-sent after its
// Retry-After.
func TestSimBatchFailedDependsOnAndInner429(t *testing.T) {
	t.Parallel()
	for _, outer424 := range []bool{false, true} {
		t.Run(fmt.Sprintf("outer424=%v", outer424), func(t *testing.T) {
			cfg := graphsim.Config{Seed: 2, TimeScale: 150, QuotaMultiplier: 0.002, BatchThrottled424: outer424}
			e := newEnv(t, cfg)
			ctx := context.Background()
			_, err := e.c.CreateUser(ctx, newUser(e.upn("taken"), "taken"))
			require.NoError(t, err)
			g, err := e.c.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "B", MailNickname: "b"})
			require.NoError(t, err)

			var reqs []msgraph.BatchRequest
			reqs = append(reqs,
				msgraph.BatchRequest{ID: "dup", Method: "POST", URL: "/users", Body: newUser(e.upn("taken"), "taken2")},
				msgraph.BatchRequest{ID: "dep", Method: "PATCH", URL: "/groups/" + g.ID, DependsOn: []string{"dup"},
					Body: map[string]string{"description": "never"}})
			// Enough writes in one batch to exceed the scaled write quota
			// (3000·0.002 = 6 per second) so inner requests get 429.
			for i := range 14 {
				reqs = append(reqs, msgraph.BatchRequest{ID: "u" + strconv.Itoa(i), Method: "POST", URL: "/users",
					Body: newUser(e.upn("bu"+strconv.Itoa(i)), "bu"+strconv.Itoa(i))})
			}
			start := time.Now()
			res, err := e.c.Batch(ctx, reqs)
			require.NoError(t, err)
			assert.True(t, msgraph.IsUPNConflict(res[0].Err()), "%v", res[0].Err())
			assert.Equal(t, http.StatusFailedDependency, res[1].Status)
			for _, r := range res[2:] {
				assert.Equal(t, http.StatusCreated, r.Status, "inner request %s: %v", r.ID, r.Err())
			}
			throttled := 0
			for _, r := range e.sim.Requests() {
				if r.Batch && r.Status == http.StatusTooManyRequests {
					throttled++
				}
			}
			assert.Positive(t, throttled, "the quota must actually have throttled some inner requests")
			outer := map[int]int{}
			for _, r := range e.requests(http.MethodPost, "/$batch") {
				outer[r.Status]++
			}
			if outer424 {
				assert.Positive(t, outer[http.StatusFailedDependency], "old outer-424 form exercised: %v", outer)
			} else {
				assert.Equal(t, len(e.requests(http.MethodPost, "/$batch")), outer[http.StatusOK], "%v", outer)
			}
			assert.Len(t, e.sim.Users(e.creds.TenantID), 15)
			t.Logf("batch of %d with %d inner 429s took %v", len(reqs), throttled, time.Since(start))
		})
	}
}

// Issue 3: throttling under load — requests slow down to the quota, none fail.
// The write quota is scaled to 3000·0.01 = 30 writes per 150/150 = 1 s. Run
// without a limiter and with a shared LocalLimiter (tenant-wide pause on 429).
func TestSimThrottlingUnderLoadNoFailures(t *testing.T) {
	t.Parallel()
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharedLimiter=%v", shared), func(t *testing.T) {
			e := newEnv(t, graphsim.Config{Seed: 3, TimeScale: 150, QuotaMultiplier: 0.01}, func(mc *msgraph.Config) {
				if shared {
					mc.Limiter = msgraph.NewLocalLimiter(0, 0)
				}
			})
			ctx := context.Background()
			const workers, perWorker = 6, 15
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, workers*perWorker)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWorker {
						n := fmt.Sprintf("w%d-%d", w, i)
						if _, err := e.c.CreateUser(ctx, newUser(e.upn(n), strings.ReplaceAll(n, "-", ""))); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("write failed under throttling: %v", err)
			}
			elapsed := time.Since(start)
			throttled := 0
			for _, r := range e.sim.Requests() {
				if r.Throttled {
					throttled++
				}
			}
			assert.Len(t, e.sim.Users(e.creds.TenantID), workers*perWorker)
			assert.Positive(t, throttled, "load must exceed the quota")
			// 90 writes at 30/s with a full bucket of 30 to start: at least ~2 s.
			assert.GreaterOrEqual(t, elapsed, 1500*time.Millisecond)
			t.Logf("%d writes, %d answered 429, %v (%.1f writes/s)", workers*perWorker, throttled, elapsed, float64(workers*perWorker)/elapsed.Seconds())
		})
	}
}

// GRAPH.md "Throttling": a 429 that outlives the policy surfaces typed, with
// Retry-After and the throttle information.
func TestSimThrottledErrorIsTyped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, graphsim.Config{Seed: 4, TimeScale: 150, QuotaMultiplier: 0.001}, func(mc *msgraph.Config) {
		mc.Retry.MaxAttempts = 1
	})
	ctx := context.Background()
	var err error
	for i := range 10 {
		if _, err = e.c.CreateUser(ctx, newUser(e.upn("t"+strconv.Itoa(i)), "t"+strconv.Itoa(i))); err != nil {
			break
		}
	}
	require.True(t, msgraph.IsThrottled(err), "3000·0.001 = 3 writes per second: %v", err)
	var ge *msgraph.Error
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, msgraph.CodeTooManyRequests, ge.Code)
	assert.GreaterOrEqual(t, ge.RetryAfter, time.Second)
	// Both buckets scale with QuotaMultiplier, so a burst may hit either first.
	assert.Contains(t, []string{"WriteLimitExceeded", "ResourceUnitLimitExceeded"}, ge.ThrottleInfo)
	assert.NotEmpty(t, ge.RequestID)
	assert.False(t, msgraph.IsPermanent(err))
}

// A forced 429 burst penalises the shared limiter with the Retry-After.
func TestSimForced429PenalisesLimiter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	lim := &recLimiter{}
	c := e.client(t, e.creds, func(mc *msgraph.Config) { mc.Limiter = lim })
	e.sim.SetFaults(graphsim.Faults{Force429: 2, Force429RetryAfter: time.Second})
	e.sim.ClearRequests()
	start := time.Now()
	_, err := c.ListDomains(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{time.Second, time.Second}, lim.get())
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "Retry-After honoured")
	// One logical call: every try carries the same client-request-id.
	tries := e.requests(http.MethodGet, "/v1.0/domains")
	require.Len(t, tries, 3)
	assert.Equal(t, []int{429, 429, 200}, []int{tries[0].Status, tries[1].Status, tries[2].Status})
	assert.NotEmpty(t, tries[0].ClientRequestID)
	assert.Equal(t, tries[0].ClientRequestID, tries[2].ClientRequestID)
}

type recLimiter struct {
	mu sync.Mutex
	p  []time.Duration
}

func (l *recLimiter) Wait(context.Context, int) error { return nil }
func (l *recLimiter) Penalize(_ context.Context, d time.Duration) {
	l.mu.Lock()
	l.p = append(l.p, d)
	l.mu.Unlock()
}
func (l *recLimiter) get() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.p)
}

// 5xx faults are retried with backoff; nothing fails at a 30 % error rate.
func TestSimServerErrorsAreRetried(t *testing.T) {
	t.Parallel()
	cfg := noThrottle()
	cfg.Faults.ServerErrorRate = 0.3
	e := newEnv(t, cfg, func(mc *msgraph.Config) {
		mc.Retry.Retry5xx = true
		mc.Retry.MaxAttempts = 10
	})
	ctx := context.Background()
	for i := range 20 {
		_, err := e.c.CreateUser(ctx, newUser(e.upn("s"+strconv.Itoa(i)), "s"+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	faults := 0
	for _, r := range e.sim.Requests() {
		if r.Fault == "5xx" {
			faults++
		}
	}
	assert.Positive(t, faults)
	assert.Len(t, e.sim.Users(e.creds.TenantID), 20)
}

// GRAPH.md "Eventual consistency": create, then at once GET, PATCH and $ref
// succeed through the client's retry of fresh-object 404s.
func TestSimReplicationDelay(t *testing.T) {
	t.Parallel()
	cfg := noThrottle()
	cfg.Faults.ReplicationDelay = 300 * time.Millisecond
	e := newEnv(t, cfg)
	ctx := context.Background()
	u, err := e.c.CreateUser(ctx, newUser(e.upn("rep"), "rep"))
	require.NoError(t, err)
	_, err = e.c.GetUser(ctx, u.ID)
	require.NoError(t, err)
	u2, err := e.c.CreateUser(ctx, newUser(e.upn("rep2"), "rep2"))
	require.NoError(t, err)
	require.NoError(t, e.c.UpdateUser(ctx, u2.ID, msgraph.UserFields{JobTitle: msgraph.Ptr("x")}))
	g, err := e.c.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "R", MailNickname: "r"})
	require.NoError(t, err)
	u3, err := e.c.CreateUser(ctx, newUser(e.upn("rep3"), "rep3"))
	require.NoError(t, err)
	require.NoError(t, e.c.AddGroupMember(ctx, g.ID, u3.ID))

	notFound := 0
	for _, r := range e.sim.Requests() {
		if r.Status == http.StatusNotFound {
			notFound++
		}
	}
	assert.Positive(t, notFound, "the emulator must have hidden the new objects at first")

	// Another client did not create the object: its 404 is final unless the
	// caller says the object is fresh.
	other := e.client(t, e.creds)
	u4, err := e.c.CreateUser(ctx, newUser(e.upn("rep4"), "rep4"))
	require.NoError(t, err)
	_, err = other.GetUser(ctx, u4.ID)
	assert.True(t, msgraph.IsNotFound(err))
	_, err = other.GetUser(msgraph.WithRetryNotFound(ctx), u4.ID)
	assert.NoError(t, err)
}

// Issue 3: token expiry and refresh — a server-side expired token gets a 401,
// the client fetches a new token once and the call succeeds; short token
// lifetimes are renewed before use.
func TestSimTokenExpiryAndRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	ctx := context.Background()
	_, err := e.c.ListDomains(ctx)
	require.NoError(t, err)
	e.sim.ExpireTokens()
	e.sim.ClearRequests()
	_, err = e.c.ListDomains(ctx)
	require.NoError(t, err)
	var statuses []int
	tokens := 0
	for _, r := range e.sim.Requests() {
		if strings.HasSuffix(r.Path, "/token") {
			tokens++
			continue
		}
		statuses = append(statuses, r.Status)
	}
	assert.Equal(t, []int{http.StatusUnauthorized, http.StatusOK}, statuses)
	assert.Equal(t, 1, tokens)

	// Lifetime shorter than the client's renewal margin: every call renews.
	e.sim.SetFaults(graphsim.Faults{TokenLifetime: 5 * time.Second})
	e.sim.ExpireTokens()
	e.sim.ClearRequests()
	for range 3 {
		_, err = e.c.ListDomains(ctx)
		require.NoError(t, err)
	}
	tokens, unauthorized := 0, 0
	for _, r := range e.sim.Requests() {
		if strings.HasSuffix(r.Path, "/token") {
			tokens++
		}
		if r.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	assert.Equal(t, 1, unauthorized, "only the token expired by ExpireTokens is refused")
	assert.Equal(t, 3, tokens, "each short-lived token renewed before use")
}

// Cancelling the context ends a call that is waiting out a Retry-After.
func TestSimContextCancelDuringRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noThrottle())
	e.sim.SetFaults(graphsim.Faults{Force429: 100, Force429RetryAfter: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.c.ListDomains(ctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Less(t, time.Since(start), 3*time.Second)
}

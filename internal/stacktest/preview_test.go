package stacktest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/msgraph"
)

const planFields = `items { action integrationID user { id } group { id } name remoteID remoteDisplayName reason errorCode
	changes { property remoteValue newValue } }
	counts { total unchanged create takeover update enable disable outOfScope error } wouldAwaitApproval graphRequests`

const (
	previewBindingQ = `query($i: ID!, $u: [ID!], $g: [ID!], $un: Boolean) {
		previewBinding(integrationID: $i, userIDs: $u, groupIDs: $g, unbind: $un) { ` + planFields + ` } }`
	previewChangesQ = `query($id: ID!, $in: UpdateIntegrationInput!) {
		previewIntegrationChanges(id: $id, input: $in) { ` + planFields + ` } }`
)

type planItem struct {
	Action            string
	IntegrationID     string
	User              *struct{ ID string }
	Group             *struct{ ID string }
	Name              *string
	RemoteID          *string
	RemoteDisplayName *string
	Reason            *string
	ErrorCode         *string
	Changes           []struct {
		Property    string
		RemoteValue *string
		NewValue    *string
	}
}

type plan struct {
	Items  []planItem
	Counts struct {
		Total, Unchanged, Create, Takeover, Update, Enable, Disable, OutOfScope, Error int
	}
	WouldAwaitApproval bool
	GraphRequests      int
}

// byUser indexes a plan's user items.
func (p plan) byUser() map[string]planItem {
	out := map[string]planItem{}
	for _, it := range p.Items {
		if it.User != nil {
			out[it.User.ID] = it
		}
	}
	return out
}

func (s *stack) preview(key, query string, vars map[string]any) plan {
	s.t.Helper()
	var out map[string]plan
	s.must(key, query, vars, &out)
	for _, p := range out {
		return p
	}
	s.t.Fatal("no plan")
	return plan{}
}

// dbState fingerprints every table's rows (API keys aside: using a key
// stamps it), so a test can prove a call changed nothing in PostgreSQL.
func (s *stack) dbState() map[string]string {
	s.t.Helper()
	ctx := context.Background()
	rows, err := s.app.DB.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT IN ('api_keys', 'goose_db_version')`)
	require.NoError(s.t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(s.t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(s.t, rows.Close())
	out := map[string]string{}
	for _, tb := range tables {
		var n int
		var sum *string
		require.NoError(s.t, s.app.DB.QueryRowContext(ctx,
			fmt.Sprintf(`SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM %q t`, tb)).Scan(&n, &sum))
		v := fmt.Sprint(n)
		if sum != nil {
			v += ":" + *sum
		}
		out[tb] = v
	}
	require.Contains(s.t, out, "jobs")
	return out
}

// onlyReads asserts every Graph request since the log was cleared was a read:
// token requests, GETs, and POST /$batch whose inner requests are all GETs.
func (s *stack) onlyReads() int {
	s.t.Helper()
	graphCalls := 0
	for _, r := range s.sim.Requests() {
		switch {
		case strings.Contains(r.Path, "/oauth2/"):
		case r.Batch:
			require.Equal(s.t, "GET", r.Method, "inner request %s %s", r.Method, r.Path)
		case r.Method == "POST" && strings.HasSuffix(r.Path, "/$batch"):
			graphCalls++
		default:
			require.Equal(s.t, "GET", r.Method, "request %s %s", r.Method, r.Path)
			graphCalls++
		}
	}
	return graphCalls
}

// previewBinding shows per user what binding would do — ENABLE an account a
// past unbind disabled, CREATE, TAKEOVER an account found by UPN (its id and
// display name, the attribute differences), OUT_OF_SCOPE (D3), DISABLE on
// unbind — through reads only: no write reaches the tenant and no row changes
// in PostgreSQL. The real bind then does exactly what the preview said, and a
// read-only key may preview (issue 14; P1, P2, D3, X2).
func TestPreviewBindingMatchesReality(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com", "beta.com"}, map[string]any{"domains": []string{"alpha.com"}})
	ann := s.createUser("ann", "ann@alpha.com")
	bob := s.createUser("bob", "bob@alpha.com")
	cat := s.createUser("cat", "cat@alpha.com")
	dan := s.createUserAs(s.admin, "dan", "dan@alpha.com", map[string]any{"jobTitle": "Engineer"})
	eve := s.createUser("eve", "eve@beta.com")
	s.wait(s.mutateJobs(s.admin, "bindUsers", `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": []string{ann, bob}})...)
	s.wait(s.mutateJobs(s.admin, "unbindUsers", `mutation($i: ID!, $u: [ID!]!) { unbindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": []string{bob}})...)
	// Dan already has an account in the tenant, made by someone else.
	_, err := s.graph(alpha.id).CreateUser(context.Background(), msgraph.UserFields{
		AccountEnabled: msgraph.Ptr(true), DisplayName: msgraph.Ptr("Dan Remote"), MailNickname: msgraph.Ptr("dan"),
		UserPrincipalName: msgraph.Ptr("dan@alpha.com"), JobTitle: msgraph.Ptr("Intern"),
		PasswordProfile: &msgraph.PasswordProfile{Password: "Xy7!remote-Password"}})
	require.NoError(t, err)

	before := s.dbState()
	s.sim.ClearRequests()
	p := s.preview(s.readOnly, previewBindingQ, map[string]any{"i": alpha.id, "u": []string{bob, cat, dan, eve}})
	calls := s.onlyReads()
	assert.Equal(t, calls, p.GraphRequests)
	assert.LessOrEqual(t, p.GraphRequests, 1, "one $batch reads everything")
	require.Equal(t, before, s.dbState(), "a preview changes no row")

	items := p.byUser()
	require.Len(t, items, 4)
	assert.Equal(t, "ENABLE", items[bob].Action)
	assert.Equal(t, "CREATE", items[cat].Action)
	assert.Equal(t, "cat@alpha.com", *items[cat].Name)
	if d := items[dan]; assert.Equal(t, "TAKEOVER", d.Action) {
		require.NotNil(t, d.RemoteID)
		assert.Equal(t, "Dan Remote", *d.RemoteDisplayName)
		props := map[string][2]string{}
		for _, c := range d.Changes {
			var r, n string
			if c.RemoteValue != nil {
				r = *c.RemoteValue
			}
			if c.NewValue != nil {
				n = *c.NewValue
			}
			props[c.Property] = [2]string{r, n}
		}
		assert.Equal(t, [2]string{`"Intern"`, `"Engineer"`}, props["jobTitle"])
		assert.Equal(t, `"Dan Remote"`, props["displayName"][0])
	}
	assert.Equal(t, "OUT_OF_SCOPE", items[eve].Action)
	assert.NotNil(t, items[eve].Reason)
	assert.Equal(t, 4, p.Counts.Total)
	assert.Equal(t, [4]int{1, 1, 1, 1}, [4]int{p.Counts.Create, p.Counts.Takeover, p.Counts.Enable, p.Counts.OutOfScope})
	assert.False(t, p.WouldAwaitApproval)

	// Unbinding ann would disable her.
	s.sim.ClearRequests()
	u := s.preview(s.readOnly, previewBindingQ, map[string]any{"i": alpha.id, "u": []string{ann}, "un": true})
	s.onlyReads()
	require.Len(t, u.Items, 1)
	assert.Equal(t, "DISABLE", u.Items[0].Action)
	assert.Equal(t, 1, u.Counts.Disable)
	require.Equal(t, before, s.dbState())

	// Bad input is typed and changes nothing.
	s.fails(s.readOnly, previewBindingQ, map[string]any{"i": string(pulid.New("IN")), "u": []string{cat}}, "NOT_FOUND")
	s.fails(s.readOnly, previewBindingQ, map[string]any{"i": alpha.id, "u": []string{string(pulid.New("US"))}}, "NOT_FOUND")
	_, otherAdmin, _ := s.newOrg("other")
	s.fails(otherAdmin, previewBindingQ, map[string]any{"i": alpha.id, "u": []string{cat}}, "NOT_FOUND")
	after := s.dbState()
	delete(after, "organizations")
	delete(before, "organizations")
	require.Equal(t, before, after)

	// Reality: the bind does what the preview said.
	bind := s.wait(s.mutateJobs(s.admin, "bindUsers", `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": []string{bob, cat, dan, eve}})...)
	its, err := s.app.Ent.JobItem.Query().Where(jobitem.JobID(pulid.ID(bind[0].ID))).All(sys())
	require.NoError(t, err)
	want := map[string]string{"ENABLE": "ENABLED", "CREATE": "CREATED", "TAKEOVER": "TAKEN_OVER", "OUT_OF_SCOPE": "OUT_OF_SCOPE"}
	require.Len(t, its, 4)
	for _, it := range its {
		assert.Equal(t, want[items[string(*it.UserID)].Action], it.Result, "user %s", *it.UserID)
	}
	d := s.remote(alpha.tenantID, "dan@alpha.com")
	require.NotNil(t, d)
	assert.Equal(t, *items[dan].RemoteID, d.ID, "the account the preview named was taken over")
}

// previewIntegrationChanges shows what a settings change would do: the
// alternate email as UPN source updates one user's UPN (with the remote and
// new value) and is an error for a user without an alternate email; the
// mass-deprovision guard is predicted; nothing is written (issue 14; D1).
func TestPreviewIntegrationChanges(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com", "beta.com"}, map[string]any{"domains": []string{"alpha.com", "beta.com"}})
	fay := s.createUserAs(s.admin, "fay", "fay.c@alpha.com", map[string]any{"alternateEmail": "fay@alpha.com"})
	gil := s.createUser("gil", "gil@alpha.com")
	s.wait(s.mutateJobs(s.admin, "bindUsers", `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": []string{fay, gil}})...)

	before := s.dbState()
	s.sim.ClearRequests()
	p := s.preview(s.readOnly, previewChangesQ, map[string]any{"id": alpha.id, "in": map[string]any{"emailSource": "ALTERNATE"}})
	s.onlyReads()
	require.Equal(t, before, s.dbState())
	items := p.byUser()
	if f := items[fay]; assert.Equal(t, "UPDATE", f.Action) {
		require.Len(t, f.Changes, 1)
		assert.Equal(t, "userPrincipalName", f.Changes[0].Property)
		assert.Equal(t, `"fay.c@alpha.com"`, *f.Changes[0].RemoteValue)
		assert.Equal(t, `"fay@alpha.com"`, *f.Changes[0].NewValue)
	}
	if g := items[gil]; assert.Equal(t, "ERROR", g.Action) {
		assert.Equal(t, "NO_MAPPED_EMAIL", *g.ErrorCode)
	}

	// Dropping alpha.com would take both out of scope: two disables, beyond
	// a threshold of 1, so the job would wait for approval.
	s.setThreshold(alpha.id, map[string]any{"deprovisionThreshold": 1})
	before = s.dbState()
	d := s.preview(s.readOnly, previewChangesQ, map[string]any{"id": alpha.id, "in": map[string]any{"domains": []string{"beta.com"}}})
	assert.Equal(t, 2, d.Counts.Disable)
	assert.True(t, d.WouldAwaitApproval)
	require.Equal(t, before, s.dbState())
	// Invalid settings are refused as the mutation would refuse them.
	s.fails(s.readOnly, previewChangesQ, map[string]any{"id": alpha.id, "in": map[string]any{"domains": []string{"gamma.com"}}}, "BAD_USER_INPUT")
	require.Equal(t, before, s.dbState())
	require.Nil(t, s.remote(alpha.tenantID, "fay@alpha.com"), "the UPN change was only previewed")
}

// With group management on, previewing a group binding shows the security
// group taken over by its exact display name (G2) or created, next to its
// members; the real bind then does that (issue 14; G2, B2).
func TestPreviewGroupBinding(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com"}, map[string]any{"groupManagement": true})
	sales, _ := s.populatedGroup("sales", "alpha.com", 2)
	ops, _ := s.populatedGroup("ops", "alpha.com", 1)
	existing, err := s.graph(alpha.id).CreateGroup(context.Background(), msgraph.NewSecurityGroup{DisplayName: "sales", MailNickname: "sales-remote"})
	require.NoError(t, err)

	before := s.dbState()
	s.sim.ClearRequests()
	p := s.preview(s.readOnly, previewBindingQ, map[string]any{"i": alpha.id, "g": []string{sales, ops}})
	s.onlyReads()
	require.Equal(t, before, s.dbState())
	groups := map[string]planItem{}
	for _, it := range p.Items {
		if it.Group != nil {
			groups[it.Group.ID] = it
		}
	}
	require.Len(t, groups, 2)
	if g := groups[sales]; assert.Equal(t, "TAKEOVER", g.Action) {
		assert.Equal(t, existing.ID, *g.RemoteID)
	}
	assert.Equal(t, "CREATE", groups[ops].Action)
	assert.Equal(t, 4, p.Counts.Create, "the three members and one group")
	assert.Equal(t, 1, p.Counts.Takeover)

	bind := s.wait(s.mutateJobs(s.admin, "bindUserGroups", bindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{sales, ops}})...)
	its, err := s.app.Ent.JobItem.Query().Where(jobitem.JobID(pulid.ID(bind[0].ID)), jobitem.GroupIDNotNil()).All(sys())
	require.NoError(t, err)
	got := map[string]string{}
	for _, it := range its {
		got[string(*it.GroupID)] = it.Result
	}
	assert.Equal(t, map[string]string{sales: "TAKEN_OVER", ops: "CREATED"}, got)
}

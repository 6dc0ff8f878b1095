package importer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/event"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/userbinding"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/msgraph"
)

// TestImportSelected: M2–M4 and idempotency. Selected remote users are
// imported with the M3 username and email, only import-flagged attributes and
// the organization's default state, linked IN_SYNC and bound without a single
// Graph write; an unknown id fails alone; the results come back directly
// (≤ 100); running the same import again skips everyone.
func TestImportSelected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0()})
	// jobTitle is not imported (export only), department is.
	table := mapping.Default()
	for i := range table {
		if table[i].Attribute == "jobTitle" {
			table[i].Import = false
		}
	}
	e.in = e.client.Integration.UpdateOne(e.in).SetAttributeMappings(table).SaveX(e.ctx)
	_, err := e.client.Organization.UpdateOneID(e.org.id).SetDefaultImportState("ACTIVE").Save(e.ctx)
	require.NoError(t, err)
	dept := func(f *msgraph.UserFields) {
		f.JobTitle, f.Department, f.GivenName = msgraph.Ptr("Engineer"), msgraph.Ptr("R&D"), msgraph.Ptr("Ann")
	}
	a := e.remote("ann@contoso.com", "ann", "ann@contoso.com", true, dept)
	b := e.remote("bob@contoso.com", "bob", "", true, nil)
	unknown := "00000000-0000-4000-8000-000000000001"
	e.startWorker()
	e.sim.ClearRequests()

	out := e.importIDs(e.org.admin, []string{a, b, unknown})
	p := out.ImportUsers
	require.Equal(t, "IMPORT_USERS", p.Job.Kind)
	require.Equal(t, "PARTIAL", p.Job.Status)
	require.Equal(t, 3, p.Job.Total)
	require.Equal(t, 3, p.Job.Done)
	require.Equal(t, 1, p.Job.Failed)
	require.NotNil(t, p.Job.ResultsCSVURL)
	require.Len(t, p.Results, 3)
	rs := byRemote(p.Results)
	ann := rs[a]
	require.Equal(t, "IMPORTED", ann.Status)
	require.Equal(t, "ann", ann.User.Username)
	require.Equal(t, "ann@contoso.com", ann.User.Email)
	require.Equal(t, "ACTIVE", ann.User.State, "the organization's defaultImportState (O3)")
	require.Equal(t, "R&D", ann.User.Department, "import-flagged")
	require.Equal(t, "Ann", ann.User.FirstName)
	require.Empty(t, ann.User.JobTitle, "jobTitle is not import-flagged (A2)")
	require.Equal(t, "bob@contoso.com", rs[b].User.Email, "no mail: the UPN is the email (M3)")
	require.Equal(t, "FAILED", rs[unknown].Status)
	require.Equal(t, "not found in tenant", msg(rs[unknown]))

	for _, id := range []string{a, b} {
		l, err := e.client.RemoteLink.Query().Where(remotelink.RemoteID(id)).Only(e.ctx)
		require.NoError(t, err)
		require.Equal(t, remotelink.StatusIN_SYNC, l.Status)
		require.True(t, l.TakenOver)
		n, err := e.client.UserBinding.Query().Where(userbinding.UserID(*l.UserID), userbinding.IntegrationID(e.in.ID)).Count(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "bound to the integration it came from")
	}
	for _, r := range e.sim.Requests() {
		if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") {
			continue
		}
		require.Equal(t, "GET", r.Method, "an import never writes to the tenant: %s %s", r.Method, r.Path)
	}
	imported, err := e.client.Event.Query().Where(event.Type("user_import")).Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, imported)
	failedEv, err := e.client.Event.Query().Where(event.Type("user_import_failed")).Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, failedEv)

	// Idempotent: the same import again skips both and duplicates nothing.
	again := e.importIDs(e.org.admin, []string{a, b}).ImportUsers
	require.Equal(t, "SUCCEEDED", again.Job.Status)
	for _, r := range again.Results {
		require.Equal(t, "SKIPPED", r.Status, "%+v", r)
		require.NotNil(t, r.User)
		require.Contains(t, msg(r), "already in the directory")
	}
	n, err := e.client.User.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

// TestImportUsernameRules: M3 — the alias when it is a valid username, else
// the email's local part (cleaned), else the UPN's; collisions with existing
// users and inside the import get -2, -3…, reported in the message.
func TestImportUsernameRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0()})
	_, err := e.client.User.Create().SetOrganizationID(e.org.id).SetUsername("Dave").SetEmail("dave@elsewhere.org").Save(e.ctx)
	require.NoError(t, err)
	ids := []string{
		e.remote("alice@contoso.com", "alice", "alice@contoso.com", true, nil),
		e.remote("alice.two@contoso.com", "alice", "alice.two@contoso.com", true, nil), // same alias → alice-2
		e.remote("bob.x@contoso.com", "bob!x", "bob.x@contoso.com", true, nil),         // alias not a username → local part
		e.remote("o'neil@contoso.com", "o'neil", "", true, nil),                        // no mail: UPN; quote removed
		e.remote("dave@contoso.com", "dave", "dave@contoso.com", true, nil),            // existing Dave → dave-2
		e.remote("dave.b@contoso.com", "dave", "dave.b@contoso.com", true, nil),        // → dave-3
	}
	e.startWorker()
	rs := e.importIDs(e.org.admin, ids).ImportUsers.Results
	require.Len(t, rs, 6)
	got := byRemote(rs)
	want := []string{"alice", "alice-2", "bob.x", "oneil", "dave-2", "dave-3"}
	for i, id := range ids {
		r := got[id]
		require.Equal(t, "IMPORTED", r.Status, "%s: %s", want[i], msg(r))
		require.Equal(t, want[i], r.User.Username)
	}
	require.Equal(t, "username alice is taken: imported as alice-2", msg(got[ids[1]]))
	require.Equal(t, "username dave is taken: imported as dave-2", msg(got[ids[4]]))
	require.Equal(t, "o'neil@contoso.com", got[ids[3]].User.Email)
}

// TestImportDuplicateEmailAndUserLimit: M5 — an email already in the
// directory fails that user without touching the directory user; beyond the
// user limit the rest fail; every other user still imports.
func TestImportDuplicateEmailAndUserLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0()})
	existing, err := e.client.User.Create().SetOrganizationID(e.org.id).SetUsername("carol").
		SetEmail("Carol@Contoso.com").SetJobTitle("Keep me").Save(e.ctx)
	require.NoError(t, err)
	_, err = e.client.Organization.UpdateOneID(e.org.id).SetUserLimit(4).Save(e.ctx) // 1 existing + 3 seats
	require.NoError(t, err)
	var ids []string
	ids = append(ids, e.remote("carol@contoso.com", "carol", "carol@contoso.com", true, func(f *msgraph.UserFields) {
		f.JobTitle = msgraph.Ptr("Overwrite?")
	}))
	for _, n := range []string{"u1", "u2", "u3", "u4", "u5"} {
		ids = append(ids, e.remote(n+"@contoso.com", n, n+"@contoso.com", true, nil))
	}
	e.startWorker()
	p := e.importIDs(e.org.admin, ids).ImportUsers
	rs := byRemote(p.Results)
	require.Equal(t, "FAILED", rs[ids[0]].Status)
	require.Equal(t, "email already exists in the directory", msg(rs[ids[0]]))
	for _, id := range ids[1:4] {
		require.Equal(t, "IMPORTED", rs[id].Status)
	}
	for _, id := range ids[4:] {
		require.Equal(t, "FAILED", rs[id].Status)
		require.Equal(t, "user limit reached", msg(rs[id]))
	}
	require.Equal(t, "PARTIAL", p.Job.Status)
	require.Equal(t, 3, p.Job.Failed)
	carol := e.client.User.GetX(e.ctx, existing.ID)
	require.Equal(t, "Keep me", carol.JobTitle, "no write to the directory user")
	n, err := e.client.User.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 4, n)
}

// TestImportBadInput: typed errors, and nothing recorded.
func TestImportBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0()})
	id := e.remote("x@contoso.com", "x", "x@contoso.com", true, nil)
	vars := func(in any, ids any, all any) map[string]any {
		return map[string]any{"in": in, "ids": ids, "all": all}
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = id
	}
	e.fails(e.org.admin, importMutation, vars(e.in.ID, []string{id}, true), "BAD_USER_INPUT")
	e.fails(e.org.admin, importMutation, vars(e.in.ID, nil, nil), "BAD_USER_INPUT")
	e.fails(e.org.admin, importMutation, vars(e.in.ID, nil, false), "BAD_USER_INPUT")
	e.fails(e.org.admin, importMutation, vars(e.in.ID, []string{}, nil), "BAD_USER_INPUT")
	e.fails(e.org.admin, importMutation, vars(e.in.ID, many, nil), "BAD_USER_INPUT")
	e.fails(e.org.admin, importMutation, vars(e.in.ID, []string{"not-a-guid"}, nil), "BAD_USER_INPUT")
	e.fails(e.org.admin, importMutation, vars("INxxxxxxxxxxxxxxxxxxxxxxxxxx", []string{id}, nil), "NOT_FOUND")
	e.fails(e.org.readOnly, importMutation, vars(e.in.ID, []string{id}, nil), "FORBIDDEN")
	other := e.newOrg("other")
	e.fails(other.admin, importMutation, vars(e.in.ID, []string{id}, nil), "NOT_FOUND")
	e.client.Integration.UpdateOne(e.in).SetStatus("UNAUTHORIZED").ExecX(e.ctx)
	e.fails(e.org.admin, importMutation, vars(e.in.ID, []string{id}, nil), "FAILED_PRECONDITION")
	jobsN, err := e.client.Job.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Zero(t, jobsN, "nothing changed")
	outbox, err := e.client.Outbox.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Zero(t, outbox)
}

// TestImportAllLarge: all: true over more than 100 users in several pages:
// no direct results, a CSV with one row per user (checked row by row), an
// "import complete" notification with the summary and the link, org isolation
// on the CSV and the notifications.
func TestImportAllLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0(), pageSize: 40})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 150))
	off := e.remote("off@contoso.com", "off", "off@contoso.com", false, nil) // disabled: not imported
	// One already in the directory by email.
	_, err := e.client.User.Create().SetOrganizationID(e.org.id).SetUsername("taken").SetEmail("seed.user.7@contoso.com").Save(e.ctx)
	require.NoError(t, err)
	e.startWorker()
	var out importOut
	e.must(e.org.admin, importMutation, map[string]any{"in": e.in.ID, "all": true}, &out)
	p := out.ImportUsers
	require.Nil(t, p.Results, "more than 100 users: follow the job")
	j := e.waitJob(p.Job.ID, time.Minute)
	require.Equal(t, 150, j.Total)
	require.Equal(t, 150, j.Done)
	require.Equal(t, 1, j.Failed)
	require.Equal(t, "PARTIAL", string(j.Status))

	res, body := e.get(e.org.admin, *p.Job.ResultsCSVURL)
	require.Equal(t, 200, res.StatusCode, body)
	require.Equal(t, "text/csv; charset=utf-8", res.Header.Get("Content-Type"))
	require.Contains(t, res.Header.Get("Content-Disposition"), "attachment")
	rows := parseCSV(t, body)
	require.Equal(t, []string{"remote_id", "user_principal_name", "email", "username", "status", "message"}, rows[0])
	rows = rows[1:]
	require.Len(t, rows, 150)
	remote := map[string]string{} // id → UPN
	for _, u := range e.sim.Users(e.creds.TenantID) {
		remote[u.ID] = u.UserPrincipalName
	}
	seen := map[string]bool{}
	for _, r := range rows {
		require.NotEqual(t, off, r[0], "disabled users are not imported")
		upn, ok := remote[r[0]]
		require.True(t, ok, "row for a remote user the tenant has: %v", r)
		require.False(t, seen[r[0]], "one row per user")
		seen[r[0]] = true
		require.Equal(t, upn, r[1])
		require.Equal(t, upn, r[2], "seeded users' mail is their UPN")
		if upn == "seed.user.7@contoso.com" {
			require.Equal(t, []string{"FAILED", "email already exists in the directory"}, r[4:])
			require.Empty(t, r[3])
			continue
		}
		require.Equal(t, strings.TrimSuffix(upn, "@contoso.com"), r[3])
		require.Equal(t, []string{"IMPORTED", ""}, r[4:])
		u, err := e.client.User.Query().Where(user.Username(r[3])).Only(e.ctx)
		require.NoError(t, err)
		require.Equal(t, "STAGED", string(u.State))
	}
	items, err := e.client.JobItem.Query().Where(jobitem.JobID(j.ID)).Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 150, items)

	var notes struct {
		Notifications struct {
			TotalCount int
			Edges      []struct {
				Node struct{ Kind, Message, JobID string }
			}
		}
	}
	e.must(e.org.admin, `{ notifications(where: {kind: "import_complete"}) { totalCount edges { node { kind message jobID } } } }`, nil, &notes)
	require.Equal(t, 1, notes.Notifications.TotalCount)
	nd := notes.Notifications.Edges[0].Node
	require.Equal(t, p.Job.ID, nd.JobID)
	require.Contains(t, nd.Message, "149 imported, 0 skipped, 1 failed of 150")
	require.Contains(t, nd.Message, *p.Job.ResultsCSVURL)

	// Org isolation: another organization sees neither the CSV nor the notification.
	other := e.newOrg("other")
	res, _ = e.get(other.admin, *p.Job.ResultsCSVURL)
	require.Equal(t, 404, res.StatusCode)
	e.must(other.admin, `{ notifications { totalCount } }`, nil, &notes)
	require.Zero(t, notes.Notifications.TotalCount)
	// The read-only key of the organization may download.
	res, _ = e.get(e.org.readOnly, *p.Job.ResultsCSVURL)
	require.Equal(t, 200, res.StatusCode)
}

// TestImportDisabledAndOutOfScope: a requested disabled account fails; a user
// whose domain the integration does not sync is imported but neither linked
// nor bound (the next reconcile would otherwise disable the account).
func TestImportDisabledAndOutOfScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0()})
	e.in = e.client.Integration.UpdateOne(e.in).SetDomains([]string{"contoso.com"}).SaveX(e.ctx)
	off := e.remote("off@contoso.com", "off", "off@contoso.com", false, nil)
	other := e.remote("x@contoso.onmicrosoft.com", "x", "", true, nil)
	in := e.remote("in@contoso.com", "in", "in@contoso.com", true, nil)
	e.startWorker()
	rs := byRemote(e.importIDs(e.org.admin, []string{off, other, in}).ImportUsers.Results)
	require.Equal(t, "FAILED", rs[off].Status)
	require.Equal(t, "the account is disabled in Microsoft 365", msg(rs[off]))
	require.Equal(t, "IMPORTED", rs[other].Status)
	require.Contains(t, msg(rs[other]), "not bound to M365")
	require.Equal(t, "IMPORTED", rs[in].Status)
	require.Empty(t, msg(rs[in]))
	links, err := e.client.RemoteLink.Query().All(e.ctx)
	require.NoError(t, err)
	require.Len(t, links, 1)
	require.Equal(t, in, links[0].RemoteID)
	binds, err := e.client.UserBinding.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, binds)
}

// TestImportContinuesInNewTasks: a task whose time slice is used up commits
// its page, queues a continuation and ends; the continuations finish the job
// exactly (here: every page is its own task).
func TestImportContinuesInNewTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim0(), pageSize: 40, slice: time.Nanosecond, importWait: -1})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 130))
	e.startWorker()
	var out importOut
	e.must(e.org.admin, importMutation, map[string]any{"in": e.in.ID, "all": true}, &out)
	j := e.waitJob(out.ImportUsers.Job.ID, time.Minute)
	require.Equal(t, 130, j.Total)
	require.Equal(t, 130, j.Done)
	require.Equal(t, "SUCCEEDED", string(j.Status))
	tasks, err := e.client.Outbox.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 4, tasks, "the mutation's task and one continuation per further page")
	n, err := e.client.User.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 130, n)
}

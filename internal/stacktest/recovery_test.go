package stacktest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
)

const (
	retryQ             = `mutation($id: ID!) { retryJob(id: $id) { retried { ` + jobFields + ` } jobs { ` + jobFields + ` } } }`
	resyncUsersQ       = `mutation($i: ID!, $u: [ID!]) { resyncUsers(integrationID: $i, userIDs: $u) { jobs { ` + jobFields + ` } } }`
	resyncIntegrationQ = `mutation($id: ID!) { resyncIntegration(id: $id) { jobs { ` + jobFields + ` } } }`
)

func (s *stack) jobCount() int {
	s.t.Helper()
	n, err := s.app.Ent.Job.Query().Count(sys())
	require.NoError(s.t, err)
	return n
}

// results lists the item results of a job.
func (s *stack) results(jobID string) []string {
	s.t.Helper()
	var q struct {
		Job struct {
			Items struct {
				Edges []struct{ Node struct{ Result string } }
			}
		}
	}
	s.must(s.readOnly, `query($id: ID!) { job(id: $id) { items { edges { node { result } } } } }`, map[string]any{"id": jobID}, &q)
	var out []string
	for _, e := range q.Job.Items.Edges {
		out = append(out, e.Node.Result)
	}
	return out
}

// A job that failed for good (the tenant answered 5xx until the retries ran
// out) is re-run by retryJob once the cause is gone: a new RETRY job naming
// the original carries the work and the user ends live in the tenant, while
// the original keeps its FAILED history. Read-only keys, other organizations'
// ids, running and succeeded jobs are refused and change nothing.
func TestRetryJob(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com"}, nil)
	uid := s.createUser("rita", "rita@alpha.com")

	s.sim.SetFaults(graphsim.Faults{ServerErrorRate: 1})
	bind := s.mutateJobs(s.admin, "bindUsers", `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": []string{uid}})
	require.Len(t, bind, 1)
	failed := s.wait(bind...)[0]
	require.Equal(t, "FAILED", failed.Status)
	require.Nil(t, s.remote(alpha.tenantID, "rita@alpha.com"))
	// Nothing changed in the directory: binding again starts nothing.
	require.Empty(t, s.mutateJobs(s.admin, "bindUsers", bindUsersQ, map[string]any{"i": alpha.id, "u": []string{uid}}))

	before := s.jobCount()
	s.fails(s.readOnly, retryQ, map[string]any{"id": failed.ID}, "FORBIDDEN")
	_, otherAdmin, _ := s.newOrg("other")
	s.fails(otherAdmin, retryQ, map[string]any{"id": failed.ID}, "NOT_FOUND")
	s.fails(s.admin, retryQ, map[string]any{"id": string(pulid.New("JB"))}, "NOT_FOUND")
	running, err := s.app.Ent.Job.Create().SetOrganizationID(s.org).SetKind(jobs.JobBindUsers).SetTotal(1).Save(sys())
	require.NoError(t, err)
	s.fails(s.admin, retryQ, map[string]any{"id": string(running.ID)}, "FAILED_PRECONDITION")
	require.NoError(t, s.app.Ent.Job.UpdateOne(running).SetStatus(job.StatusRUNNING).Exec(sys()))
	s.fails(s.admin, retryQ, map[string]any{"id": string(running.ID)}, "FAILED_PRECONDITION")
	require.Equal(t, before+1, s.jobCount(), "only the job this test inserted")

	s.sim.SetFaults(graphsim.Faults{}) // the cause is fixed
	var out struct {
		RetryJob struct {
			Retried jobOut
			Jobs    []jobOut
		}
	}
	s.must(s.admin, retryQ, map[string]any{"id": failed.ID}, &out)
	assert.Equal(t, failed.ID, out.RetryJob.Retried.ID)
	require.Len(t, out.RetryJob.Jobs, 1)
	retry := out.RetryJob.Jobs[0]
	assert.Equal(t, jobs.JobRetry, retry.Kind)
	require.NotNil(t, retry.RetryOf)
	assert.Equal(t, failed.ID, retry.RetryOf.ID)
	assert.Equal(t, 1, retry.Total)
	done := s.wait(retry)[0]
	require.Equal(t, "SUCCEEDED", done.Status)
	if r := s.remote(alpha.tenantID, "rita@alpha.com"); assert.NotNil(t, r) {
		assert.True(t, r.AccountEnabled)
	}
	assert.Equal(t, "IN_SYNC", string(s.link(uid, alpha.id).Status))
	assert.Equal(t, "FAILED", s.wait(failed)[0].Status, "the original keeps its history")

	before = s.jobCount()
	s.fails(s.admin, retryQ, map[string]any{"id": done.ID}, "FAILED_PRECONDITION")
	assert.Equal(t, before, s.jobCount())
}

// Someone disables the account and edits an exported attribute in the
// tenant. Nothing changed in the directory, so re-binding starts nothing;
// resyncUsers re-reads the account and restores it, and a second resync
// finds nothing to write. resyncIntegration also covers users the
// integration deprovisioned: an account re-enabled behind our back is
// disabled again.
func TestResyncRestoresRemoteDrift(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com"}, nil)
	ann := s.createUserAs(s.admin, "ann", "ann@alpha.com", map[string]any{"department": "Sales", "jobTitle": "Buyer"})
	bob := s.createUser("bob", "bob@alpha.com")
	stranger := s.createUser("cid", "cid@alpha.com")
	s.wait(s.mutateJobs(s.admin, "bindUsers", `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": []string{ann, bob}})...)
	remote := s.remote(alpha.tenantID, "ann@alpha.com")
	require.NotNil(t, remote)
	require.True(t, remote.AccountEnabled)
	require.Equal(t, "Sales", remote.Properties["department"])

	gc := s.graph(alpha.id)
	require.NoError(t, gc.UpdateUser(sys(), remote.ID, msgraph.UserFields{
		AccountEnabled: msgraph.Ptr(false), Department: msgraph.Ptr("Hacked"), Null: []string{"jobTitle"}}))
	require.Empty(t, s.mutateJobs(s.admin, "bindUsers", bindUsersQ, map[string]any{"i": alpha.id, "u": []string{ann}}),
		"a plain re-bind sees no change")

	// Refusals change nothing.
	before := s.jobCount()
	_, otherAdmin, _ := s.newOrg("other")
	foreignUser := s.createUserAs(otherAdmin, "eve", "eve@alpha.com", nil)
	s.fails(s.readOnly, resyncUsersQ, map[string]any{"i": alpha.id, "u": []string{ann}}, "FORBIDDEN")
	s.fails(s.readOnly, resyncIntegrationQ, map[string]any{"id": alpha.id}, "FORBIDDEN")
	s.fails(otherAdmin, resyncUsersQ, map[string]any{"i": alpha.id}, "NOT_FOUND")
	s.fails(otherAdmin, resyncIntegrationQ, map[string]any{"id": alpha.id}, "NOT_FOUND")
	s.fails(s.admin, resyncUsersQ, map[string]any{"i": alpha.id, "u": []string{ann, foreignUser}}, "NOT_FOUND")
	s.fails(s.admin, resyncUsersQ, map[string]any{"i": alpha.id, "u": []string{ann, stranger}}, "BAD_USER_INPUT")
	var unauth struct {
		CreateIntegration struct{ Integration struct{ ID string } }
	}
	s.must(s.admin, `mutation($in: CreateIntegrationInput!) { createIntegration(input: $in) { integration { id } } }`,
		map[string]any{"in": map[string]any{"name": "Later", "tenantID": "later.example", "clientID": "c", "clientSecret": "s",
			"graphBaseURL": s.simURL + "/v1.0", "loginBaseURL": s.simURL}}, &unauth)
	s.fails(s.admin, resyncIntegrationQ, map[string]any{"id": unauth.CreateIntegration.Integration.ID}, "FAILED_PRECONDITION")
	assert.Equal(t, before, s.jobCount())
	assert.Empty(t, s.mutateJobs(s.admin, "resyncUsers", resyncUsersQ, map[string]any{"i": alpha.id, "u": []string{}}), "no users, no job")

	js := s.mutateJobs(s.admin, "resyncUsers", resyncUsersQ, map[string]any{"i": alpha.id, "u": []string{ann}})
	require.Len(t, js, 1)
	assert.Equal(t, jobs.JobResyncUsers, js[0].Kind)
	assert.Equal(t, 1, js[0].Total)
	require.Equal(t, "SUCCEEDED", s.wait(js...)[0].Status)
	assert.Equal(t, []string{jobs.ResultEnabled}, s.results(js[0].ID))
	remote = s.remote(alpha.tenantID, "ann@alpha.com")
	assert.True(t, remote.AccountEnabled, "re-enabled")
	assert.Equal(t, "Sales", remote.Properties["department"], "attribute restored")
	assert.Equal(t, "Buyer", remote.Properties["jobTitle"], "cleared attribute restored")

	// Nothing drifted now: every user connected, nothing written.
	js = s.mutateJobs(s.admin, "resyncUsers", resyncUsersQ, map[string]any{"i": alpha.id})
	require.Len(t, js, 1)
	assert.Equal(t, 2, js[0].Total, "userIDs absent: every connected user")
	s.wait(js...)
	assert.Equal(t, []string{jobs.ResultUnchanged, jobs.ResultUnchanged}, s.results(js[0].ID))

	// bob leaves (disabled, X2); someone enables him again in the tenant.
	s.wait(s.mutateJobs(s.admin, "unbindUsers", `mutation($i: ID!, $u: [ID!]!) { unbindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": []string{bob}})...)
	rb := s.remote(alpha.tenantID, "bob@alpha.com")
	require.False(t, rb.AccountEnabled)
	require.NoError(t, gc.UpdateUser(sys(), rb.ID, msgraph.UserFields{AccountEnabled: msgraph.Ptr(true)}))
	js = s.mutateJobs(s.admin, "resyncUsers", resyncUsersQ, map[string]any{"i": alpha.id})
	assert.Equal(t, 1, js[0].Total, "bob is no longer connected")
	s.wait(js...)
	js = s.mutateJobs(s.admin, "resyncIntegration", resyncIntegrationQ, map[string]any{"id": alpha.id})
	require.Len(t, js, 1)
	assert.Equal(t, jobs.JobResyncIntegration, js[0].Kind)
	assert.Equal(t, 2, js[0].Total, "connected users and deprovisioned ones")
	require.Equal(t, "SUCCEEDED", s.wait(js...)[0].Status)
	assert.False(t, s.remote(alpha.tenantID, "bob@alpha.com").AccountEnabled, "disabled again")
	assert.True(t, s.remote(alpha.tenantID, "ann@alpha.com").AccountEnabled)
}

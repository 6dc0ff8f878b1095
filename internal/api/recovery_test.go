package api_test

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
)

const retryJob = `mutation($id: ID!) { retryJob(id: $id) { retried { id status } jobs { ` + jobFields + ` retryOf { id status } } } }`

// finish settles a job's items as a worker would: failed for the given users.
func (s *simEnv) finish(jobID string, failed ...string) {
	s.t.Helper()
	items, err := s.client.JobItem.Query().Where(jobitem.JobID(pulid.ID(jobID))).All(sysCtx())
	require.NoError(s.t, err)
	for _, it := range items {
		fail := false
		for _, u := range failed {
			fail = fail || (it.UserID != nil && string(*it.UserID) == u)
		}
		tx, err := s.client.Tx(sysCtx())
		require.NoError(s.t, err)
		_, err = jobs.CompleteItem(sysCtx(), tx.Client(), it.OrganizationID, it.JobID, it.ID, jobs.ItemOutcome{Failed: fail, Result: jobs.ResultCreated}, time.Now())
		require.NoError(s.t, err)
		require.NoError(s.t, tx.Commit())
	}
}

// retryJob of a PARTIAL job starts one RETRY job over the failed items only,
// forced, naming the original; asking again while it is still queued returns
// the same job instead of a second one.
func TestRetryJobRerunsFailedItemsOnce(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	in := s.authorized(org.admin, "Contoso", s.bootstrap("contoso", "contoso.com"), nil)
	ann, bob := s.createUser(org.admin, "ann"), s.createUser(org.admin, "bob")
	bind := s.mutate(org.admin, bindUsers, map[string]any{"i": in.ID, "ids": []string{ann.ID, bob.ID}}).Jobs[0]
	s.finish(bind.ID, ann.ID)

	var out struct {
		RetryJob struct {
			Retried struct{ ID, Status string }
			Jobs    []struct {
				jobOut
				RetryOf struct{ ID, Status string }
			}
		}
	}
	s.must(org.admin, retryJob, map[string]any{"id": bind.ID}, &out)
	assert.Equal(t, "PARTIAL", out.RetryJob.Retried.Status)
	require.Len(t, out.RetryJob.Jobs, 1)
	retry := out.RetryJob.Jobs[0]
	assert.Equal(t, jobs.JobRetry, retry.Kind)
	assert.Equal(t, "QUEUED", retry.Status)
	assert.Equal(t, in.ID, *retry.IntegrationID)
	assert.Equal(t, []string{ann.ID}, retry.users(), "only the failed item")
	assert.Equal(t, bind.ID, retry.RetryOf.ID)
	rows := s.outboxFor(retry.ID)
	require.Len(t, rows, 1)
	assert.True(t, rows[0].Force, "a retry re-reads the remote account")

	before := s.outboxCount()
	s.must(org.admin, retryJob, map[string]any{"id": bind.ID}, &out)
	require.Len(t, out.RetryJob.Jobs, 1)
	assert.Equal(t, retry.ID, out.RetryJob.Jobs[0].ID, "the retry still queued is returned")
	assert.Equal(t, before, s.outboxCount())

	// Not a job of ours, not an id at all: typed, nothing changes.
	other := s.tenant("other")
	s.fails(other.admin, retryJob, map[string]any{"id": bind.ID}, "NOT_FOUND", "id")
	r := s.post(org.admin, retryJob, map[string]any{"id": "not-an-id"})
	require.Len(t, r.Errors, 1)
	assert.NotEqual(t, "INTERNAL", r.Errors[0].code())
	assert.Equal(t, before, s.outboxCount())
}

// A bind reconciles the user in each other integration it is connected to,
// in the same job (I4 is judged on all of them).
func TestBindReconcilesEveryIntegrationOfTheUser(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	a := s.authorized(org.admin, "A", s.bootstrap("a", "a.example.com"), nil)
	b := s.authorized(org.admin, "B", s.bootstrap("b", "b.example.com"), nil)
	ann, bob := s.createUser(org.admin, "ann"), s.createUser(org.admin, "bob")
	s.mutate(org.admin, bindUsers, map[string]any{"i": a.ID, "ids": []string{ann.ID}})

	j := s.mutate(org.admin, bindUsers, map[string]any{"i": b.ID, "ids": []string{ann.ID, bob.ID}}).Jobs
	require.Len(t, j, 1)
	assert.Equal(t, b.ID, *j[0].IntegrationID)
	var pairs []string
	for _, e := range j[0].Items.Edges {
		pairs = append(pairs, e.Node.IntegrationID+"/"+*e.Node.UserID)
	}
	sort.Strings(pairs)
	want := []string{a.ID + "/" + ann.ID, b.ID + "/" + ann.ID, b.ID + "/" + bob.ID}
	sort.Strings(want)
	assert.Equal(t, want, pairs)
	assert.Len(t, s.outboxFor(j[0].ID), 3)
}

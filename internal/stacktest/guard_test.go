package stacktest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/event"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/notification"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/guard"
	"github.com/dirsync/dirsync/internal/worker"
)

const (
	approveQ   = `mutation($id: ID!) { approveJob(id: $id) { ` + jobFields + ` } }`
	cancelQ    = `mutation($id: ID!) { cancelJob(id: $id) { ` + jobFields + ` } }`
	thresholdQ = `mutation($id: ID!, $in: UpdateIntegrationInput!) { updateIntegration(id: $id, input: $in) {
		integration { deprovisionThreshold deprovisionThresholdIsDefault } } }`
	unbindGroupsJobsQ = `mutation($i: ID!, $g: [ID!]!) { unbindUserGroups(integrationID: $i, groupIDs: $g) { jobs { ` + jobFields + ` } } }`
	bindGroupsJobsQ   = `mutation($i: ID!, $g: [ID!]!) { bindUserGroups(integrationID: $i, groupIDs: $g) { jobs { ` + jobFields + ` } } }`
)

// populatedGroup creates a group of n users @domain named prefix-i, adds them
// and returns the group id and the users' UPNs.
func (s *stack) populatedGroup(prefix, domain string, n int) (string, []string) {
	s.t.Helper()
	g := s.createGroup(prefix)
	ids := make([]string, n)
	upns := make([]string, n)
	for i := range n {
		upns[i] = fmt.Sprintf("%s%d@%s", prefix, i, domain)
		ids[i] = s.createUser(fmt.Sprintf("%s%d", prefix, i), upns[i])
	}
	s.must(s.admin, addMembersQ, map[string]any{"g": g, "u": ids}, nil)
	return g, upns
}

// setThreshold sets the integration's deprovisionThreshold (nil: explicit
// null, the guard off) and returns what the API then reports.
func (s *stack) setThreshold(integrationID string, in map[string]any) (limit *int, isDefault bool) {
	s.t.Helper()
	var out struct {
		UpdateIntegration struct {
			Integration struct {
				DeprovisionThreshold          *int
				DeprovisionThresholdIsDefault bool
			}
		}
	}
	s.must(s.admin, thresholdQ, map[string]any{"id": integrationID, "in": in}, &out)
	i := out.UpdateIntegration.Integration
	return i.DeprovisionThreshold, i.DeprovisionThresholdIsDefault
}

// enabled counts the UPNs whose remote account exists and is enabled.
func (s *stack) enabled(tenantID string, upns []string) int {
	n := 0
	for _, u := range upns {
		if r := s.remote(tenantID, u); r != nil && r.AccountEnabled {
			n++
		}
	}
	return n
}

// awaiting waits until the job is AWAITING_APPROVAL with held items and
// every other item done, and returns the job and how many items are held.
func (s *stack) awaiting(jobID string) (jobOut, int) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var q struct {
			Job struct {
				jobOut
				Done int
			}
		}
		s.must(s.readOnly, `query($id: ID!) { job(id: $id) { `+jobFields+` done } }`, map[string]any{"id": jobID}, &q)
		held, err := s.app.Ent.JobItem.Query().Where(jobitem.JobID(pulid.ID(jobID)),
			jobitem.StatusEQ(jobitem.StatusAWAITING_APPROVAL)).Count(sys())
		require.NoError(s.t, err)
		if q.Job.Status == "AWAITING_APPROVAL" && q.Job.Done+held == q.Job.Total {
			return q.Job.jobOut, held
		}
		require.Contains(s.t, []string{"QUEUED", "RUNNING", "AWAITING_APPROVAL"}, q.Job.Status, "job %s", jobID)
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s never settled awaiting approval: %+v, %d held", jobID, q.Job, held)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *stack) events(typ string) int {
	s.t.Helper()
	n, err := s.app.Ent.Event.Query().Where(event.Type(typ)).Count(sys())
	require.NoError(s.t, err)
	return n
}

// Unbinding a group of 100 with threshold 25 disables nobody until an admin
// approves (X4 through the guard); then exactly those 100 are disabled. The
// job waits AWAITING_APPROVAL with its held items listed, an event and a
// notification recorded; approving is admin-only and only for a job that
// waits (issue 14).
func TestGuardHoldsMassUnbindUntilApproved(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com"}, nil)
	limit, isDefault := s.setThreshold(alpha.id, map[string]any{"deprovisionThreshold": 25})
	require.Equal(t, 25, *limit)
	require.False(t, isDefault)
	g, upns := s.populatedGroup("m", "alpha.com", 100)
	// The preview of the bind: 100 creates read in one $batch call (7
	// lookups of ≤ 15 UPNs each).
	s.sim.ClearRequests()
	p := s.preview(s.readOnly, previewBindingQ, map[string]any{"i": alpha.id, "g": []string{g}})
	require.Equal(t, 100, p.Counts.Create)
	require.Equal(t, 1, p.GraphRequests)
	require.Equal(t, 1, s.onlyReads())
	bind := s.wait(s.mutateJobs(s.admin, "bindUserGroups", bindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g}})...)
	require.Equal(t, "SUCCEEDED", bind[0].Status)
	require.Equal(t, 100, s.enabled(alpha.tenantID, upns))
	// A job that does not wait cannot be approved or cancelled.
	s.fails(s.admin, approveQ, map[string]any{"id": bind[0].ID}, "FAILED_PRECONDITION")
	s.fails(s.admin, cancelQ, map[string]any{"id": bind[0].ID}, "FAILED_PRECONDITION")

	// The preview of the unbind says the guard would hold it.
	p = s.preview(s.readOnly, previewBindingQ, map[string]any{"i": alpha.id, "g": []string{g}, "un": true})
	require.Equal(t, 100, p.Counts.Disable)
	require.True(t, p.WouldAwaitApproval)
	require.Zero(t, p.GraphRequests, "disables need no read")

	unbind := s.mutateJobs(s.admin, "unbindUserGroups", unbindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g}})
	require.Len(t, unbind, 1)
	j, held := s.awaiting(unbind[0].ID)
	require.Equal(t, 100, held)
	require.Equal(t, "AWAITING_APPROVAL", j.Status)
	var list struct {
		Job struct{ Items struct{ TotalCount int } }
	}
	s.must(s.readOnly, `query($id: ID!) { job(id: $id) { items(where: {status: AWAITING_APPROVAL}) { totalCount } } }`,
		map[string]any{"id": j.ID}, &list)
	require.Equal(t, 100, list.Job.Items.TotalCount, "the list of held disables")
	require.Equal(t, 100, s.enabled(alpha.tenantID, upns), "nobody is disabled before approval")
	require.Equal(t, 1, s.events(guard.EventAwaitingApproval))
	nn, err := s.app.Ent.Notification.Query().Where(notification.Kind(guard.NotificationApproval),
		notification.JobID(pulid.ID(j.ID))).Count(sys())
	require.NoError(t, err)
	require.Equal(t, 1, nn)
	// Time passes; still nothing.
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, 100, s.enabled(alpha.tenantID, upns))

	s.fails(s.readOnly, approveQ, map[string]any{"id": j.ID}, "FORBIDDEN")
	s.fails(s.readOnly, cancelQ, map[string]any{"id": j.ID}, "FORBIDDEN")
	_, otherAdmin, _ := s.newOrg("other")
	s.fails(otherAdmin, approveQ, map[string]any{"id": j.ID}, "NOT_FOUND")
	require.Equal(t, 100, s.enabled(alpha.tenantID, upns))

	var ap struct{ ApproveJob jobOut }
	s.must(s.admin, approveQ, map[string]any{"id": j.ID}, &ap)
	require.Equal(t, "RUNNING", ap.ApproveJob.Status)
	done := s.wait(j)[0]
	require.Equal(t, "SUCCEEDED", done.Status)
	require.Equal(t, 0, s.enabled(alpha.tenantID, upns), "exactly the 100 are disabled")
	for _, u := range upns {
		require.NotNil(t, s.remote(alpha.tenantID, u), "disabled, never deleted")
	}
	require.Equal(t, 1, s.events(guard.EventApproved))
	n, err := s.app.Ent.Event.Query().Where(event.Type("user_deprovision"), event.JobID(pulid.ID(j.ID))).Count(sys())
	require.NoError(t, err)
	require.Equal(t, 100, n)
	// Approving twice is refused.
	s.fails(s.admin, approveQ, map[string]any{"id": j.ID}, "FAILED_PRECONDITION")
}

// cancelJob drops the held disables: nobody is disabled, the items end
// SKIPPED, the job ends and the cancellation is recorded.
func TestGuardCancelDisablesNobody(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com"}, nil)
	// The default threshold: 25 (10 % of 30 linked users is less).
	limit, isDefault := s.setThreshold(alpha.id, map[string]any{"resetDeprovisionThreshold": true})
	require.Equal(t, 25, *limit)
	require.True(t, isDefault)
	g, upns := s.populatedGroup("c", "alpha.com", 30)
	s.wait(s.mutateJobs(s.admin, "bindUserGroups", bindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g}})...)
	require.Equal(t, 30, s.enabled(alpha.tenantID, upns))

	unbind := s.mutateJobs(s.admin, "unbindUserGroups", unbindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g}})
	j, held := s.awaiting(unbind[0].ID)
	require.Equal(t, 30, held)
	var c struct{ CancelJob jobOut }
	s.must(s.admin, cancelQ, map[string]any{"id": j.ID}, &c)
	require.Equal(t, "SUCCEEDED", c.CancelJob.Status)
	require.Equal(t, 1, s.events(guard.EventCancelled))
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, 30, s.enabled(alpha.tenantID, upns), "a cancelled job disables nobody")
	skipped := 0
	for _, r := range s.results(j.ID) {
		if r == "SKIPPED" {
			skipped++
		}
	}
	require.Equal(t, 30, skipped)
	s.fails(s.admin, cancelQ, map[string]any{"id": j.ID}, "FAILED_PRECONDITION")
	s.fails(s.admin, approveQ, map[string]any{"id": j.ID}, "FAILED_PRECONDITION")

	// The guard off (explicit null): the next mass disable runs at once.
	limit, isDefault = s.setThreshold(alpha.id, map[string]any{"deprovisionThreshold": nil})
	require.Nil(t, limit)
	require.False(t, isDefault)
	res := s.wait(s.mutateJobs(s.admin, "resyncIntegration", resyncIntegrationQ, map[string]any{"id": alpha.id})...)
	require.Equal(t, "SUCCEEDED", res[0].Status)
	require.Equal(t, 0, s.enabled(alpha.tenantID, upns))
}

// The rolling window: two changes of 20 disables each, threshold 25. The
// first runs; the second, within 10 minutes, waits — while the creates the
// same job carries go on.
func TestGuardRollingWindow(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com", "beta.com"}, map[string]any{"domains": []string{"alpha.com"}})
	s.setThreshold(alpha.id, map[string]any{"deprovisionThreshold": 25})
	g1, upns1 := s.populatedGroup("a", "alpha.com", 20)
	g2, upns2 := s.populatedGroup("b", "alpha.com", 20)
	// Five users on beta.com: bound, out of scope (D3) until beta.com is listed.
	var beta []string
	var betaIDs []string
	for i := range 5 {
		beta = append(beta, fmt.Sprintf("n%d@beta.com", i))
		betaIDs = append(betaIDs, s.createUser(fmt.Sprintf("n%d", i), beta[i]))
	}
	s.wait(s.mutateJobs(s.admin, "bindUserGroups", bindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g1, g2}})...)
	s.wait(s.mutateJobs(s.admin, "bindUsers", `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { `+jobFields+` } } }`,
		map[string]any{"i": alpha.id, "u": betaIDs})...)
	require.Equal(t, 40, s.enabled(alpha.tenantID, append(append([]string{}, upns1...), upns2...)))
	require.Zero(t, s.enabled(alpha.tenantID, beta))

	first := s.wait(s.mutateJobs(s.admin, "unbindUserGroups", unbindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g1}})...)
	require.Equal(t, "SUCCEEDED", first[0].Status, "20 ≤ 25 runs at once")
	require.Zero(t, s.enabled(alpha.tenantID, upns1))

	// beta.com instead of alpha.com: group 2's 20 leave the scope (disable),
	// the 5 beta users come in (create), all in one job.
	second := s.mutateJobs(s.admin, "updateIntegration", `mutation($id: ID!, $in: UpdateIntegrationInput!) {
		updateIntegration(id: $id, input: $in) { jobs { `+jobFields+` } } }`,
		map[string]any{"id": alpha.id, "in": map[string]any{"domains": []string{"beta.com"}}})
	require.Len(t, second, 1)
	j, held := s.awaiting(second[0].ID)
	require.Equal(t, 20, held, "20 more within 10 minutes would make 40 > 25")
	require.Equal(t, 5, s.enabled(alpha.tenantID, beta), "the creates of the waiting job went on")
	require.Equal(t, 20, s.enabled(alpha.tenantID, upns2))

	s.must(s.admin, approveQ, map[string]any{"id": j.ID}, nil)
	assert.Equal(t, "SUCCEEDED", s.wait(j)[0].Status)
	assert.Zero(t, s.enabled(alpha.tenantID, upns2))
	assert.Equal(t, 5, s.enabled(alpha.tenantID, beta))
}

// Two mutations of 20 disables each, made at the same moment and run by two
// workers, with threshold 25: the guard counts in PostgreSQL, so exactly one
// of them runs and the other waits, whichever order the workers pick items
// in (issue 14).
func TestGuardCountsAcrossWorkers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	w2, err := s.app.NewWorker(app.WorkerOptions{Concurrency: 8, Tune: func(c *worker.Config) {
		c.MaxRetry, c.RetryBase, c.RetryMax, c.RelayPoll = 1, 10*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
	}})
	require.NoError(t, err)
	stopped := make(chan struct{})
	go func() { _ = w2.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })

	alpha := s.integration("Alpha", []string{"alpha.com"}, nil)
	s.setThreshold(alpha.id, map[string]any{"deprovisionThreshold": 25})
	g1, upns1 := s.populatedGroup("p", "alpha.com", 20)
	g2, upns2 := s.populatedGroup("q", "alpha.com", 20)
	s.wait(s.mutateJobs(s.admin, "bindUserGroups", bindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g1, g2}})...)
	all := append(append([]string{}, upns1...), upns2...)
	require.Equal(t, 40, s.enabled(alpha.tenantID, all))

	var wg sync.WaitGroup
	jobsOf := make([][]jobOut, 2)
	for i, g := range []string{g1, g2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobsOf[i] = s.mutateJobs(s.admin, "unbindUserGroups", unbindGroupsJobsQ, map[string]any{"i": alpha.id, "g": []string{g}})
		}()
	}
	wg.Wait()
	statuses := map[string]int{}
	var waiting jobOut
	for _, js := range jobsOf {
		require.Len(t, js, 1)
		j := s.wait(js...)[0]
		if j.Status == "AWAITING_APPROVAL" {
			waiting, _ = s.awaiting(j.ID)
			j = waiting
		}
		statuses[j.Status]++
	}
	require.Equal(t, map[string]int{"SUCCEEDED": 1, "AWAITING_APPROVAL": 1}, statuses)
	require.Equal(t, 20, s.enabled(alpha.tenantID, all), "only one of the two ran")

	// approveJob and cancelJob at the same moment: exactly one wins, the
	// other is refused, and the outcome is all of the one, none of the other.
	codes := make([]string, 2)
	for i, q := range []string{approveQ, cancelQ} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := s.post(s.admin, q, map[string]any{"id": waiting.ID}); len(r.Errors) > 0 {
				codes[i] = r.Errors[0].code()
			}
		}()
	}
	wg.Wait()
	require.ElementsMatch(t, []string{"", "FAILED_PRECONDITION"}, codes)
	end := s.wait(waiting)[0]
	require.Equal(t, "SUCCEEDED", end.Status)
	if codes[0] == "" { // approved
		require.Zero(t, s.enabled(alpha.tenantID, all))
		require.Equal(t, 1, s.events(guard.EventApproved))
		require.Zero(t, s.events(guard.EventCancelled))
	} else {
		require.Equal(t, 20, s.enabled(alpha.tenantID, all))
		require.Equal(t, 1, s.events(guard.EventCancelled))
		require.Zero(t, s.events(guard.EventApproved))
	}
}

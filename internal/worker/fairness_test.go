package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/integrations"
	"github.com/dirsync/dirsync/internal/worker"
)

// Issue 12, fair share: a tenant held back by its write budget must not keep
// every worker slot waiting, or another integration's work queued behind it
// would wait for the whole backlog. With MaxHold its tasks go back to the
// queue, the slots serve the other integration, and nothing is lost.
func TestThrottledIntegrationDoesNotStarveAnother(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{sim: graphsim.Config{Seed: 1, DisableThrottling: true}})
	s.childCfg.MaxHold = 300 * time.Millisecond
	// A: a small budget of its own (per-integration setting): 3 writes, then 4/s.
	require.NoError(t, s.client.Integration.UpdateOne(s.in).SetWriteBudgetSize(3).SetWriteBudgetRefillPerSecond(4).Exec(s.ctx))
	credsB, err := s.sim.Bootstrap("fabrikam", "fabrikam.com")
	require.NoError(t, err)
	inB := s.integrationFor(credsB)

	const nA, nB = 40, 4
	idsA := s.users(0, nA)
	var idsB []pulid.ID
	for i := range nB {
		name := fmt.Sprintf("f%02d", i)
		u, err := s.client.User.Create().SetOrganizationID(s.org.ID).SetUsername(name).SetEmail(name + "@fabrikam.com").
			SetFirstName("F" + name).SetLastName("Last").SetState(user.StateACTIVE).Save(s.ctx)
		require.NoError(t, err)
		idsB = append(idsB, u.ID)
	}
	s.startWorker(func(c *worker.Config) { c.Concurrency = 4 })
	jobsA := s.bind(idsA, nA)
	time.Sleep(500 * time.Millisecond) // A's tasks hold the slots by now
	_, jb, err := integrations.New(s.client, nil).BindUsers(s.ctx, inB.ID, idsB)
	require.NoError(t, err)

	settled := func(id pulid.ID) *ent.Job {
		j, err := s.client.Job.Get(s.ctx, id)
		require.NoError(t, err)
		return j
	}
	require.Eventually(t, func() bool { return settled(jb.ID).Status == job.StatusSUCCEEDED }, time.Minute, 50*time.Millisecond)
	a := settled(jobsA[0])
	// Without MaxHold, B's tasks, queued behind A's, start when at most 4 of
	// A's are left (A.done ≥ 36).
	require.Less(t, a.Done, nA/2, "B finished while A was still early in its budget, not after it")

	// Nothing of A is lost: requeued tasks all come back and converge.
	js := waitJobs(t, s, jobsA, 2*time.Minute)
	require.Equal(t, job.StatusSUCCEEDED, js[0].Status)
	require.Len(t, s.sim.Users(s.creds.TenantID), nA)
	require.Len(t, s.sim.Users(credsB.TenantID), nB)
}

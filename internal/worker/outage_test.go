package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/worker/redisproc"
)

// TestRedisOutageLosesNothing: Redis (a private server) goes away while users
// are bound and changed. The mutations still commit — their work waits in the
// outbox — and once Redis is back every user converges, changes included, with
// no duplicate remote user.
func TestRedisOutageLosesNothing(t *testing.T) {
	t.Parallel()
	rs := redisproc.Start(t)
	s := newStack(t, stackOpts{redisAddr: rs.Addr, sim: graphsim.Config{DisableThrottling: true,
		Faults: graphsim.Faults{LatencyBase: 5 * time.Millisecond, LatencyJitter: 5 * time.Millisecond}}})
	s.startWorker(nil)
	before := s.users(0, 50)
	s.bind(before, 25)
	s.waitConverged(50, 30*time.Second)

	rs.Stop()
	during := s.users(50, 50)
	s.bind(during, 25) // the bindUsers mutation path: commits without Redis
	dir := directory.New(s.client)
	title := "Changed during the outage"
	for _, id := range before[:10] {
		_, job, err := dir.UpdateUser(s.ctx, id, ent.UpdateUserInput{JobTitle: &title})
		require.NoError(t, err)
		require.NotNil(t, job)
	}
	time.Sleep(time.Second) // relay passes fail meanwhile
	pending, err := outbox.Pending(s.ctx, s.db)
	require.NoError(t, err)
	require.Equal(t, 60, pending, "50 binds + 10 changes wait in the outbox")

	rs.Restart()
	took := s.waitConverged(100, 40*time.Second)
	t.Logf("converged %s after Redis returned", took.Round(time.Millisecond))
	s.checkNoDuplicates(100)
	changed := 0
	for _, u := range s.sim.Users(s.creds.TenantID) {
		if u.Properties["jobTitle"] == title {
			changed++
		}
	}
	require.Equal(t, 10, changed, "the changes made during the outage reached Graph")
}

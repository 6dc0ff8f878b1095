package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/graphsim"
)

// TestFiveHundredUsersConvergeUnderGraphFaults: 10 % of Graph calls answer
// 5xx, six bursts of ten 429s arrive 1.5 s apart (a burst answers whatever calls come next, so an endless series would starve the last few tasks rather than test anything), created users stay invisible for a
// second (replication), the throttle model runs 10× faster than Graph's (and
// our budget with it). Every item must succeed, every link be IN_SYNC, and the
// tenant must hold exactly one remote user per directory user.
func TestFiveHundredUsersConvergeUnderGraphFaults(t *testing.T) {
	t.Parallel()
	const n = 500
	faults := graphsim.Faults{ServerErrorRate: 0.10, ReplicationDelay: time.Second,
		LatencyBase: 5 * time.Millisecond, LatencyJitter: 10 * time.Millisecond}
	s := newStack(t, stackOpts{sim: graphsim.Config{Seed: 4, TimeScale: 10, Faults: faults}})
	ids := s.users(0, n)
	s.startWorker(nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // 429 bursts
		tick := time.NewTicker(1500 * time.Millisecond)
		defer tick.Stop()
		for range 6 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				f := faults
				f.Force429 = 10
				s.sim.SetFaults(f)
			}
		}
	}()
	s.bind(ids, 100)
	took := s.waitConverged(n, 50*time.Second)
	cancel()
	s.checkNoDuplicates(n)

	var fivexx, throttled, total int
	for _, r := range s.sim.Requests() {
		total++
		switch {
		case r.Fault == "5xx":
			fivexx++
		case r.Status == 429:
			throttled++
		}
	}
	t.Logf("%d users converged in %s; Graph requests %d (log ring may cap), injected 5xx %d, 429 %d",
		n, took.Round(time.Millisecond), total, fivexx, throttled)
	require.Positive(t, fivexx, "faults were injected")
	require.Positive(t, throttled, "429s were answered")
}

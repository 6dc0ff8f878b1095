package drift_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/drift"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/worker"
)

// Two workers on one Redis, each with its own scheduler: every authorized
// integration gets exactly one round per period, across periods, also when
// Redis already holds the current period's round (scheduled before the
// workers started); a de-authorized integration gets none (issue 14).
func TestTwoWorkersOneRoundPerPeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	second := e.integration(envOpts{name: "second"})
	off := e.integration(envOpts{name: "off"})
	require.NoError(t, e.client.Integration.UpdateOne(off).SetStatus(integration.StatusUNAUTHORIZED).Exec(e.ctx))
	const every = time.Second
	opt := asynq.RedisClientOpt{Addr: e.redis.Addr, DB: e.redis.DB}
	queue := "drifttest"

	// A Redis that already holds this period's rounds.
	pre := asynq.NewClient(opt)
	t.Cleanup(func() { _ = pre.Close() })
	n, err := (&drift.Scheduler{Ent: e.client, Client: pre, Every: every, Queue: queue}).ScheduleOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = (&drift.Scheduler{Ent: e.client, Client: pre, Every: every, Queue: queue}).ScheduleOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "the same period again is a conflict, not a second round")

	var mu sync.Mutex
	rounds := map[pulid.ID]map[int64]int{}
	handle := func(ctx context.Context, payload []byte, final bool) error {
		var task drift.Task
		require.NoError(t, json.Unmarshal(payload, &task))
		mu.Lock()
		if rounds[task.IntegrationID] == nil {
			rounds[task.IntegrationID] = map[int64]int{}
		}
		rounds[task.IntegrationID][task.Period]++
		mu.Unlock()
		return e.det.HandleTask(ctx, payload, final)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		w, err := worker.New(worker.Config{Redis: opt, Queue: queue, NoRelay: true, NoSweep: true,
			Handler:                  worker.HandlerFunc(func(context.Context, jobs.ReconcileUser, bool) error { return nil }),
			Tasks:                    map[string]worker.TaskFunc{drift.KindRound: handle},
			DelayedTaskCheckInterval: 100 * time.Millisecond, Logger: quietLogger(),
			Background: []func(context.Context, *asynq.Client, string){func(ctx context.Context, c *asynq.Client, q string) {
				(&drift.Scheduler{Ent: e.client, Client: c, Every: every, Queue: q, Logger: quietLogger()}).Run(ctx)
			}},
		})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.Run(ctx)
		}()
	}
	periods := func(id pulid.ID) int {
		mu.Lock()
		defer mu.Unlock()
		return len(rounds[id])
	}
	require.Eventually(t, func() bool { return periods(e.in.ID) >= 3 && periods(second.ID) >= 3 },
		20*time.Second, 50*time.Millisecond)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	require.NotContains(t, rounds, off.ID)
	for id, per := range rounds {
		for p, k := range per {
			require.Equal(t, 1, k, "integration %s period %d", id, p)
		}
	}
	checked, err := e.client.Integration.Query().Where(integration.DriftCheckedAtNotNil()).IDs(e.ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []pulid.ID{e.in.ID, second.ID}, checked)
}

// The offset places an integration's round at the same point of every
// period on every replica, and inside the period.
func TestOffsetStableAndInsidePeriod(t *testing.T) {
	id := pulid.New("IN")
	for _, every := range []time.Duration{time.Second, 15 * time.Minute} {
		o := drift.Offset(id, every)
		require.Equal(t, o, drift.Offset(id, every))
		require.GreaterOrEqual(t, o, time.Duration(0))
		require.Less(t, o, every)
	}
	require.NotEqual(t, drift.TaskID(id, time.Minute, 1), drift.TaskID(id, time.Minute, 2))
}

package throttle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/testredis"
)

var errWouldSleep = errors.New("would sleep")

// newBudgets returns budgets whose Sleep records the wait and refuses it, so a test
// sees exactly when the shared budget says "not now" without sleeping.
func newBudgets(t *testing.T, rdb redis.UniversalClient, slept *[]time.Duration) *Budgets {
	t.Helper()
	b, err := New(Config{
		Redis:    rdb,
		Writes:   redis_rate.Limit{Rate: 20, Period: time.Second, Burst: 5},
		Reads:    redis_rate.Limit{Rate: 100, Period: time.Second, Burst: 10},
		Headroom: 1,
		Sleep: func(_ context.Context, d time.Duration) error {
			*slept = append(*slept, d)
			return errWouldSleep
		},
	})
	require.NoError(t, err)
	return b
}

func TestWriteBudgetSharedAcrossWorkersPerTenant(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	var slept []time.Duration
	workerA := newBudgets(t, rdb, &slept).For("tenant1/app")
	workerB := newBudgets(t, rdb, &slept).For("tenant1/app")

	for i := 0; i < 5; i++ { // the burst, split between two workers
		w := workerA
		if i%2 == 1 {
			w = workerB
		}
		require.NoError(t, w.Wait(ctx, 1), "write %d within burst", i)
	}
	require.ErrorIs(t, workerB.Wait(ctx, 1), errWouldSleep, "the sixth write must wait: the budget is shared")
	require.Len(t, slept, 1)
	require.InDelta(t, 50*time.Millisecond, slept[0], float64(15*time.Millisecond), "one emission interval at 20/s")

	require.NoError(t, workerA.Wait(ctx, 0), "reads have their own budget")
	require.NoError(t, newBudgets(t, rdb, &slept).For("tenant2/app").Wait(ctx, 1), "another tenant is not affected")
}

func TestPenalizePausesTheWholeTenantAndKeepsTheLongerPause(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	var slept []time.Duration
	b := newBudgets(t, rdb, &slept)

	b.For("t/a").Penalize(ctx, 3*time.Second)
	b.For("t/a").Penalize(ctx, time.Second) // shorter: must not cut the pause
	require.ErrorIs(t, b.For("t/a").Wait(ctx, 0), errWouldSleep, "even reads wait out a 429 pause")
	require.Greater(t, slept[0], 2500*time.Millisecond)
	require.LessOrEqual(t, slept[0], 3*time.Second)

	b.For("t/a").Penalize(ctx, 5*time.Second) // longer: extends
	slept = slept[:0]
	require.ErrorIs(t, b.For("t/a").Wait(ctx, 1), errWouldSleep)
	require.Greater(t, slept[0], 4*time.Second)

	require.NoError(t, b.For("t/other").Wait(ctx, 1), "another app+tenant is not paused")
}

func TestWaitReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	b, err := New(Config{Redis: rdb})
	require.NoError(t, err)
	b.For("t/a").Penalize(context.Background(), time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.For("t/a").Wait(ctx, 1), context.DeadlineExceeded)
}

func TestConfigValidate(t *testing.T) {
	_, err := New(Config{})
	require.ErrorContains(t, err, "Redis client required")
	_, err = New(Config{Redis: redis.NewClient(&redis.Options{}), Headroom: 2})
	require.ErrorContains(t, err, "Headroom")
}

// The start and the end of a tenant's 429 pause each give one INFO line with
// the wait, however many calls wait it out in between.
func TestThrottlingLoggedOncePerTenantAtInfo(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	var logs bytes.Buffer
	b, err := New(Config{
		Redis:  rdb,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Sleep: func(ctx context.Context, d time.Duration) error {
			// Waiting out the pause: it ends for everyone.
			return rdb.Del(ctx, "dirsync:throttle:pause:tenant1/app").Err()
		},
	})
	require.NoError(t, err)
	ctx := context.Background()
	budget := b.For("tenant1/app")
	budget.Penalize(ctx, 30*time.Second)
	budget.Penalize(ctx, 20*time.Second) // a second 429 during the pause
	require.NoError(t, budget.Wait(ctx, 1))
	require.NoError(t, budget.Wait(ctx, 1))
	out := logs.String()
	require.Equal(t, 1, strings.Count(out, "tenant paused"), out)
	require.Contains(t, out, "level=INFO")
	require.Contains(t, out, "tenant=tenant1/app wait=30s")
	require.Equal(t, 1, strings.Count(out, "pause over"), out)
	require.NoError(t, b.For("tenant2/app").Wait(ctx, 1))
	require.NotContains(t, logs.String(), "tenant2")
}

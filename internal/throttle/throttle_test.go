package throttle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
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
// sees exactly when the shared budget says "not now" without sleeping. The
// write bucket holds 5 and refills 20 per second.
func newBudgets(t *testing.T, rdb redis.UniversalClient, slept *[]time.Duration) *Budgets {
	t.Helper()
	b, err := New(Config{
		Redis:    rdb,
		Writes:   WriteBudget{Size: 5, RefillPerSecond: 20},
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

// write takes one write and reports it answered (Wait must be followed by
// Answered, or the window fills).
func write(ctx context.Context, b *Budget, status int, h http.Header) error {
	if err := b.Wait(ctx, 1); err != nil {
		return err
	}
	b.Answered(ctx, 1, status, h)
	return nil
}

// Issue 12: the bucket starts full, like Graph's, and two workers (two
// Budgets on one Redis) draw from the same one.
func TestWriteBudgetStartsFullAndIsSharedAcrossWorkers(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	var slept []time.Duration
	workerA := newBudgets(t, rdb, &slept).For("tenant1/app")
	workerB := newBudgets(t, rdb, &slept).For("tenant1/app")

	for i := 0; i < 5; i++ { // the whole bucket at once, split between two workers
		w := workerA
		if i%2 == 1 {
			w = workerB
		}
		require.NoError(t, write(ctx, w, http.StatusCreated, nil), "write %d: the bucket starts full", i)
	}
	require.Empty(t, slept, "a full bucket makes nobody wait")
	require.ErrorIs(t, workerB.Wait(ctx, 1), errWouldSleep, "the sixth write must wait: the bucket is shared")
	require.Len(t, slept, 1)
	require.InDelta(t, 50*time.Millisecond, slept[0], float64(15*time.Millisecond), "one token at 20/s")

	require.NoError(t, workerA.Wait(ctx, 0), "reads have their own budget")
	require.NoError(t, newBudgets(t, rdb, &slept).For("tenant2/app").Wait(ctx, 1), "another tenant is not affected")
}

// An integration's own bucket size and refill are used (per-integration settings).
func TestWriteBudgetPerIntegrationSizes(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	var slept []time.Duration
	b := newBudgets(t, rdb, &slept).ForWrites("t/a", WriteBudget{Size: 2, RefillPerSecond: 4})
	require.NoError(t, write(ctx, b, http.StatusNoContent, nil))
	require.NoError(t, write(ctx, b, http.StatusNoContent, nil))
	require.ErrorIs(t, b.Wait(ctx, 1), errWouldSleep)
	require.InDelta(t, 250*time.Millisecond, slept[0], float64(30*time.Millisecond), "one token at 4/s")
}

// A bucket the tenant already emptied: the first 429 empties ours too (and
// pauses the tenant); from then on writes come at the refill rate.
func TestWriteBudgetAlreadyDrainedByTheTenant(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	var slept []time.Duration
	b := newBudgets(t, rdb, &slept).For("t/a")
	require.NoError(t, b.Wait(ctx, 1))
	b.Answered(ctx, 1, http.StatusTooManyRequests, nil)
	b.Penalize(ctx, 0) // a 429 without Retry-After: no pause, but no tokens either
	require.ErrorIs(t, b.Wait(ctx, 1), errWouldSleep)
	require.InDelta(t, 50*time.Millisecond, slept[0], float64(15*time.Millisecond), "the refill, not the bucket")

	// Without any 429: an answer saying 100 % of the budget is used lowers
	// our bucket the same way (x-ms-throttle-limit-percentage).
	slept = slept[:0]
	c := newBudgets(t, rdb, &slept).For("t/c")
	require.NoError(t, write(ctx, c, http.StatusCreated, http.Header{"X-Ms-Throttle-Limit-Percentage": {"1.0"}}))
	require.ErrorIs(t, c.Wait(ctx, 1), errWouldSleep, "the tenant said its bucket is empty")
	// 0.8 used of 5 leaves one write.
	d := newBudgets(t, rdb, &slept).For("t/d")
	require.NoError(t, write(ctx, d, http.StatusCreated, http.Header{"X-Ms-Throttle-Limit-Percentage": {"0.8"}}))
	require.NoError(t, write(ctx, d, http.StatusCreated, nil))
	require.ErrorIs(t, d.Wait(ctx, 1), errWouldSleep)
}

// Shrink on 429 and recovery (AIMD): a 429 while the bucket already lived on
// its refill halves the refill rate; successful writes give it back.
func TestWriteBudgetShrinksOn429AndRecovers(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	var slept []time.Duration
	b, err := New(Config{Redis: rdb, Writes: WriteBudget{Size: 1, RefillPerSecond: 10}, Headroom: 1, RateStep: 0.25,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return errWouldSleep }})
	require.NoError(t, err)
	budget := b.For("t/a")
	key := "dirsync:throttle:wb:t/a"

	budget.Penalize(ctx, 0) // a full bucket was wrong about the level: rate stays
	require.Equal(t, "1", rdb.HGet(ctx, key, "f").Val())
	time.Sleep(1100 * time.Millisecond) // the same 429 burst does not shrink twice
	now := rdb.Time(ctx).Val().UnixMilli()
	rdb.HSet(ctx, key, "tokens", "0", "ts", now)
	budget.Penalize(ctx, 0) // on the refill already and still 429: too fast
	require.Equal(t, "0.5", rdb.HGet(ctx, key, "f").Val())
	budget.Penalize(ctx, 0) // within the second: the same burst
	require.Equal(t, "0.5", rdb.HGet(ctx, key, "f").Val())
	require.ErrorIs(t, budget.Wait(ctx, 1), errWouldSleep)
	require.InDelta(t, 200*time.Millisecond, slept[0], float64(30*time.Millisecond), "one token at half of 10/s")

	rdb.HSet(ctx, key, "tokens", "1")
	for range 2 {
		require.NoError(t, budget.Wait(ctx, 1))
		budget.Answered(ctx, 1, http.StatusCreated, nil)
		rdb.HSet(ctx, key, "tokens", "1")
	}
	require.Equal(t, "1", rdb.HGet(ctx, key, "f").Val(), "two successes at 0.25 each: full rate again")
}

// The window of writes in flight starts small, grows with successes and
// halves on a 429.
func TestWriteWindowSlowStart(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	b, err := New(Config{Redis: rdb, InitialWindow: 2, MaxInFlight: 6})
	require.NoError(t, err)
	budget := b.For("t/a")
	inFlight := func(n int) {
		t.Helper()
		for i := range n {
			require.NoError(t, budget.Wait(ctx, 1), "write %d of %d", i+1, n)
		}
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, budget.Wait(short, 1), context.DeadlineExceeded, "write %d must wait for an answer", n+1)
	}
	answer := func(n, status int) {
		for range n {
			budget.Answered(ctx, 1, status, nil)
		}
	}
	inFlight(2)
	answer(2, http.StatusCreated) // 2 → 4
	inFlight(4)
	answer(4, http.StatusCreated) // 4 → 6 (the cap)
	inFlight(6)
	answer(5, http.StatusCreated)
	answer(1, http.StatusTooManyRequests) // 6 → 3
	inFlight(3)
	answer(3, http.StatusServiceUnavailable) // no change
	inFlight(3)
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

// MaxHold: a Wait that would keep its worker slot longer returns a
// BusyError naming when to come back, so a throttled tenant's tasks go back to
// the queue and the slots serve other tenants (fair share, issue 12).
func TestWaitLongerThanMaxHoldIsBusy(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testredis.New(t).Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	b, err := New(Config{Redis: rdb, Writes: WriteBudget{Size: 1, RefillPerSecond: 0.1}, Headroom: 1,
		MaxHold: 100 * time.Millisecond, InitialWindow: 1, MaxInFlight: 1})
	require.NoError(t, err)
	budget := b.For("t/a")
	require.NoError(t, budget.Wait(ctx, 1), "the bucket starts full")

	var busy *BusyError
	require.ErrorAs(t, budget.Wait(ctx, 1), &busy, "the window (1) is taken until the answer")
	require.Equal(t, minBusyRetry, busy.RetryAfter)
	budget.Answered(ctx, 1, http.StatusCreated, nil)

	require.ErrorAs(t, budget.Wait(ctx, 1), &busy, "the next token is 10 s away")
	require.Greater(t, busy.RetryAfter, 9*time.Second)

	other := b.For("t/b")
	other.Penalize(ctx, 5*time.Second)
	require.ErrorAs(t, other.Wait(ctx, 0), &busy, "a 429 pause longer than MaxHold")
	require.Greater(t, busy.RetryAfter, 4*time.Second)
}

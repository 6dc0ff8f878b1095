package msgraph

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// DESIGN.md: Retry-After is honoured tenant-wide — after one caller's 429,
// every caller of the limiter waits the pause out.
func TestLocalLimiterPauseAppliesToEveryCaller(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	var slept []time.Duration
	l := NewLocalLimiter(0, 0)
	l.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l.sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		now = now.Add(d)
		return nil
	}
	ctx := context.Background()
	require.NoError(t, l.Wait(ctx, 1))
	assert.Empty(t, slept)

	l.Penalize(ctx, 5*time.Second)
	l.Penalize(ctx, 2*time.Second) // shorter: does not shorten the pause
	require.NoError(t, l.Wait(ctx, 1))
	require.NoError(t, l.Wait(ctx, 1))
	assert.Equal(t, []time.Duration{5 * time.Second}, slept, "second caller finds the pause over")
}

func TestLocalLimiterRespectsContext(t *testing.T) {
	l := NewLocalLimiter(0, 0)
	l.Penalize(context.Background(), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, l.Wait(ctx, 1), context.Canceled)
}

func TestLocalLimiterSteadyRate(t *testing.T) {
	l := NewLocalLimiter(200, 1)
	ctx := context.Background()
	start := time.Now()
	for range 11 {
		require.NoError(t, l.Wait(ctx, 1))
	}
	// 10 intervals of 5 ms after the first token.
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond)
}

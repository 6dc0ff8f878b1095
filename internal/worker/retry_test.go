package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string { return "429" }

func TestRetryDelayHonoursRetryAfterElseBacksOffWithJitterAndCap(t *testing.T) {
	t.Parallel()
	ra := func(err error) time.Duration {
		var r retryAfterErr
		if errors.As(err, &r) {
			return r.d
		}
		return 0
	}
	for range 200 {
		d := retryDelay(0, retryAfterErr{7 * time.Second}, ra, time.Second, time.Minute)
		require.GreaterOrEqual(t, d, 7*time.Second, "never earlier than Graph asked")
		require.LessOrEqual(t, d, 8*time.Second+700*time.Millisecond, "plus asynq's second granularity and a jitter")

		for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 10: time.Minute, 40: time.Minute, 1000: time.Minute} {
			d := retryDelay(n, errors.New("boom"), ra, time.Second, time.Minute)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", n)
			require.LessOrEqual(t, d, want, "attempt %d", n)
		}
		d = retryDelay(2, errors.New("boom"), nil, time.Second, time.Minute)
		require.GreaterOrEqual(t, d, 2*time.Second)
		require.LessOrEqual(t, d, 4*time.Second)
	}
}

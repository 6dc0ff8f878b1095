package msgraph

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LocalLimiter is an in-process Limiter: an optional steady rate plus a
// tenant-wide pause after a 429. It suits one process (dev, tests, a single
// worker); several workers need the Redis-backed budget of DESIGN.md, which
// implements the same interface.
type LocalLimiter struct {
	rate  *rate.Limiter // nil = no steady rate
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu          sync.Mutex
	pausedUntil time.Time
}

// NewLocalLimiter allows perSecond requests per second with the given burst;
// perSecond <= 0 means no steady rate, only the pause after 429s. Graph's write
// quota is 3,000 per 150 s per app+tenant, i.e. 20/s (GRAPH.md "Throttling").
func NewLocalLimiter(perSecond float64, burst int) *LocalLimiter {
	l := &LocalLimiter{now: time.Now, sleep: sleepCtx}
	if perSecond > 0 {
		if burst < 1 {
			burst = 1
		}
		l.rate = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	return l
}

// Wait blocks while a pause is in force, then takes a token from the rate.
func (l *LocalLimiter) Wait(ctx context.Context, _ int) error {
	for {
		l.mu.Lock()
		d := l.pausedUntil.Sub(l.now())
		l.mu.Unlock()
		if d <= 0 {
			break
		}
		if err := l.sleep(ctx, d); err != nil {
			return err
		}
	}
	if l.rate != nil {
		return l.rate.Wait(ctx)
	}
	return ctx.Err()
}

// Penalize pauses every caller for d (the longest pause wins).
func (l *LocalLimiter) Penalize(_ context.Context, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := l.now().Add(d); until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
}

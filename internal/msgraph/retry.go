package msgraph

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds how long one logical request may keep trying.
type RetryPolicy struct {
	// MaxAttempts counts every try, the first included. Default 6.
	MaxAttempts int
	// BaseDelay is the first backoff step when the server gave no Retry-After.
	// Default 500 ms; step n waits about BaseDelay·2ⁿ, jittered.
	BaseDelay time.Duration
	// MaxDelay caps one computed backoff step. Default 30 s.
	MaxDelay time.Duration
	// FirstServerErrorDelay is the first wait after a server error (5xx
	// without Retry-After, or no answer at all); the waits after it are
	// BaseDelay's steps. Default 100 ms. See serverBackoff.
	FirstServerErrorDelay time.Duration
	// MaxRetryAfter is the longest server-requested wait the client sits out
	// itself; a longer Retry-After is returned as the error so the job layer can
	// reschedule instead of holding a worker. Default 5 min.
	MaxRetryAfter time.Duration
	// Retry5xx also retries 500 and 502 (429/503/504 are always retried).
	Retry5xx bool
	// Jitter returns a number in [0,1); nil uses math/rand. Tests fix it.
	Jitter func() float64
}

func (p *RetryPolicy) setDefaults() {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.FirstServerErrorDelay <= 0 {
		p.FirstServerErrorDelay = min(100*time.Millisecond, p.BaseDelay)
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 5 * time.Minute
	}
	if p.Jitter == nil {
		p.Jitter = rand.Float64
	}
}

// retryable reports whether an answer with this status is worth another try.
// fresh marks requests about an object this client created moments ago: Graph
// replicates asynchronously, so its 404 is expected to heal (GRAPH.md,
// "Eventual consistency").
func (p *RetryPolicy) retryable(status int, code string, fresh bool) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusInternalServerError, http.StatusBadGateway:
		return p.Retry5xx
	case http.StatusNotFound:
		return fresh && (code == "" || code == CodeResourceNotFound)
	}
	return false
}

// backoff is the wait before try number attempt+1 (attempt counts from 0 for the
// first retry) when the server gave no Retry-After: "equal jitter", so waits
// grow exponentially but concurrent clients do not retry in lockstep.
func (p *RetryPolicy) backoff(attempt int) time.Duration {
	d := float64(p.BaseDelay) * math.Pow(2, float64(attempt))
	if d > float64(p.MaxDelay) || math.IsInf(d, 0) {
		d = float64(p.MaxDelay)
	}
	half := d / 2
	return time.Duration(half + p.Jitter()*half)
}

// serverBackoff is the wait before try attempt+1 after a server error Graph
// gave no Retry-After for (500, 502, 503, 504) or after no answer at all. A
// single one is usually one node's hiccup, and the call is already on its
// way elsewhere: the first retry leaves after FirstServerErrorDelay
// (jittered), the next ones follow backoff one step behind (BaseDelay, then
// doubling), so a Graph that keeps failing sees about as few calls as
// before. Under 5 % of calls answered 5xx, 2,000 users took 1.46–1.76× the
// fault-free time with BaseDelay as the first wait and 1.0–1.1× with this
// (issue 12, docs/benchmarks.md): the run's end is the unluckiest user's sum
// of waits. A 429 or a replication 404 keeps backoff's steps.
func (p *RetryPolicy) serverBackoff(attempt int) time.Duration {
	if attempt == 0 {
		half := float64(p.FirstServerErrorDelay) / 2
		return time.Duration(half + p.Jitter()*half)
	}
	return p.backoff(attempt - 1)
}

// parseRetryAfter reads Retry-After as delta-seconds (fractions tolerated, as
// the emulator may scale time) or as an HTTP date. Zero means absent/unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// sleepCtx is the default Sleeper: it returns early with ctx's error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

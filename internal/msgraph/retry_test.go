package msgraph

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffGrowsExponentiallyWithJitterAndCaps(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	p.setDefaults()
	p.Jitter = func() float64 { return 0 }
	assert.Equal(t, 50*time.Millisecond, p.backoff(0))
	assert.Equal(t, 100*time.Millisecond, p.backoff(1))
	assert.Equal(t, 200*time.Millisecond, p.backoff(2))
	assert.Equal(t, 500*time.Millisecond, p.backoff(10), "capped at MaxDelay before jitter")
	assert.Equal(t, 500*time.Millisecond, p.backoff(5000), "no overflow on huge attempt numbers")
	p.Jitter = func() float64 { return 0.999999 }
	assert.InDelta(t, float64(100*time.Millisecond), float64(p.backoff(0)), float64(time.Microsecond))
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		" 2 ":                           2 * time.Second,
		"0.25":                          250 * time.Millisecond,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 12:00:30 GMT": 30 * time.Second,
		"Thu, 01 Jan 2026 11:00:00 GMT": 0,
	} {
		assert.Equal(t, want, parseRetryAfter(in, now), "Retry-After %q", in)
	}
}

func TestRetryableStatuses(t *testing.T) {
	p := RetryPolicy{}
	for _, tc := range []struct {
		status int
		code   string
		fresh  bool
		retry5 bool
		want   bool
	}{
		{429, CodeTooManyRequests, false, false, true},
		{503, "", false, false, true},
		{504, "", false, false, true},
		{500, "", false, false, false},
		{500, "", false, true, true},
		{502, "", false, true, true},
		{400, CodeBadRequest, true, true, false},
		{403, CodeAuthorizationDenied, true, true, false},
		{404, CodeResourceNotFound, false, false, false},
		{404, CodeResourceNotFound, true, false, true},
		{404, "", true, false, true},
		{404, "SomethingElse", true, false, false},
		{410, "", true, true, false},
	} {
		p.Retry5xx = tc.retry5
		assert.Equal(t, tc.want, p.retryable(tc.status, tc.code, tc.fresh), "%+v", tc)
	}
}

// 429 with Retry-After: the wait is the server's, the limiter is penalised so
// the whole tenant pauses, the body is re-sent intact and the client-request-id
// stays the same across tries (GRAPH.md "Throttling"; STYLE.md habit 6).
func TestRequestHonoursRetryAfterAndRewindsBody(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var bodies, crids []string
	f, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		crids = append(crids, r.Header.Get("client-request-id"))
		mu.Unlock()
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("x-ms-throttle-information", "WriteLimitExceeded")
			writeGraphError(w, 429, CodeTooManyRequests, "Please retry again later.")
			return
		}
		writeJSON(w, 201, map[string]any{"id": "u1", "userPrincipalName": "a@x.com"})
	})
	lim := &fakeLimiter{}
	c.cfg.Limiter = lim
	u, err := c.CreateUser(context.Background(), UserFields{DisplayName: Ptr("A"), PasswordProfile: &PasswordProfile{Password: "Pw-1234567"}})
	require.NoError(t, err)
	assert.Equal(t, "u1", u.ID)
	assert.Equal(t, []time.Duration{7 * time.Second, 7 * time.Second}, sl.Waits())
	assert.Equal(t, []time.Duration{7 * time.Second, 7 * time.Second}, lim.penalties)
	assert.Equal(t, 3, lim.waits, "limiter consulted before every attempt")
	require.Len(t, bodies, 3)
	assert.Equal(t, bodies[0], bodies[2])
	assert.Contains(t, bodies[2], `"displayName":"A"`)
	assert.NotEmpty(t, crids[0])
	assert.Equal(t, crids[0], crids[2])
	assert.EqualValues(t, 1, f.tokenCalls.Load(), "token cached across attempts")
}

// Without Retry-After the waits grow exponentially. A server error gets a
// quick first retry (half of FirstServerErrorDelay's 100 ms with jitter 0),
// then BaseDelay's steps (half of 500 ms, 1 s); throttling is no hiccup and
// waits BaseDelay's steps from the first retry (half of 500 ms, 1 s, 2 s).
func TestRequestBacksOffExponentiallyWithoutRetryAfter(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		waits  []time.Duration
	}{
		{503, "serviceNotAvailable", []time.Duration{50 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond}},
		{429, "TooManyRequests", []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}},
	} {
		var calls atomic.Int32
		_, cl, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 3 {
				writeGraphError(w, c.status, c.code, "try again")
				return
			}
			writeJSON(w, 200, map[string]any{"id": "u1"})
		})
		_, err := cl.GetUser(context.Background(), "u1")
		require.NoError(t, err)
		assert.Equal(t, c.waits, sl.Waits(), "status %d", c.status)
	}
}

func TestRequestStopsAfterMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	_, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeGraphError(w, 504, "gatewayTimeout", "Gateway timeout")
	})
	_, err := c.GetUser(context.Background(), "u1")
	var ge *Error
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, 504, ge.Status)
	assert.EqualValues(t, 6, calls.Load())
	assert.Len(t, sl.Waits(), 5, "no wait after the last attempt")
}

func TestRequestDoesNotRetryPermanentErrorsOrPlain404(t *testing.T) {
	for _, status := range []int{400, 403, 404, 409} {
		var calls atomic.Int32
		_, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeGraphError(w, status, "X", "nope")
		})
		_, err := c.GetUser(context.Background(), "someone-else-created-this")
		require.Error(t, err)
		assert.EqualValues(t, 1, calls.Load(), "status %d", status)
		assert.Empty(t, sl.Waits())
	}
}

// GRAPH.md "Eventual consistency": a GET right after our own POST may 404 for a
// while; the client retries it, but only for objects it created.
func TestFreshObject404IsRetried(t *testing.T) {
	var gets atomic.Int32
	_, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			writeJSON(w, 201, map[string]any{"id": "new-1", "userPrincipalName": "n@x.com"})
		case gets.Add(1) <= 2:
			writeGraphError(w, 404, CodeResourceNotFound, "Resource 'new-1' does not exist or one of its queried reference-property objects are not present.")
		default:
			writeJSON(w, 200, map[string]any{"id": "new-1"})
		}
	})
	ctx := context.Background()
	_, err := c.CreateUser(ctx, UserFields{})
	require.NoError(t, err)
	_, err = c.GetUser(ctx, "new-1")
	require.NoError(t, err)
	assert.Len(t, sl.Waits(), 2)

	// Someone else's object: 404 is final. WithRetryNotFound opts in.
	gets.Store(0)
	_, err = c.GetUser(ctx, "other")
	require.True(t, IsNotFound(err))
	gets.Store(0)
	_, err = c.GetUser(WithRetryNotFound(ctx), "other")
	require.NoError(t, err)
}

func TestRetryAfterLongerThanPolicyIsReturned(t *testing.T) {
	var calls atomic.Int32
	_, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "3600")
		writeGraphError(w, 429, CodeTooManyRequests, "Please retry again later.")
	})
	_, err := c.GetUser(context.Background(), "u")
	require.True(t, IsThrottled(err))
	ge, _ := asError(err)
	assert.Equal(t, time.Hour, ge.RetryAfter, "caller can reschedule with it")
	assert.EqualValues(t, 1, calls.Load())
	assert.Empty(t, sl.Waits())
}

func TestContextCancelInterruptsRetryWait(t *testing.T) {
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		writeGraphError(w, 429, CodeTooManyRequests, "Please retry again later.")
	})
	c.cfg.Sleep = sleepCtx // the real one
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetUser(ctx, "u")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestTransportErrorsAreRetried(t *testing.T) {
	var calls atomic.Int32
	f, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// Drop the connection without an answer.
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
			return
		}
		writeJSON(w, 200, map[string]any{"id": "u"})
	})
	_ = f
	// PATCH, because net/http itself silently retries idempotent GETs on a
	// dropped connection and would hide our retry.
	require.NoError(t, c.UpdateUser(context.Background(), "u", UserFields{JobTitle: Ptr("x")}))
	assert.Len(t, sl.Waits(), 1)
	assert.EqualValues(t, 2, calls.Load())
}

// A 401 (token expired early or revoked) drops the cached token and retries
// once with a new one, without backoff; a second 401 is returned.
func TestUnauthorizedRefreshesTokenOnce(t *testing.T) {
	var calls atomic.Int32
	var auths []string
	f, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		auths = append(auths, r.Header.Get("Authorization"))
		if calls.Add(1) == 1 {
			writeGraphError(w, 401, CodeInvalidAuthToken, "Lifetime validation failed, the token is expired.")
			return
		}
		writeJSON(w, 200, map[string]any{"id": "u"})
	})
	_, err := c.GetUser(context.Background(), "u")
	require.NoError(t, err)
	assert.EqualValues(t, 2, f.tokenCalls.Load())
	require.Len(t, auths, 2)
	assert.NotEqual(t, auths[0], auths[1])
	assert.Empty(t, sl.Waits())

	f.graph = func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, 401, CodeInvalidAuthToken, "Access token validation failure.")
	}
	_, err = c.GetUser(context.Background(), "u")
	assert.True(t, IsUnauthorized(err))
}

func TestLimiterErrorAborts(t *testing.T) {
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) { t.Fatal("must not be called") })
	c.cfg.Limiter = errLimiter{}
	_, err := c.GetUser(context.Background(), "u")
	require.ErrorIs(t, err, errBudget)
}

var errBudget = errors.New("budget gone")

type errLimiter struct{}

func (errLimiter) Wait(context.Context, int) error         { return errBudget }
func (errLimiter) Penalize(context.Context, time.Duration) {}

// The replication window ends: a 404 about an object created long ago is the
// truth, not lag.
func TestFreshWindowExpires(t *testing.T) {
	var gets atomic.Int32
	_, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			writeJSON(w, 201, map[string]any{"id": "Old-1"})
			return
		}
		gets.Add(1)
		writeGraphError(w, 404, CodeResourceNotFound, "Resource 'old-1' does not exist or one of its queried reference-property objects are not present.")
	})
	now := testNow
	c.cfg.Clock = func() time.Time { return now }
	ctx := context.Background()
	_, err := c.CreateUser(ctx, UserFields{})
	require.NoError(t, err)
	now = now.Add(c.cfg.ReplicationWindow + time.Second)
	_, err = c.GetUser(ctx, "old-1")
	require.True(t, IsNotFound(err))
	assert.EqualValues(t, 1, gets.Load())
	assert.Empty(t, sl.Waits())
	now = testNow.Add(time.Second)
	_, err = c.GetUser(ctx, "OLD-1")
	require.True(t, IsNotFound(err))
	assert.EqualValues(t, 1+6, gets.Load(), "inside the window, any id case: retried to MaxAttempts")
}

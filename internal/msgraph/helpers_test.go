package msgraph

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeSleeper records waits instead of sleeping, so retry tests run in
// microseconds and assert the exact waits.
type fakeSleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (f *fakeSleeper) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.waits = append(f.waits, d)
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fakeSleeper) Waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

type fakeLimiter struct {
	mu        sync.Mutex
	waits     int
	penalties []time.Duration
}

func (l *fakeLimiter) Wait(context.Context, int) error {
	l.mu.Lock()
	l.waits++
	l.mu.Unlock()
	return nil
}

func (l *fakeLimiter) Penalize(_ context.Context, d time.Duration) {
	l.mu.Lock()
	l.penalties = append(l.penalties, d)
	l.mu.Unlock()
}

// fake is a minimal Graph stand-in for unit tests of the request path; the
// behaviour of real Graph is tested against internal/graphsim.
type fake struct {
	srv        *httptest.Server
	tokenCalls atomic.Int32
	graph      http.HandlerFunc
	token      http.HandlerFunc // nil = always grant
}

func newFake(t *testing.T, graph http.HandlerFunc) (*fake, *Client, *fakeSleeper) {
	t.Helper()
	f := &fake{graph: graph}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tenant-1/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		n := f.tokenCalls.Add(1)
		if f.token != nil {
			f.token(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token_type": "Bearer", "expires_in": 3599, "access_token": "tok-" + string(rune('0'+n)),
		})
	})
	mux.HandleFunc("/v1.0/", func(w http.ResponseWriter, r *http.Request) { f.graph(w, r) })
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	sl := &fakeSleeper{}
	c, err := New(Config{
		TenantID: "tenant-1", ClientID: "client-1", ClientSecret: "s3cr3t-value",
		LoginBaseURL: f.srv.URL, GraphBaseURL: f.srv.URL + "/v1.0",
		HTTPClient: f.srv.Client(), Sleep: sl.Sleep,
		Retry: RetryPolicy{Jitter: func() float64 { return 0 }},
	})
	require.NoError(t, err)
	return f, c, sl
}

func writeGraphError(w http.ResponseWriter, status int, code, msg string, details ...Detail) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", "req-123")
	w.WriteHeader(status)
	e := map[string]any{"code": code, "message": msg,
		"innerError": map[string]string{"request-id": "req-123", "date": "2026-01-01T00:00:00"}}
	if len(details) > 0 {
		e["details"] = details
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

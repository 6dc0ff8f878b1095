package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/metrics"
)

func newTest(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.GraphQL == nil {
		cfg.GraphQL = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "gql") })
	}
	s, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestRoutesAndRequestID(t *testing.T) {
	ts := newTest(t, Config{})
	resp, body := get(t, ts.URL+"/graphql")
	require.Equal(t, "gql", body)
	require.Len(t, resp.Header.Get("X-Request-Id"), 16)

	resp, _ = get(t, ts.URL+"/healthz")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, _ = get(t, ts.URL+"/")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "GraphiQL is off unless enabled")

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "abc")
	r2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r2.Body.Close()
	require.Equal(t, "abc", r2.Header.Get("X-Request-Id"))
}

func TestPlaygroundWhenEnabled(t *testing.T) {
	ts := newTest(t, Config{Playground: true})
	resp, body := get(t, ts.URL+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "/graphiql/init.js")
}

func TestReadinessNamesTheFailingDependency(t *testing.T) {
	ok := Check{Name: "postgres", Ping: func(context.Context) error { return nil }}
	bad := Check{Name: "redis", Ping: func(context.Context) error { return errors.New("connection refused") }}

	resp, body := get(t, newTest(t, Config{Checks: []Check{ok}}).URL+"/readyz")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, body = get(t, newTest(t, Config{Checks: []Check{ok, bad}}).URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, body, `"redis":"unavailable"`)
	require.NotContains(t, body, "connection refused", "causes stay in logs")
}

func TestPanicBecomesInternalError(t *testing.T) {
	ts := newTest(t, Config{GraphQL: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })})
	resp, body := get(t, ts.URL+"/graphql")
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Contains(t, body, "INTERNAL")
	require.NotContains(t, body, "boom")
}

func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	started := make(chan struct{})
	s, err := New(Config{GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	}), ShutdownTimeout: 5 * time.Second})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/graphql")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	cancel()
	require.Equal(t, "done", <-got, "the in-flight request finishes")
	require.NoError(t, <-served)
	_, err = http.Get("http://" + ln.Addr().String() + "/healthz")
	require.Error(t, err, "no longer listening")
	require.True(t, strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "connect"))
}

// A client's X-Request-ID is kept only when it is short and made of id
// characters: it goes into every log line of the request.
func TestRequestIDSanitised(t *testing.T) {
	ts := newTest(t, Config{})
	for id, kept := range map[string]bool{
		"0f8fad5b-d9cb-469f-a165-70867728950e": true,
		"trace.1:span/2":                       true,
		"has space":                            false,
		`quote"d`:                              false,
		strings.Repeat("a", 65):                false,
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
		req.Header.Set("X-Request-Id", id)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		if kept {
			require.Equal(t, id, resp.Header.Get("X-Request-Id"))
		} else {
			require.Regexp(t, `^[0-9a-f]{16}$`, resp.Header.Get("X-Request-Id"), id)
		}
	}
}

// gqlgen's SSE transport asserts w.(http.Flusher) on the writer it gets: the
// server's wrappers must keep offering it, with and without metrics.
func TestGraphQLHandlerCanFlush(t *testing.T) {
	for _, m := range []*metrics.Metrics{nil, metrics.New()} {
		ts := newTest(t, Config{Metrics: m, GraphQL: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if _, ok := w.(http.Flusher); !ok {
				http.Error(w, "no flusher", http.StatusInternalServerError)
			}
		})})
		resp, body := get(t, ts.URL+"/graphql")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
	}
}

package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serve runs a real server (http.Server with its limits) on 127.0.0.1:0.
func serve(t *testing.T, cfg Config) string {
	t.Helper()
	s, err := New(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// apiLike answers like /graphql: 401 at once without a key (the body is
// never read), otherwise it reads the whole body first.
var apiLike = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "missing API key")
		return
	}
	if _, err := io.ReadAll(r.Body); err != nil {
		return
	}
	_, _ = io.WriteString(w, `{"data":{}}`)
})

// A client that sends its body a byte at a time holds its connection no
// longer than ReadTimeout, with or without an API key. Before, the server
// answered 401 and then kept reading the slow body (up to 256 KiB) with no
// deadline, for as long as the client cared to trickle.
func TestSlowBodyIsCutOff(t *testing.T) {
	addr := serve(t, Config{GraphQL: apiLike, Limits: Limits{ReadTimeout: 300 * time.Millisecond}})
	for _, key := range []string{"", "Authorization: Bearer dsk_x\r\n"} {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", key)
		require.NoError(t, err)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_, _ = io.Copy(io.Discard, conn) // the answer, if any, then EOF when the server closes
		}()
		sent := 1
		for cut := false; !cut; {
			select {
			case <-closed:
				cut = true
			case <-time.After(20 * time.Millisecond):
				if _, err := conn.Write([]byte(" ")); err != nil {
					cut = true
				}
				sent++
				require.Less(t, sent, 1000, "connection still open after %d slow bytes (%q)", sent, key)
			}
		}
		_ = conn.Close()
		t.Logf("key=%v: connection closed after %d bytes of 100000", key != "", sent)
	}
}

// Headers above MaxHeaderBytes are refused with 431.
func TestHeaderSizeLimit(t *testing.T) {
	addr := serve(t, Config{GraphQL: apiLike, Limits: Limits{MaxHeaderBytes: 4 << 10}})
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)
}

// Every answer carries the security headers, errors and panics included.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	panicky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("panic") {
			panic("boom")
		}
		apiLike(w, r)
	})
	ts := newTest(t, Config{GraphQL: panicky, Playground: true})
	for _, path := range []string{"/graphql", "/graphql?panic=1", "/healthz", "/readyz", "/nowhere", "/"} {
		resp, _ := get(t, ts.URL+path)
		h := resp.Header
		require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), path)
		require.Equal(t, "no-referrer", h.Get("Referrer-Policy"), path)
		require.Equal(t, "no-store", h.Get("Cache-Control"), path)
		require.Equal(t, "DENY", h.Get("X-Frame-Options"), path)
		csp := h.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'", path)
		require.Contains(t, csp, "frame-ancestors 'none'", path)
		if path != "/" {
			require.Equal(t, apiCSP, csp, path)
		}
	}
}

// An SSE request body above the limit is refused before the stream starts.
func TestStreamBodyLimit(t *testing.T) {
	addr := serve(t, Config{GraphQL: apiLike, Limits: Limits{MaxStreamBodyBytes: 1024}})
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	body := strings.Repeat("x", 4096)
	_, err = fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
}

// ReadTimeout bounds reading the request, not the work it starts: a
// request whose handler runs longer than ReadTimeout (a big bind, an
// authorization waiting on Microsoft) keeps its context. net/http's
// background read, which runs once the body is read, would otherwise hit the
// read deadline and cancel the request.
func TestReadTimeoutDoesNotCancelLongHandlers(t *testing.T) {
	limits := Limits{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 5 * time.Second}
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			w.WriteHeader(http.StatusTeapot) // canceled
		case <-time.After(3 * limits.ReadTimeout):
			_, _ = io.WriteString(w, "done")
		}
	})
	addr := serve(t, Config{GraphQL: slow, Limits: limits})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"query":"{ __typename }"}`)
		}
		req, _ := http.NewRequest(method, "http://"+addr+"/graphql", body)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err, method)
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, method)
		require.Equal(t, "done", string(b), method)
	}
}

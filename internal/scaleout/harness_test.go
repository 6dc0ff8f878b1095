package scaleout_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// lockedBuffer collects a child process's output for the failure report.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cluster is the processes of one deployment plus what the test needs to
// reach them.
type cluster struct {
	t    *testing.T
	bin  string
	env  []string
	apis []string // base URLs of the API processes
	key  string   // an admin API key
	logs map[string]*lockedBuffer
}

// buildDirsync compiles ./cmd/dirsync once for the test: the processes run
// the shipped binary, not test wiring.
func buildDirsync(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(t.TempDir(), "dirsync")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/dirsync")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func newCluster(t *testing.T, bin, dbURL, redisURL string, extraEnv ...string) *cluster {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	c := &cluster{t: t, bin: bin, logs: map[string]*lockedBuffer{}, env: append([]string{
		"DIRSYNC_DATABASE_URL=" + dbURL,
		"DIRSYNC_REDIS_URL=" + redisURL,
		"DIRSYNC_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		"DIRSYNC_ALLOW_CUSTOM_GRAPH_URLS=true",
		"DIRSYNC_ALLOW_INSECURE_GRAPH_URLS=true",
		"DIRSYNC_LOG_LEVEL=info",
		"DIRSYNC_SHUTDOWN_TIMEOUT=10s",
	}, extraEnv...)}
	t.Cleanup(func() {
		if t.Failed() {
			for name, l := range c.logs {
				s := l.String()
				if len(s) > 6000 {
					s = "…" + s[len(s)-6000:]
				}
				t.Logf("--- %s output (tail) ---\n%s", name, s)
			}
		}
	})
	return c
}

// run runs a short CLI command of the binary and returns its stdout.
func (c *cluster) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(c.t, err, "dirsync %v: %s", args, stderr.String())
	return string(out)
}

// start starts a long-running process and stops it (SIGTERM, then kill)
// when the test ends.
func (c *cluster) start(name string, env []string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append(os.Environ(), c.env...), env...)
	l := &lockedBuffer{}
	c.logs[name] = l
	cmd.Stdout, cmd.Stderr = l, l
	require.NoError(c.t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	c.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
}

// startAPI starts `dirsync serve` and waits until it is ready.
func (c *cluster) startAPI(name string) {
	c.t.Helper()
	addr := freeAddr(c.t)
	c.start(name, []string{"DIRSYNC_LISTEN=" + addr, "DIRSYNC_METRICS_ADDR="}, "serve")
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready at %s within 60 s: %v", name, base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.apis = append(c.apis, base)
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// do posts a GraphQL operation to one API and decodes data into out; GraphQL
// errors fail the test.
func (c *cluster) do(api int, query string, vars map[string]any, out any) {
	c.t.Helper()
	require.NoError(c.t, c.try(api, query, vars, out))
}

func (c *cluster) try(api int, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, c.apis[api]+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql errors: %+v", r.Errors)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

// jobWatcher is one graphql-transport-ws subscription to `jobs` on one API:
// every state it saw per job, in order.
type jobWatcher struct {
	mu     sync.Mutex
	states map[string][]string
	err    error
	conn   *websocket.Conn
}

func (c *cluster) watchJobs(api int) *jobWatcher {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(c.apis[api], "http") + "/graphql"
	conn, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	require.NoError(c.t, err)
	conn.SetReadLimit(1 << 20)
	w := &jobWatcher{states: map[string][]string{}, conn: conn}
	send := func(v any) {
		b, _ := json.Marshal(v)
		require.NoError(c.t, conn.Write(ctx, websocket.MessageText, b))
	}
	send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + c.key}})
	_, ack, err := conn.Read(ctx)
	require.NoError(c.t, err)
	require.Contains(c.t, string(ack), "connection_ack")
	send(map[string]any{"id": "jobs", "type": "subscribe", "payload": map[string]any{
		"query": `subscription { jobs { id status } }`}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			var m struct {
				Type    string `json:"type"`
				Payload struct {
					Data struct {
						Jobs struct{ ID, Status string }
					}
				}
			}
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			switch m.Type {
			case "ping":
				_ = conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"pong"}`))
			case "next":
				w.mu.Lock()
				j := m.Payload.Data.Jobs
				if s := w.states[j.ID]; len(s) == 0 || s[len(s)-1] != j.Status {
					w.states[j.ID] = append(s, j.Status)
				}
				w.mu.Unlock()
			}
		}
	}()
	c.t.Cleanup(func() { _ = conn.CloseNow(); <-done })
	return w
}

// terminal reports whether the watcher saw every job in ids end.
func (w *jobWatcher) terminal(ids []string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		s := w.states[id]
		if len(s) == 0 || !isTerminal(s[len(s)-1]) {
			return false
		}
	}
	return true
}

func (w *jobWatcher) seen(id string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.states[id]...)
}

func isTerminal(status string) bool {
	return status == "SUCCEEDED" || status == "FAILED" || status == "PARTIAL"
}

// eventually polls cond until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

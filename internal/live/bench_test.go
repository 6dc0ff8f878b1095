package live_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"

	httppprof "net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/gctune"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/stmtcache"
)

// BenchmarkEventsFanout: 1,000 websocket subscribers of one organisation's
// events on one API process while 2,000 events are published at a worker's
// pace. The API runs in a child process (this test binary re-executed), so
// its memory is measured without the clients'. Reports publish→receive
// latency over all deliveries and the API process's memory per idle
// connection (one events subscription each). See docs/subscriptions.md.
//
//	go test -run '^$' -bench EventsFanout -benchtime 1x ./internal/live/
//
// DIRSYNC_BENCH_SUBS, DIRSYNC_BENCH_EVENTS and DIRSYNC_BENCH_RATE (events/s)
// change the load.
func BenchmarkEventsFanout(b *testing.B) {
	// The garbage collector as the dirsync binary sets it (both sides of the
	// comparison run in this process and share it).
	gctune.Apply(os.Getenv)
	subs, events, rate := envInt("DIRSYNC_BENCH_SUBS", 1000), envInt("DIRSYNC_BENCH_EVENTS", 2000), envInt("DIRSYNC_BENCH_RATE", 50)
	e := newEnv(b)
	o := e.org("bench")
	for range b.N {
		child := startChild(b, e, o)
		runFanout(b, e, child, o, subs, events, rate)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type childProc struct {
	addr string
}

// memstats asks the child for its memory after a GC.
func (c childProc) memstats(b testing.TB) (heap, stack uint64, goroutines int) {
	res, err := http.Get("http://" + c.addr + "/memstats")
	require.NoError(b, err)
	defer res.Body.Close()
	var m struct {
		Heap, Stack uint64
		Goroutines  int
	}
	require.NoError(b, json.NewDecoder(res.Body).Decode(&m))
	return m.Heap, m.Stack, m.Goroutines
}

func startChild(b *testing.B, e *env, o org) childProc {
	b.Helper()
	dbURL := e.dbURL // the child opens the same database
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanoutChildProcess$", "-test.v")
	cmd.Env = append(os.Environ(),
		"DIRSYNC_FANOUT_CHILD=1",
		"DIRSYNC_FANOUT_DB="+dbURL,
		"DIRSYNC_FANOUT_REDIS="+e.redis.Addr,
		"DIRSYNC_FANOUT_REDIS_DB="+strconv.Itoa(e.redis.DB),
		"DIRSYNC_FANOUT_PREFIX="+e.prefix,
	)
	stdin, err := cmd.StdinPipe()
	require.NoError(b, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	cmd.Stderr = os.Stderr
	require.NoError(b, cmd.Start())
	b.Cleanup(func() {
		_ = stdin.Close() // the child exits when its stdin closes
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return childProc{addr: addr}
		}
	}
	b.Fatalf("child did not start: %v", sc.Err())
	return childProc{}
}

// TestFanoutChildProcess is the API process of BenchmarkEventsFanout; it
// does nothing in a normal test run.
func TestFanoutChildProcess(t *testing.T) {
	if os.Getenv("DIRSYNC_FANOUT_CHILD") != "1" {
		t.Skip("only run by BenchmarkEventsFanout")
	}
	gctune.Apply(os.Getenv) // the API process, as the dirsync binary runs it
	db, err := stmtcache.Open(os.Getenv("DIRSYNC_FANOUT_DB"), stmtcache.DefaultSize)
	require.NoError(t, err)
	defer db.Close()
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	rdbN, _ := strconv.Atoi(os.Getenv("DIRSYNC_FANOUT_REDIS_DB"))
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("DIRSYNC_FANOUT_REDIS"), DB: rdbN, ContextTimeoutEnabled: true})
	defer rdb.Close()
	hub := pubsub.NewHub(pubsub.HubConfig{Client: rdb, Prefix: os.Getenv("DIRSYNC_FANOUT_PREFIX"), MaxPerKey: -1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(ctx) }()
	waitFor(t, 5*time.Second, hub.Connected)

	mux := http.NewServeMux()
	mux.Handle("/graphql", api.NewHandler(api.Config{MaxConnectionsPerKey: -1, Deps: graph.Deps{Hub: hub}},
		client, slog.New(slog.NewTextHandler(io.Discard, nil))))
	mux.HandleFunc("/memstats", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		_ = json.NewEncoder(w).Encode(map[string]any{"Heap": m.HeapAlloc, "Stack": m.StackInuse, "Goroutines": runtime.NumGoroutine()})
	})
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/heap", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		_ = pprof.WriteHeapProfile(w)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("LISTEN %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	_ = srv.Close()
	cancel()
	<-hubDone
}

func runFanout(b *testing.B, e *env, c childProc, o org, subs, events, rate int) {
	b.Helper()
	url := "ws://" + c.addr + "/graphql"
	const q = `subscription { events { id type userID detail } }`
	ctx := context.Background()

	// Warm up one connection so lazily built state is not counted per connection.
	warm, err := dial(b, url, dialOpts{init: bearer(o.admin)})
	require.NoError(b, err)
	warm.ack()
	_ = warm.conn.Close(websocket.StatusNormalClosure, "")
	time.Sleep(200 * time.Millisecond)
	heap0, stack0, g0 := c.memstats(b)

	type client struct {
		conn *websocket.Conn
		lat  []int32 // microseconds
	}
	clients := make([]*client, subs)
	for i := range clients {
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		require.NoError(b, err)
		conn.SetReadLimit(1 << 20)
		b.Cleanup(func() { _ = conn.CloseNow() })
		for _, m := range []wsMsg{
			{Type: "connection_init", Payload: mustJSON(bearer(o.admin))},
		} {
			raw, _ := json.Marshal(m)
			require.NoError(b, conn.Write(ctx, websocket.MessageText, raw))
		}
		_, ack, err := conn.Read(ctx)
		require.NoError(b, err)
		require.Contains(b, string(ack), "connection_ack")
		raw, _ := json.Marshal(wsMsg{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": q})})
		require.NoError(b, conn.Write(ctx, websocket.MessageText, raw))
		clients[i] = &client{conn: conn, lat: make([]int32, 0, events)}
	}
	// Idle: every subscription registered, nothing flowing.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, g := c.memstats(b)
		if g >= g0+subs*2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	heap1, stack1, g1 := c.memstats(b)
	if path := os.Getenv("DIRSYNC_BENCH_HEAP_PROFILE"); path != "" {
		res, err := http.Get("http://" + c.addr + "/heap")
		require.NoError(b, err)
		f, err := os.Create(path)
		require.NoError(b, err)
		_, _ = io.Copy(f, res.Body)
		_ = res.Body.Close()
		_ = f.Close()
	}

	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			for len(cl.lat) < events {
				_, data, err := cl.conn.Read(ctx)
				if err != nil {
					return
				}
				now := time.Now()
				// Cheap parsing: the clients share the API's two cores, and a
				// full JSON decode per delivery would measure the harness.
				switch {
				case bytes.Contains(data, []byte(`"type":"ping"`)):
					_ = cl.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
				case bytes.Contains(data, []byte(`"type":"next"`)):
					_, rest, ok := bytes.Cut(data, []byte(`"detail":"`))
					digits, _, _ := bytes.Cut(rest, []byte(`"`))
					sent, err := strconv.ParseInt(string(digits), 10, 64)
					if !ok || err != nil {
						return // an error result (SLOW_CONSUMER): this subscriber ends short
					}
					cl.lat = append(cl.lat, int32(now.Sub(time.Unix(0, sent)).Microseconds()))
				default:
					return
				}
			}
		})
	}

	if path := os.Getenv("DIRSYNC_BENCH_CPU_PROFILE"); path != "" {
		go func() {
			res, err := http.Get("http://" + c.addr + "/debug/pprof/profile?seconds=5")
			if err != nil {
				return
			}
			defer res.Body.Close()
			f, err := os.Create(path)
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, res.Body)
		}()
	}
	b.ResetTimer()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	for range events {
		<-tick.C
		e.publishEvent(b, o.id, strconv.FormatInt(time.Now().UnixNano(), 10))
	}
	tick.Stop()
	published := time.Since(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		for _, cl := range clients {
			_ = cl.conn.CloseNow()
		}
		<-done
	}
	b.StopTimer()

	var all []int32
	short := 0
	for _, cl := range clients {
		all = append(all, cl.lat...)
		if len(cl.lat) < events {
			short++
		}
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(float64(len(all))*p))]) / 1000
	}
	perConnHeap := float64(int64(heap1)-int64(heap0)) / float64(subs) / 1024
	perConnStack := float64(int64(stack1)-int64(stack0)) / float64(subs) / 1024
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(perConnHeap, "heap-KiB/conn")
	b.ReportMetric(perConnStack, "stack-KiB/conn")
	b.Logf("%d subscribers × %d events at %d/s (published in %s): %d deliveries, %d subscribers short; "+
		"p50 %.2f ms p99 %.2f ms max %.2f ms; API process per idle connection: heap %.1f KiB + stacks %.1f KiB, %.1f goroutines",
		subs, events, rate, published.Round(time.Millisecond), len(all), short, pct(0.5), pct(0.99), pct(1),
		perConnHeap, perConnStack, float64(g1-g0)/float64(subs))
	require.Zero(b, short, "some subscribers missed events (cut off as slow consumers?)")
}

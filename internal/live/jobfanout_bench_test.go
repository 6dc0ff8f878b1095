package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gctune"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// BenchmarkJobFanout is issue 12's fan-out target: DIRSYNC_BENCH_SUBS
// (1,000) graphql-transport-ws subscribers of jobUpdated, spread over two
// API replicas (two full server.Handler stacks, each with its own Hub,
// sharing PostgreSQL and Redis), watch one job of DIRSYNC_BENCH_JOB_USERS
// (1,000) items that a simulated worker completes one after the other at
// DIRSYNC_BENCH_RATE items/s (100): commit, then publish the job's new
// state, as the real worker does. Every subscriber must receive every state
// (done = 1…N) exactly once and in order, and none may be cut off.
//
// The baseline, in the same run, is raw pub/sub: one plain Redis
// subscriber of the organisation's channel receiving the same messages.
// Latency runs from just before Publish to the client's (or the raw
// subscriber's) receive.
//
// Metrics: p50/p99/max delivery (ms) through dirsync and raw, p99 over raw
// p99, subscribers short of any state (cut or dropped), order violations,
// and process memory per subscriber (heap after GC plus goroutine stacks,
// with the 1,000 subscribed connections open, minus the same before). The
// clients run in this process too, so the memory figure includes their
// side of each connection: an upper bound (BenchmarkEventsFanout measures
// the API process alone).
//
//	go test -run '^$' -bench JobFanout -benchtime 1x ./internal/live/
func BenchmarkJobFanout(b *testing.B) {
	// The garbage collector as the dirsync binary sets it (both sides of the
	// comparison run in this process and share it).
	gctune.Apply(os.Getenv)
	subs, users, rate := envInt("DIRSYNC_BENCH_SUBS", 1000), envInt("DIRSYNC_BENCH_JOB_USERS", 1000), envInt("DIRSYNC_BENCH_RATE", 100)
	e := newEnv(b)
	o := e.org("bench")
	cfg := api.Config{MaxConnectionsPerKey: -1}
	replicas := []*process{e.api(cfg, pubsub.HubConfig{MaxPerKey: -1}), e.api(cfg, pubsub.HubConfig{MaxPerKey: -1})}
	w := e.startJob(o.id, users)
	ctx := context.Background()

	// sent[d] is when the state with done = d was published (ns).
	sent := make([]atomic.Int64, users+1)

	raw := e.rdb().Subscribe(ctx, pubsub.Channel(e.prefix, string(o.id)))
	b.Cleanup(func() { _ = raw.Close() })
	_, err := raw.Receive(ctx) // the subscription confirmation
	require.NoError(b, err)

	runtime.GC()
	heap0, stack0 := memNow()

	type client struct {
		conn  *websocket.Conn
		lat   []int32 // µs per state, in arrival order
		last  int     // last done seen
		order int     // states that arrived out of order or twice
		err   string
	}
	q := fmt.Sprintf(`subscription { jobUpdated(id: %q) { id status done total failed } }`, w.job.ID)
	clients := make([]*client, subs)
	for i := range clients {
		url := replicas[i%len(replicas)].ws
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		require.NoError(b, err)
		conn.SetReadLimit(1 << 20)
		b.Cleanup(func() { _ = conn.CloseNow() })
		for _, m := range []wsMsg{
			{Type: "connection_init", Payload: mustJSON(bearer(o.readOnly))},
			{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": q})},
		} {
			raw, _ := json.Marshal(m)
			require.NoError(b, conn.Write(ctx, websocket.MessageText, raw))
		}
		for _, want := range []string{"connection_ack", `"done":0`} { // then the current state
			_, data, err := conn.Read(ctx)
			require.NoError(b, err)
			require.Contains(b, string(data), want)
		}
		clients[i] = &client{conn: conn, lat: make([]int32, 0, users)}
	}
	runtime.GC()
	heap1, stack1 := memNow()
	for _, r := range replicas {
		require.Equal(b, subs/len(replicas), r.hub.Stats().Subscriptions, "subscriptions per replica")
	}

	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			for cl.last < users {
				_, data, err := cl.conn.Read(ctx)
				if err != nil {
					cl.err = err.Error()
					return
				}
				now := time.Now().UnixNano()
				switch {
				case bytes.Contains(data, []byte(`"type":"ping"`)):
					_ = cl.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
				case bytes.Contains(data, []byte(`"type":"next"`)):
					// Cheap parsing: the clients share the API's cores.
					_, rest, ok := bytes.Cut(data, []byte(`"done":`))
					end := bytes.IndexByte(rest, ',')
					if !ok || end < 0 {
						cl.err = string(data) // an error result (SLOW_CONSUMER)
						return
					}
					d, err := strconv.Atoi(string(rest[:end]))
					if err != nil || d > users {
						cl.err = string(data)
						return
					}
					if d != cl.last+1 {
						cl.order++
					}
					if d > cl.last {
						cl.last = d
						cl.lat = append(cl.lat, int32((now-sent[d].Load())/1000))
					}
				default:
					cl.err = string(data) // complete before the last state, or an error
					return
				}
			}
		})
	}
	var rawLat []int32
	rawDone := make(chan struct{})
	go func() {
		defer close(rawDone)
		for len(rawLat) < users {
			m, err := raw.ReceiveMessage(ctx)
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			var msg pubsub.Message
			if json.Unmarshal([]byte(m.Payload), &msg) != nil || msg.Kind != pubsub.KindJob {
				continue
			}
			rawLat = append(rawLat, int32((now-sent[msg.Seq].Load())/1000))
		}
	}()

	// The worker: one item after the other at the given rate.
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	sys := auth.SystemContext(ctx)
	for i := range users {
		<-tick.C
		tx, err := e.client.Tx(sys)
		require.NoError(b, err)
		_, err = jobs.CompleteItem(sys, tx.Client(), o.id, w.job.ID, w.items[i].ID, jobs.ItemOutcome{Result: jobs.ResultCreated}, time.Now())
		require.NoError(b, err)
		require.NoError(b, tx.Commit())
		j, err := e.client.Job.Get(sys, w.job.ID)
		require.NoError(b, err)
		require.Equal(b, i+1, j.Done)
		m, err := jobs.JobMessage(j)
		require.NoError(b, err)
		m.Seq = int64(j.Done) // lets the raw subscriber find the send time
		sent[j.Done].Store(time.Now().UnixNano())
		require.NoError(b, e.pub.Publish(sys, m))
	}
	tick.Stop()
	published := time.Since(start)
	done := make(chan struct{})
	go func() { wg.Wait(); <-rawDone; close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		for _, cl := range clients {
			_ = cl.conn.CloseNow()
		}
		_ = raw.Close()
		<-done
	}
	b.StopTimer()

	var all []int32
	short, disorder := 0, 0
	for _, cl := range clients {
		all = append(all, cl.lat...)
		if cl.last < users {
			short++
			if short <= 3 {
				b.Logf("subscriber short at done=%d: %.200s", cl.last, cl.err)
			}
		}
		disorder += cl.order
	}
	pct := func(xs []int32, p float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		slices.Sort(xs)
		return float64(xs[min(len(xs)-1, int(float64(len(xs))*p))]) / 1000
	}
	heapPer := float64(int64(heap1)-int64(heap0)) / float64(subs) / 1024
	stackPer := float64(int64(stack1)-int64(stack0)) / float64(subs) / 1024
	b.ReportMetric(pct(all, 0.50), "p50_ms")
	b.ReportMetric(pct(all, 0.99), "p99_ms")
	b.ReportMetric(pct(all, 1), "max_ms")
	b.ReportMetric(pct(rawLat, 0.50), "raw_p50_ms")
	b.ReportMetric(pct(rawLat, 0.99), "raw_p99_ms")
	if r := pct(rawLat, 0.99); r > 0 {
		b.ReportMetric(pct(all, 0.99)/r, "x_raw_p99")
	}
	b.ReportMetric(float64(short), "short_subs")
	b.ReportMetric(float64(disorder), "out_of_order")
	b.ReportMetric(heapPer+stackPer, "KiB/sub")
	b.Logf("%d subscribers on %d replicas × %d states at %d/s (published in %s): %d deliveries, %d short, %d out of order; "+
		"p50 %.2f p99 %.2f max %.2f ms (raw pub/sub p50 %.2f p99 %.2f ms); memory per subscriber, clients included: heap %.1f + stacks %.1f KiB",
		subs, len(replicas), users, rate, published.Round(time.Millisecond), len(all), short, disorder,
		pct(all, 0.5), pct(all, 0.99), pct(all, 1), pct(rawLat, 0.5), pct(rawLat, 0.99), heapPer, stackPer)
	require.Zero(b, short, "some subscribers missed states")
	require.Zero(b, disorder, "some subscribers got states out of order")
}

func memNow() (heap, stack uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse
}

package pubsub_test

import (
	"encoding/json"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// BenchmarkFanout is the in-process share of issue 5's latency target
// (p99 ≤ 100 ms publish → client): 1,000 subscribers of one organisation on
// one Hub, each message published to Redis and delivered to all of them.
// Latency runs from just before Publish to the subscriber's receive, so it
// includes the Redis round trip and the JSON decode. "paced" publishes one
// message every 5 ms (far above a bind's event rate under Graph's write
// quota); "burst" publishes back to back, so its latency is mostly queueing
// and deliveries/s is the figure that matters: the throughput headroom.
//
//	go test -run '^$' -bench Fanout -benchtime 400x ./internal/pubsub/
func BenchmarkFanout(b *testing.B) {
	for _, bc := range []struct {
		name string
		gap  time.Duration
	}{{"paced-5ms", 5 * time.Millisecond}, {"burst", 0}} {
		b.Run(bc.name, func(b *testing.B) { benchFanout(b, 1000, bc.gap) })
	}
}

func benchFanout(b *testing.B, subscribers int, gap time.Duration) {
	e := newEnv(b)
	h := e.hub(pubsub.HubConfig{})
	pub := e.publisher()
	data := json.RawMessage(`{"id":"ev_01HZX3","type":"USER_CREATE_PROVISION","user":{"id":"u_42","username":"ada.lovelace"},"integration":{"id":"in_7","name":"Contoso"},"job":{"id":"job_9","status":"RUNNING","done":1200,"total":2000},"detail":"created ada.lovelace@contoso.com"}`)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	subs := make([]*pubsub.Subscription, subscribers)
	for i := range subs {
		s, err := h.Subscribe(b.Context(), "org", nil)
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSub := float64(after.HeapAlloc-before.HeapAlloc) / float64(subscribers)

	lat := make([][]time.Duration, subscribers)
	var wg sync.WaitGroup
	for i, s := range subs {
		lat[i] = make([]time.Duration, 0, b.N)
		wg.Go(func() {
			for m := range s.C() {
				lat[i] = append(lat[i], time.Since(m.At))
				if len(lat[i]) == b.N {
					return
				}
			}
		})
	}

	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		m := pubsub.Message{Kind: pubsub.KindEvent, OrgID: "org", ID: "ev", Seq: int64(i), At: time.Now(), Data: data}
		if err := pub.Publish(b.Context(), m); err != nil {
			b.Fatal(err)
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	all := make([]time.Duration, 0, subscribers*b.N)
	for _, l := range lat {
		all = append(all, l...)
	}
	for _, s := range subs {
		s.Close()
	}
	if lost := subscribers*b.N - len(all); lost > 0 {
		b.Fatalf("%d of %d deliveries lost (%d slow consumers)", lost, subscribers*b.N, h.Stats().SlowConsumers)
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(perSub, "heap-B/sub")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "deliveries/s")
}

package worker_test

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/worker"
)

// The provisioning benchmarks (docs/worker.md). Not part of `make test`; run:
//
//	go test -run '^$' -bench Provision -benchtime 1x -timeout 10m ./internal/worker/
//
// Each iteration builds a fresh stack; -benchtime 1x is one full run.

// BenchmarkProvisionBind2000: bind 2,000 users with the emulator's throttling
// model on at 10× speed (write quota 3,000 per 15 s = 200 writes/s), our
// throttle budget scaled the same way, and 30 ± 20 ms of Graph latency.
// Reports achieved writes/s as a share of the quota, the share of Graph
// requests answered 429, and the total time from the bind to convergence.
//
// At TimeScale 10 the pipeline needs most of two shared cores (the emulator's
// $filter lookups are linear scans), so the same run is repeated at TimeScale
// 5 (100 writes/s) where there is CPU to spare, next to a baseline with our
// budget opened wide: then only Graph's 429s, and the tenant-wide pause their
// Retry-After sets, hold the workers back.
func BenchmarkProvisionBind2000(b *testing.B) {
	wide := redis_rate.Limit{Rate: 100000, Period: time.Second, Burst: 1000}
	b.Run("scale10-budget", func(b *testing.B) { benchBind(b, 10, redis_rate.Limit{}) })
	b.Run("scale5-budget", func(b *testing.B) { benchBind(b, 5, redis_rate.Limit{}) })
	b.Run("scale5-no-budget", func(b *testing.B) { benchBind(b, 5, wide) })
}

func benchBind(b *testing.B, scale float64, writes redis_rate.Limit) {
	const n = 2000
	for range b.N {
		s := newStack(b, stackOpts{writes: writes, sim: graphsim.Config{Seed: 1, TimeScale: scale, RequestLogSize: 4 * n,
			Faults: graphsim.Faults{LatencyBase: 10 * time.Millisecond, LatencyJitter: 40 * time.Millisecond}}})
		s.db.SetMaxOpenConns(80)
		ids := s.users(0, n)
		// Steady state, not a fresh bucket: Graph's write bucket starts full
		// (3,000), which alone would absorb 2,000 writes. Empty it first.
		fillers := drainBucket(b, http.DefaultClient, s.simURL, token(b, http.DefaultClient, s.simURL, s.creds))
		s.sim.ClearRequests()
		// Graph at 10× speed needs 10× the workers to fill its quota: each write
		// still takes 30 ms of latency plus a lookup.
		s.startWorker(func(c *worker.Config) { c.Concurrency = 60 })
		s.bind(ids, 500)
		total := s.waitConverged(n, 5*time.Minute)
		b.Logf("emptied Graph's write bucket with %d writes first", fillers)

		var writes []time.Time
		var requests, throttled int
		for _, r := range s.sim.Requests() {
			requests++
			if r.Status == http.StatusTooManyRequests {
				throttled++
			}
			if (r.Method == http.MethodPost || r.Method == http.MethodPatch) && r.Status < 300 {
				writes = append(writes, r.Time)
			}
		}
		slices.SortFunc(writes, func(a, b time.Time) int { return a.Compare(b) })
		require.GreaterOrEqual(b, len(writes), n)
		span := writes[len(writes)-1].Sub(writes[0]).Seconds()
		quota := 3000.0 / (150.0 / scale)
		rate := float64(len(writes)-1) / span
		b.ReportMetric(rate, "writes/s")
		b.ReportMetric(rate/quota, "quota-share")
		b.ReportMetric(float64(throttled)/float64(requests), "429-share")
		b.ReportMetric(total.Seconds(), "s-total")
		b.Logf("TimeScale %g, %d users: %d writes in %.1fs = %.1f writes/s = %.3f of the %.0f writes/s quota; %d/%d requests 429 (%.2f%%); bind → converged %s",
			scale, n, len(writes), span, rate, rate/quota, quota, throttled, requests, 100*float64(throttled)/float64(requests), total.Round(time.Millisecond))
	}
}

// BenchmarkProvisionChangeLatency: with throttling off and 30 ± 20 ms of Graph
// latency, change one attribute of a provisioned user (the updateUser mutation
// path) and time until the emulator has answered the PATCH. Changes arrive at
// 20/s; reports p50 and p99.
func BenchmarkProvisionChangeLatency(b *testing.B) {
	const n = 200
	for range b.N {
		var mu sync.Mutex
		patched := map[string]time.Time{} // remote id → first PATCH answered
		observe := func(r *http.Request, status int, at time.Time) {
			if r.Method != http.MethodPatch || status >= 300 {
				return
			}
			id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			mu.Lock()
			if _, ok := patched[id]; !ok {
				patched[id] = at
			}
			mu.Unlock()
		}
		s := newStack(b, stackOpts{observe: observe, sim: graphsim.Config{DisableThrottling: true,
			Faults: graphsim.Faults{LatencyBase: 10 * time.Millisecond, LatencyJitter: 40 * time.Millisecond}}})
		ids := s.users(0, n)
		s.startWorker(func(c *worker.Config) {
			if v, err := time.ParseDuration(os.Getenv("DIRSYNC_BENCH_TASK_CHECK")); err == nil {
				c.TaskCheckInterval = v
			}
		})
		s.bind(ids, n)
		s.waitConverged(n, time.Minute)
		mu.Lock()
		clear(patched)
		mu.Unlock()
		links, err := s.client.RemoteLink.Query().All(s.ctx)
		require.NoError(b, err)
		remote := map[string]string{}
		for _, l := range links {
			remote[string(*l.UserID)] = l.RemoteID
		}

		dir := directory.New(s.client)
		changed := make(map[string]time.Time, n)
		tick := time.NewTicker(50 * time.Millisecond)
		for i, id := range ids {
			<-tick.C
			title := "Title " + string(rune('A'+i%26))
			at := time.Now()
			_, _, err := dir.UpdateUser(s.ctx, id, ent.UpdateUserInput{JobTitle: &title})
			require.NoError(b, err)
			changed[remote[string(id)]] = at
		}
		tick.Stop()
		require.Eventually(b, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(patched) == n
		}, 30*time.Second, 20*time.Millisecond)
		var lat []time.Duration
		mu.Lock()
		for rid, at := range changed {
			lat = append(lat, patched[rid].Sub(at))
		}
		mu.Unlock()
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		b.ReportMetric(float64(p50.Milliseconds()), "ms-p50")
		b.ReportMetric(float64(p99.Milliseconds()), "ms-p99")
		b.Logf("%d changes: change → PATCH answered p50 %s, p99 %s, max %s", n, p50.Round(time.Millisecond),
			p99.Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
}

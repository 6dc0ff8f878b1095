package importer_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/graphsim"
)

// BenchmarkImport100k imports 100,000 emulated remote users with all: true
// through the real stack (API → outbox → asynq → a worker subprocess →
// emulator → PostgreSQL) and reports:
//
//   - x_page_latency: wall time from the mutation to the job's end, divided by
//     the sum of the emulator's time answering the GET /users pages (its
//     injected latency plus its own work), measured around the emulator's
//     handler in the same run. Paging is sequential in Graph (each page's link
//     comes with the previous page), so 1.0 is the floor; target ≤ 1.5.
//   - worker_peak_RSS_MB: VmHWM of the worker process.
//   - graph_reads: Graph requests the import made.
//
// Run it alone (it takes a couple of minutes on a laptop):
//
//	go test -run '^$' -bench BenchmarkImport100k -benchtime 1x ./internal/importer/
//
// DIRSYNC_BENCH_USERS and DIRSYNC_BENCH_LATENCY (a Go duration, default
// 300ms per page: what Graph takes for a page of 999 users with $select)
// change the size and the emulated latency.
func BenchmarkImport100k(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("DIRSYNC_BENCH_USERS")); err == nil && v > 0 {
		n = v
	}
	latency := 300 * time.Millisecond
	if v, err := time.ParseDuration(os.Getenv("DIRSYNC_BENCH_LATENCY")); err == nil {
		latency = v
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var mu sync.Mutex
		var pageTime time.Duration
		reads := 0
		wrap := func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1.0/users") {
					h.ServeHTTP(w, r)
					return
				}
				start := time.Now()
				h.ServeHTTP(w, r)
				mu.Lock()
				pageTime += time.Since(start)
				reads++
				mu.Unlock()
			})
		}
		e := newEnv(b, envOpts{pageSize: 999, importWait: -1, wrap: wrap, sim: graphsim.Config{DisableThrottling: true,
			Seed: 11, Faults: graphsim.Faults{LatencyBase: latency}}})
		require.NoError(b, e.sim.SeedUsers(e.creds.TenantID, n))
		child, exited := e.startChild()
		time.Sleep(time.Second) // let the worker start before the clock runs
		b.StartTimer()
		start := time.Now()
		var out importOut
		e.must(e.org.admin, importMutation, map[string]any{"in": e.in.ID, "all": true}, &out)
		j := e.waitJob(out.ImportUsers.Job.ID, 30*time.Minute)
		wall := time.Since(start)
		b.StopTimer()
		rss := peakRSS(b, child.Process.Pid)
		_ = child.Process.Signal(syscall.SIGTERM)
		<-exited
		require.Equal(b, n, j.Done)
		users, err := e.client.User.Query().Count(e.ctx)
		require.NoError(b, err)
		require.Equal(b, n, users)
		mu.Lock()
		ratio := float64(wall) / float64(pageTime)
		b.ReportMetric(ratio, "x_page_latency")
		b.ReportMetric(float64(rss)/1024, "worker_peak_RSS_MB")
		b.ReportMetric(float64(reads), "graph_reads")
		b.ReportMetric(float64(n)/wall.Seconds(), "users/s")
		b.Logf("%d users in %s; emulator page time %s over %d reads; worker peak RSS %d MiB",
			n, wall.Round(time.Millisecond), pageTime.Round(time.Millisecond), reads, rss/1024)
		mu.Unlock()
	}
}

// peakRSS reads a process's VmHWM in KiB.
func peakRSS(b *testing.B, pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			require.NoError(b, err)
			return kb
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

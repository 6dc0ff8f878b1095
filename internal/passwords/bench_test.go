package passwords_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/password"
)

// candidates are the argon2id parameter sets compared; DefaultParams is the
// one chosen (docs/portal.md).
var candidates = []password.Params{
	{MemoryKiB: 16 * 1024, Iterations: 2, Parallelism: 1}, // DefaultParams
	{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}, // OWASP floor
	{MemoryKiB: 46 * 1024, Iterations: 1, Parallelism: 1}, // OWASP alternative
	{MemoryKiB: 64 * 1024, Iterations: 3, Parallelism: 1}, // RFC 9106 second recommendation
}

// BenchmarkArgon2Concurrent8 verifies passwords from 8 goroutines at once,
// as 8 concurrent logins would, per candidate: latency p50/p99 of one
// verification, verifications per second, and the bytes one hash allocates
// (the memory each concurrent login holds).
//
//	go test -run '^$' -bench Argon2Concurrent8 -benchtime 64x ./internal/passwords/
func BenchmarkArgon2Concurrent8(b *testing.B) {
	for _, p := range candidates {
		b.Run(fmt.Sprintf("m=%dMiB,t=%d,p=%d", p.MemoryKiB/1024, p.Iterations, p.Parallelism), func(b *testing.B) {
			h, err := password.NewHasher(p, 8)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			phc, _ := h.Hash(ctx, "Bench-Pass-1")
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, _ = h.Verify(ctx, "Bench-Pass-1", phc)
			runtime.ReadMemStats(&after)
			cpu := cpuPerCall(8, func() { _, _, _ = h.Verify(ctx, "Bench-Pass-1", phc) })
			lat := run8(b, func() {
				if ok, _, _ := h.Verify(ctx, "Bench-Pass-1", phc); !ok {
					b.Fatal("verify failed")
				}
			})
			report(b, lat)
			b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms/hash")
			// 8 logins arriving together on idle cores: the last one waits for
			// ceil(8/cores) hashes. Load-independent, unlike the wall times.
			rounds := (8 + runtime.NumCPU() - 1) / runtime.NumCPU()
			b.ReportMetric(float64(cpu.Microseconds())*float64(rounds)/1000, "idle-p99-ms-est")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "MiB/hash")
		})
	}
}

// BenchmarkPortalLogin measures portalLogin through the whole HTTP stack
// (middleware, rate limiter, PostgreSQL, session insert) with the chosen
// parameters (password.DefaultParams) and 8 concurrent clients. The
// baseline, measured in the same run, is one verification alone on an idle
// hasher; p99/baseline says how much queueing for 2 cores adds.
//
//	go test -run '^$' -bench PortalLogin -benchtime 64x ./internal/passwords/
func BenchmarkPortalLogin(b *testing.B) {
	fastParams = password.DefaultParams
	s := newStack(b, stackOpts{account: rateLimit(1 << 20), ip: rateLimit(1 << 20)})
	in1 := s.integration(0, nil)
	u := s.user("loadtest", "contoso.com", "ACTIVE", in1)
	s.setPassword(u, "Bench-Pass-1")

	h, _ := password.NewHasher(password.DefaultParams, 0)
	ctx := context.Background()
	phc, _ := h.Hash(ctx, "Bench-Pass-1")
	var base []time.Duration
	for range 8 {
		t0 := time.Now()
		_, _, _ = h.Verify(ctx, "Bench-Pass-1", phc)
		base = append(base, time.Since(t0))
	}
	slices.Sort(base)
	baseline := base[len(base)/2]

	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	lat := run8(b, func() {
		r := s.do("", login, map[string]any{"o": "acme", "l": "loadtest", "p": "Bench-Pass-1"})
		if len(r.Errors) > 0 {
			b.Fatalf("login: %+v", r.Errors)
		}
	})
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	report(b, lat)
	// Everything in this process (HTTP, resolvers, hashing, the worker) per
	// login; PostgreSQL's and Redis's own CPU is not in it.
	cpu := (time.Duration(r1.Utime.Nano()-r0.Utime.Nano()) + time.Duration(r1.Stime.Nano()-r0.Stime.Nano())) / time.Duration(b.N)
	rounds := (8 + runtime.NumCPU() - 1) / runtime.NumCPU()
	b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms/login")
	b.ReportMetric(float64(cpu.Microseconds())*float64(rounds)/1000, "idle-p99-ms-est")
	b.ReportMetric(float64(baseline.Microseconds())/1000, "baseline-ms")
	b.ReportMetric(float64(pct(lat, 99))/float64(baseline), "p99/baseline")
}

// cpuPerCall is the process CPU time (user + system) one call of f takes,
// averaged over n sequential calls: what a hash costs whatever else the
// machine is running.
func cpuPerCall(n int, f func()) time.Duration {
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	for range n {
		f()
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	d := time.Duration(r1.Utime.Nano()-r0.Utime.Nano()) + time.Duration(r1.Stime.Nano()-r0.Stime.Nano())
	return d / time.Duration(n)
}

// run8 runs b.N calls of f from 8 goroutines and returns each call's latency.
func run8(b *testing.B, f func()) []time.Duration {
	var (
		mu  sync.Mutex
		lat []time.Duration
		wg  sync.WaitGroup
	)
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				t0 := time.Now()
				f()
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	return lat
}

func pct(lat []time.Duration, p int) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func report(b *testing.B, lat []time.Duration) {
	b.ReportMetric(float64(pct(lat, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(lat, 99).Microseconds())/1000, "p99-ms")
}

package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/gctune"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/worker"
)

// BenchmarkProvisionThroughput (issue 12, docs/benchmarks.md "Provisioning
// throughput"). Every scenario runs, in the same process and against the same
// emulator configuration — Graph's real write quota (3,000 writes per 150 s
// per app+tenant, the bucket starting full), 20–40 ms per call — first a
// baseline "SDK-like program" (16 goroutines POSTing /users with the Graph
// SDK's stock retry: up to 3 retries on 429/503/504, Retry-After honoured,
// else 3 s), then dirsync through its whole pipeline (bind → outbox → relay →
// asynq → reconcile → Graph), each on a fresh emulator:
//
//	fresh:  2,000 users, fresh tenant. ratio = dirsync wall time ÷ baseline's.
//	empty:  600 users, the tenant's write bucket emptied first (see drainBucket):
//	        quota-share = dirsync's writes/s ÷ Graph's 20/s refill.
//	faults: 2,000 users with 5 % Graph 5xx. ratio = wall time ÷ the fresh run's.
//
//	go test -run '^$' -bench ProvisionThroughput -benchtime 1x -timeout 30m ./internal/worker/
func BenchmarkProvisionThroughput(b *testing.B) {
	// The garbage collector as the dirsync binary sets it (both sides of the
	// comparison run in this process and share it).
	gctune.Apply(os.Getenv)
	var freshWall time.Duration
	b.Run("fresh", func(b *testing.B) {
		for range b.N {
			base := runBaseline(b, graphCfg(0), 2000, false)
			ds := runDirsync(b, graphCfg(0), 2000, false)
			freshWall = ds.wall
			report(b, base, ds)
			b.ReportMetric(ds.wall.Seconds()/base.wall.Seconds(), "ratio")
		}
	})
	b.Run("empty", func(b *testing.B) {
		for range b.N {
			base := runBaseline(b, graphCfg(0), 600, true)
			ds := runDirsync(b, graphCfg(0), 600, true)
			report(b, base, ds)
			b.ReportMetric(ds.writeRate()/20, "quota-share")
			b.ReportMetric(base.writeRate()/20, "base-quota-share")
		}
	})
	b.Run("faults", func(b *testing.B) {
		for range b.N {
			base := runBaseline(b, graphCfg(0.05), 2000, false)
			ds := runDirsync(b, graphCfg(0.05), 2000, false)
			report(b, base, ds)
			if freshWall > 0 {
				b.ReportMetric(ds.wall.Seconds()/freshWall.Seconds(), "ratio-vs-fresh")
			}
		}
	})
}

// graphCfg is the one emulator configuration: Graph's quotas at real speed,
// 20–40 ms per call, serverErrors of the calls answered 500/503/504.
func graphCfg(serverErrors float64) graphsim.Config {
	return graphsim.Config{Seed: 1, RequestLogSize: 20000, Faults: graphsim.Faults{
		LatencyBase: 20 * time.Millisecond, LatencyJitter: 20 * time.Millisecond, ServerErrorRate: serverErrors}}
}

// run is what one program achieved.
type run struct {
	wall              time.Duration
	failed            int
	requests, tooMany int
	writes            []time.Time // successful POST/PATCH answers
}

func (r run) writeRate() float64 {
	if len(r.writes) < 2 {
		return 0
	}
	span := r.writes[len(r.writes)-1].Sub(r.writes[0]).Seconds()
	return float64(len(r.writes)-1) / span
}

func (r run) share429() float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(r.tooMany) / float64(r.requests)
}

func report(b *testing.B, base, ds run) {
	b.ReportMetric(base.wall.Seconds(), "base-s")
	b.ReportMetric(ds.wall.Seconds(), "dirsync-s")
	b.ReportMetric(float64(base.failed), "base-failed")
	b.ReportMetric(float64(ds.failed), "dirsync-failed")
	b.ReportMetric(base.share429(), "base-429-share")
	b.ReportMetric(ds.share429(), "dirsync-429-share")
	b.Logf("baseline: %s, %d failed, %d/%d requests 429 (%.2f%%), %.1f writes/s",
		base.wall.Round(time.Millisecond), base.failed, base.tooMany, base.requests, 100*base.share429(), base.writeRate())
	b.Logf("dirsync:  %s, %d failed, %d/%d requests 429 (%.2f%%), %.1f writes/s",
		ds.wall.Round(time.Millisecond), ds.failed, ds.tooMany, ds.requests, 100*ds.share429(), ds.writeRate())
}

// graphStats counts the emulator's Graph requests (not token requests) and
// the successful writes.
func graphStats(sim *graphsim.Sim, r *run) {
	for _, q := range sim.Requests() {
		if strings.Contains(q.Path, "/oauth2/") || strings.HasSuffix(q.Path, "/token") {
			continue
		}
		r.requests++
		if q.Status == http.StatusTooManyRequests {
			r.tooMany++
		}
		if (q.Method == http.MethodPost || q.Method == http.MethodPatch) && q.Status < 300 {
			r.writes = append(r.writes, q.Time)
		}
	}
	slices.SortFunc(r.writes, func(a, b time.Time) int { return a.Compare(b) })
}

// runBaseline is the SDK-like program on a fresh emulator.
func runBaseline(b *testing.B, cfg graphsim.Config, n int, drain bool) run {
	b.Helper()
	sim := graphsim.New(cfg)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	creds, err := sim.Bootstrap("contoso", "contoso.com")
	require.NoError(b, err)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	tok := token(b, hc, srv.URL, creds)
	if drain {
		b.Logf("baseline: emptied Graph's write bucket with %d writes first", drainBucket(b, hc, srv.URL, tok))
	}
	sim.ClearRequests()

	work := make(chan int)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("u%05d", i)
				body := fmt.Sprintf(`{"accountEnabled":true,"displayName":"User %s","mailNickname":"%s","userPrincipalName":"%s@contoso.com","passwordProfile":{"password":"Xy7!kq2#Lm9$","forceChangePasswordNextSignIn":false}}`, name, name, name)
				if status := sdkPost(hc, srv.URL+"/v1.0/users", tok, body); status >= 300 {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	r := run{wall: time.Since(start), failed: int(failed.Load())}
	graphStats(sim, &r)
	return r
}

// sdkPost is the Graph SDK's stock RetryHandler (msgraph-sdk-go / kiota
// defaults): up to 3 retries on 429, 503 and 504, after Retry-After when the
// answer has one, else after 3 s. Anything else is the answer.
func sdkPost(hc *http.Client, u, tok, body string) int {
	status := 0
	for attempt := 0; attempt <= 3; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		status = resp.StatusCode
		if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout {
			return status
		}
		if attempt == 3 {
			break
		}
		wait := 3 * time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		time.Sleep(wait)
	}
	return status
}

func token(b *testing.B, hc *http.Client, base string, creds graphsim.Credentials) string {
	b.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {creds.ClientID},
		"client_secret": {creds.ClientSecret}, "scope": {"https://graph.microsoft.com/.default"}}
	resp, err := hc.PostForm(base+"/"+creds.TenantID+"/oauth2/v2.0/token", form)
	require.NoError(b, err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&tok))
	return tok.AccessToken
}

// drainBucket empties the tenant's write bucket the way another program
// would: PATCHes of one filler user from 16 goroutines until Graph answers
// 429. Nothing of it reaches dirsync's own budget, which starts full and has
// to learn from Graph's answers that the tenant has nothing left.
func drainBucket(b *testing.B, hc *http.Client, base, tok string) int {
	b.Helper()
	do := func(method, path, body string) int {
		req, _ := http.NewRequest(method, base+"/v1.0"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		require.NoError(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(b, http.StatusCreated, do(http.MethodPost, "/users",
		`{"accountEnabled":false,"displayName":"filler","mailNickname":"filler","userPrincipalName":"filler@contoso.com","passwordProfile":{"password":"Xy7!kq2#Lm9$"}}`))
	var (
		wg        sync.WaitGroup
		written   atomic.Int64
		throttled atomic.Bool
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !throttled.Load(); i++ {
				switch status := do(http.MethodPatch, "/users/filler@contoso.com", fmt.Sprintf(`{"jobTitle":"t%d-%d"}`, w, i)); {
				case status == http.StatusTooManyRequests:
					throttled.Store(true)
				case status < 300:
					written.Add(1)
				default:
					b.Errorf("filler write: %d", status)
					return
				}
			}
		}()
	}
	wg.Wait()
	return int(written.Load())
}

// runDirsync binds n users on a fresh stack and waits for their job to settle.
// The wall time runs from the bind (the mutation's transaction) to the job's
// finished_at: the whole pipeline.
func runDirsync(b *testing.B, cfg graphsim.Config, n int, drain bool) run {
	b.Helper()
	s := newStack(b, stackOpts{sim: cfg})
	s.childCfg.ProdRetry = true
	s.childCfg.MaxHold = 5 * time.Second // DIRSYNC_GRAPH_MAX_HOLD's default
	conc := benchConcurrency()
	s.db.SetMaxOpenConns(conc + 12)
	s.db.SetMaxIdleConns(conc + 12) // as app.Open does
	ids := s.users(0, n)
	if drain {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.Logf("dirsync: emptied Graph's write bucket with %d writes first", drainBucket(b, hc, s.simURL, token(b, hc, s.simURL, s.creds)))
	}
	s.startWorker(func(c *worker.Config) { c.Concurrency = conc })
	time.Sleep(300 * time.Millisecond) // the worker is up and polling
	s.sim.ClearRequests()

	start := time.Now()
	jobIDs := s.bind(ids, 1000) // the bindUsers mutation takes at most 1,000 ids
	bound := time.Since(start)
	jobs := waitJobs(b, s, jobIDs, 10*time.Minute)
	var end time.Time
	r := run{}
	for _, j := range jobs {
		if j.FinishedAt != nil && j.FinishedAt.After(end) {
			end = *j.FinishedAt
		}
		r.failed += j.Failed
	}
	r.wall = end.Sub(start)
	graphStats(s.sim, &r)
	if len(r.writes) > 0 {
		var gaps []string // pauses between writes longer than 300 ms, where the time went
		for i := 1; i < len(r.writes); i++ {
			if d := r.writes[i].Sub(r.writes[i-1]); d > 300*time.Millisecond {
				gaps = append(gaps, fmt.Sprintf("%s at %s", d.Round(time.Millisecond), r.writes[i-1].Sub(start).Round(time.Millisecond)))
			}
		}
		b.Logf("dirsync: bind committed after %s, first write %s, last write %s, jobs settled %s; gaps between writes: %v",
			bound.Round(time.Millisecond), r.writes[0].Sub(start).Round(time.Millisecond),
			r.writes[len(r.writes)-1].Sub(start).Round(time.Millisecond), r.wall.Round(time.Millisecond), gaps)
	}
	if !drain {
		s.checkNoDuplicates(n)
	} else {
		require.Len(b, s.sim.Users(s.creds.TenantID), n+1, "the users and the filler, no duplicate")
	}
	return r
}

// benchConcurrency is the worker's default (worker.DefaultConcurrency), or
// DIRSYNC_WORKER_CONCURRENCY as an operator would set it.
func benchConcurrency() int {
	if n, err := strconv.Atoi(os.Getenv("DIRSYNC_WORKER_CONCURRENCY")); err == nil && n > 0 {
		return n
	}
	return worker.DefaultConcurrency
}

// waitJobs polls until every job has settled.
func waitJobs(b testing.TB, s *stack, ids []pulid.ID, timeout time.Duration) []*ent.Job {
	b.Helper()
	deadline := time.Now().Add(timeout)
	ctx := context.Background()
	for {
		js, err := s.client.Job.Query().Where(job.IDIn(ids...)).All(s.ctx)
		require.NoError(b, err)
		settled := len(js) == len(ids)
		for _, j := range js {
			if j.Status == job.StatusQUEUED || j.Status == job.StatusRUNNING {
				settled = false
			}
		}
		if settled {
			return js
		}
		if time.Now().After(deadline) {
			items, links := s.progress()
			b.Fatalf("jobs not settled after %s: items %v links %v", timeout, items, links)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

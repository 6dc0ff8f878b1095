package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/gctune"
	"github.com/dirsync/dirsync/internal/metrics"
	"github.com/dirsync/dirsync/internal/server"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/testdb"
)

// The read-path workload of issue 12: one organization of readUsers users
// and readGroups groups, each user a member of readGroupsPerUser groups (more
// than the 10 the query asks for, so the per-user limit matters).
const (
	readUsers         = 10000
	readGroups        = 200
	readGroupsPerUser = 12
	readConns         = 32
)

const (
	readQueryGroups   = `{ users(first: 100) { edges { node { id username email groups(first: 10) { edges { node { name } } } } } } }`
	readQueryNoGroups = `{ users(first: 100) { edges { node { id username email } } } }`
)

// BenchmarkReadPath serves the two list queries of issue 12 at readConns
// concurrent connections, through the whole server (server.Handler with its
// middleware and metrics, a real API key, the privacy layer, complexity,
// gqlgen) and, in the same run, through a baseline: an http.Handler on the
// same kind of httptest server and the same *sql.DB pool that runs the plain
// SQL a hand-written loader would (a page of users; their first 10 groups with
// row_number()) through lib/pq and JSON-encodes the same response shape. Both
// share transport, connection pool and load generator, so the ratio isolates
// what dirsync adds. Rounds alternate baseline and dirsync so a machine that
// gets busier part-way through hurts both alike.
//
// Metrics: rps and p99_ms of each, x_raw = dirsync rps / baseline rps.
//
//	go test -run '^$' -bench ReadPath -benchtime 1x ./internal/api/
func BenchmarkReadPath(b *testing.B) {
	// The garbage collector as the dirsync binary sets it (both sides of the
	// comparison run in this process and share it).
	gctune.Apply(os.Getenv)
	dsn := testdb.NewURL(b, dbmigrate.Migrator{})
	// dirsync's pool as internal/app opens it (statements kept prepared,
	// internal/stmtcache); the baseline's is plain lib/pq, as the issue
	// defines it.
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(b, err)
	rawDB, err := sql.Open("postgres", dsn)
	require.NoError(b, err)
	for _, p := range []*sql.DB{db, rawDB} {
		b.Cleanup(func() { _ = p.Close() })
		p.SetMaxOpenConns(50) // as internal/app
		p.SetMaxIdleConns(50)
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	org, key := seedReadPath(b, db, client)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	s, err := server.New(server.Config{
		GraphQL: api.NewHandler(api.Config{Metrics: metrics.New()}, client, logger),
		Logger:  logger, Metrics: metrics.New(),
	})
	require.NoError(b, err)
	dirsync := httptest.NewServer(s.Handler())
	b.Cleanup(dirsync.Close)
	raw := httptest.NewServer(rawReadHandler(rawDB, org))
	b.Cleanup(raw.Close)

	for _, c := range []struct {
		name, query string
		groups      bool
	}{{"users-with-groups", readQueryGroups, true}, {"users-only", readQueryNoGroups, false}} {
		b.Run(c.name, func(b *testing.B) {
			rawURL := raw.URL + "?groups=" + fmt.Sprint(c.groups)
			body, _ := json.Marshal(map[string]any{"query": c.query})
			// Same answer from both, checked once before timing.
			require.Equal(b, readAnswer(b, fetch(b, rawURL, "", body)), readAnswer(b, fetch(b, dirsync.URL+"/graphql", key, body)))
			// CPU time per request, requests one at a time: what a request
			// costs whatever else the machine runs.
			rawCost := costPerRequest(b, rawURL, "", body, 300)
			dsCost := costPerRequest(b, dirsync.URL+"/graphql", key, body, 300)
			report := func() {
				b.ReportMetric(rawCost.cpuMs, "raw_cpu_ms/req")
				b.ReportMetric(dsCost.cpuMs, "cpu_ms/req")
				b.ReportMetric(rawCost.allocs, "raw_allocs/req")
				b.ReportMetric(dsCost.allocs, "allocs/req")
				b.ReportMetric(rawCost.kB, "raw_kB/req")
				b.ReportMetric(dsCost.kB, "kB/req")
			}
			if os.Getenv("DIRSYNC_BENCH_CPU_ONLY") != "" {
				report()
				return
			}
			var rawRes, dsRes loadResult
			for b.Loop() {
				const rounds = 3
				for range rounds {
					rawRes.add(runLoad(b, rawURL, "", body, readConns, 3*time.Second))
					dsRes.add(runLoad(b, dirsync.URL+"/graphql", key, body, readConns, 3*time.Second))
				}
			}
			b.ReportMetric(rawRes.rps(), "raw_rps")
			b.ReportMetric(rawRes.p99(), "raw_p99_ms")
			b.ReportMetric(dsRes.rps(), "rps")
			b.ReportMetric(dsRes.p99(), "p99_ms")
			b.ReportMetric(dsRes.rps()/rawRes.rps(), "x_raw")
			// After b.Loop, which resets the metrics reported before it.
			report()
		})
	}
}

// seedReadPath creates the organization, its users and groups, and a
// read-only key; memberships go in with one INSERT … SELECT.
func seedReadPath(b *testing.B, db *sql.DB, client *ent.Client) (pulid.ID, string) {
	ctx := auth.SystemContext(context.Background())
	o, err := directory.New(client).CreateOrganization(ctx, "bench")
	require.NoError(b, err)
	key, _, err := auth.CreateAPIKey(ctx, client, o.ID, "bench", auth.RoleReadOnly)
	require.NoError(b, err)
	vctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: o.ID, Role: auth.RoleAdmin})
	groups := make([]*ent.UserGroupCreate, readGroups)
	for i := range groups {
		groups[i] = client.UserGroup.Create().SetName(fmt.Sprintf("group-%03d", i))
	}
	_, err = client.UserGroup.CreateBulk(groups...).Save(vctx)
	require.NoError(b, err)
	for start := 0; start < readUsers; start += 1000 {
		users := make([]*ent.UserCreate, 1000)
		for i := range users {
			n := start + i
			users[i] = client.User.Create().SetUsername(fmt.Sprintf("user%05d", n)).SetEmail(fmt.Sprintf("user%05d@example.com", n))
		}
		_, err = client.User.CreateBulk(users...).Save(vctx)
		require.NoError(b, err)
	}
	_, err = db.Exec(`INSERT INTO user_group_members (user_group_id, user_id)
		SELECT DISTINCT g.id, u.id
		FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM users) u
		CROSS JOIN generate_series(0, $1 - 1) k
		JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM user_groups) g
		  ON g.rn = (u.rn * 7 + k * 13) % $2`, readGroupsPerUser, readGroups)
	require.NoError(b, err)
	_, err = db.Exec(`ANALYZE`)
	require.NoError(b, err)
	return o.ID, key
}

// rawReadHandler is the baseline: what a hand-written endpoint serving the
// same data would do. It decodes the request body as the GraphQL one is, runs
// one or two queries, and encodes the same JSON.
func rawReadHandler(db *sql.DB, org pulid.ID) http.Handler {
	type group struct {
		Node struct {
			Name string `json:"name"`
		} `json:"node"`
	}
	type groups struct {
		Edges []group `json:"edges"`
	}
	type user struct {
		ID       string  `json:"id"`
		Username string  `json:"username"`
		Email    string  `json:"email"`
		Groups   *groups `json:"groups,omitempty"`
	}
	type edge struct {
		Node *user `json:"node"`
	}
	type response struct {
		Data struct {
			Users struct {
				Edges []edge `json:"edges"`
			} `json:"users"`
		} `json:"data"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Query string `json:"query"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		withGroups := r.URL.Query().Get("groups") == "true"
		ctx := r.Context()
		rows, err := db.QueryContext(ctx, `SELECT id, username, email FROM users WHERE organization_id = $1 ORDER BY id LIMIT 100`, string(org))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var (
			out  response
			ids  []string
			byID = map[string]*user{}
		)
		out.Data.Users.Edges = []edge{}
		for rows.Next() {
			u := &user{}
			if err := rows.Scan(&u.ID, &u.Username, &u.Email); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			if withGroups {
				u.Groups = &groups{Edges: []group{}}
			}
			ids = append(ids, u.ID)
			byID[u.ID] = u
			out.Data.Users.Edges = append(out.Data.Users.Edges, edge{Node: u})
		}
		if err := rows.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if withGroups {
			rows, err := db.QueryContext(ctx, `SELECT user_id, name FROM (
				SELECT m.user_id, g.id, g.name, row_number() OVER (PARTITION BY m.user_id ORDER BY g.id) AS rn
				FROM user_group_members m JOIN user_groups g ON g.id = m.user_group_id
				WHERE m.user_id = ANY($1) AND g.organization_id = $2) t
				WHERE rn <= 10 ORDER BY user_id, id`, pq.Array(ids), string(org))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			for rows.Next() {
				var uid string
				var g group
				if err := rows.Scan(&uid, &g.Node.Name); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				byID[uid].Groups.Edges = append(byID[uid].Groups.Edges, g)
			}
			if err := rows.Err(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// readAnswer decodes a response of either query into one line per user: id,
// username, email and the names of its groups in order. (Comparing them is
// how the benchmark found entgql's unordered per-parent page, issue 12.)
func readAnswer(b *testing.B, raw []byte) []string {
	var r struct {
		Data struct {
			Users struct {
				Edges []struct {
					Node struct {
						ID, Username, Email string
						Groups              *struct {
							Edges []struct{ Node struct{ Name string } }
						}
					}
				}
			}
		}
	}
	require.NoError(b, json.Unmarshal(raw, &r))
	var out []string
	for _, e := range r.Data.Users.Edges {
		n := e.Node
		s := n.ID + " " + n.Username + " " + n.Email
		if n.Groups != nil {
			var names []string
			for _, g := range n.Groups.Edges {
				names = append(names, g.Node.Name)
			}
			s += fmt.Sprint(" ", names)
		}
		out = append(out, s)
	}
	require.Len(b, out, 100)
	return out
}

func fetch(b *testing.B, url, key string, body []byte) []byte {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(b, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	require.NoError(b, err)
	require.Equal(b, http.StatusOK, res.StatusCode, "%s", out)
	return out
}

// perRequest is what a request costs, client side included: CPU time (user
// + system) in ms, heap allocations and kB allocated. Allocations are counted
// exactly, so they move with a change even when the machine is too busy for
// the CPU time to.
type perRequest struct{ cpuMs, allocs, kB float64 }

// costPerRequest sends n requests one after the other and returns what each
// cost the process.
func costPerRequest(b *testing.B, url, key string, body []byte, n int) perRequest {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	fetch(b, url, key, body) // warm caches and connections
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := cpu()
	for range n {
		fetch(b, url, key, body)
	}
	elapsed := cpu() - start
	runtime.ReadMemStats(&after)
	return perRequest{
		cpuMs:  float64(elapsed.Microseconds()) / 1000 / float64(n),
		allocs: float64(after.Mallocs-before.Mallocs) / float64(n),
		kB:     float64(after.TotalAlloc-before.TotalAlloc) / 1024 / float64(n),
	}
}

// loadResult accumulates requests and their latencies over rounds.
type loadResult struct {
	n         int
	elapsed   time.Duration
	latencies []time.Duration
}

func (r *loadResult) add(o loadResult) {
	r.n += o.n
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
}

func (r *loadResult) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r *loadResult) p99() float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return float64(r.latencies[len(r.latencies)*99/100].Microseconds()) / 1000
}

// runLoad keeps conns requests in flight for d, each worker on its own
// keep-alive connection, and fails on any non-200 answer or GraphQL error.
func runLoad(b *testing.B, url, key string, body []byte, conns int, d time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
		bad error
	)
	start := time.Now()
	deadline := start.Add(d)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			buf := make([]byte, 0, 64<<10)
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				t0 := time.Now()
				r, err := hc.Do(req)
				if err == nil {
					w := bytes.NewBuffer(buf[:0])
					_, err = io.Copy(w, r.Body)
					_ = r.Body.Close()
					if err == nil && (r.StatusCode != http.StatusOK || bytes.Contains(w.Bytes(), []byte(`"errors"`))) {
						err = fmt.Errorf("status %d: %.300s", r.StatusCode, w.Bytes())
					}
				}
				if err != nil {
					mu.Lock()
					bad = err
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.n += len(lat)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	require.NoError(b, bad)
	return res
}

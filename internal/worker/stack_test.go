package worker_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/integrations"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/throttle"
	"github.com/dirsync/dirsync/internal/worker"
)

// stack is the whole pipeline of one test: its own PostgreSQL database and
// Redis, a Graph emulator tenant, an authorized integration into it, and the
// real reconcile handler. Users are bound through internal/integrations (what
// the bindUsers mutation calls), so work flows jobs.Start → outbox → relay →
// asynq → provision.Reconciler → emulator, as in production.
type stack struct {
	t      testing.TB
	ctx    context.Context // system context
	dsn    string
	db     *sql.DB
	client *ent.Client
	redis  asynq.RedisClientOpt
	rdb    *redis.Client
	sim    *graphsim.Sim
	simURL string
	creds  graphsim.Credentials
	org    *ent.Organization
	in     *ent.Integration
	// childCfg is what a worker subprocess needs to join this stack.
	childCfg childConfig
}

// childConfig is passed to a worker subprocess (TestWorkerChildProcess).
type childConfig struct {
	DSN        string        `json:"dsn"`
	RedisAddr  string        `json:"redisAddr"`
	RedisDB    int           `json:"redisDB"`
	SecretKey  string        `json:"secretKey"`
	Prefix     string        `json:"prefix"`
	WriteRate  int           `json:"writeRate"`
	WritePer   time.Duration `json:"writePer"`
	RetryBase  time.Duration `json:"retryBase"`
	RetryMax   time.Duration `json:"retryMax"`
	RelayPoll  time.Duration `json:"relayPoll"`
	Concurrent int           `json:"concurrency"`
	// ProdRetry: the Graph client's and the worker's production retry
	// policies instead of the tests' quick ones (benchmarks).
	ProdRetry bool `json:"prodRetry,omitempty"`
	// MaxHold is the throttle's MaxHold (0: unbounded, as before).
	MaxHold time.Duration `json:"maxHold,omitempty"`
}

type stackOpts struct {
	sim graphsim.Config
	// redisAddr: a private server (outage tests); empty leases a testredis DB.
	redisAddr string
	// writes is our throttle budget; zero: Graph's write quota scaled by the
	// emulator's TimeScale (3,000 per 150 s / TimeScale), as production sizes it.
	writes redis_rate.Limit
	// observe, when set, sees every Graph request after the emulator answered.
	observe func(r *http.Request, status int, at time.Time)
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	s := &stack{t: t, ctx: auth.SystemContext(context.Background())}
	s.dsn = testdb.NewURL(t, dbmigrate.Migrator{})
	var err error
	s.db, err = stmtcache.Open(s.dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	s.db.SetMaxOpenConns(40)
	s.client = ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, s.db)))
	t.Cleanup(func() { _ = s.client.Close() })

	s.sim = graphsim.New(o.sim)
	var h http.Handler = s.sim
	if o.observe != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			s.sim.ServeHTTP(sw, r)
			o.observe(r, sw.status, time.Now())
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.simURL = srv.URL
	s.creds, err = s.sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)

	if o.redisAddr != "" {
		s.redis = asynq.RedisClientOpt{Addr: o.redisAddr, DialTimeout: 300 * time.Millisecond}
	} else {
		r := testredis.New(t)
		s.redis = asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: s.redis.Addr, DB: s.redis.DB, ContextTimeoutEnabled: true,
		DialTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = s.rdb.Close() })

	if o.writes.IsZero() {
		scale := o.sim.TimeScale
		if scale <= 0 {
			scale = 1
		}
		o.writes = redis_rate.Limit{Rate: 3000, Period: time.Duration(float64(150*time.Second) / scale), Burst: 20}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	s.childCfg = childConfig{DSN: s.dsn, RedisAddr: s.redis.Addr, RedisDB: s.redis.DB,
		SecretKey: base64.StdEncoding.EncodeToString(key), Prefix: "wtest:" + hex.EncodeToString(suffix) + ":",
		WriteRate: o.writes.Rate, WritePer: o.writes.Period,
		RetryBase: 100 * time.Millisecond, RetryMax: 3 * time.Second, RelayPoll: 500 * time.Millisecond, Concurrent: 20}

	s.org, err = directory.New(s.client).CreateOrganization(s.ctx, "acme")
	require.NoError(t, err)
	s.in = s.integration()
	return s
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// connector builds the tenant connector the way app.Open does, with this
// stack's budget and key.
func connector(t testing.TB, rdb redis.UniversalClient, c childConfig) *tenant.Connector {
	t.Helper()
	budgets, err := throttle.New(throttle.Config{Redis: rdb, KeyPrefix: c.Prefix + "throttle:",
		Writes:  throttle.WriteBudget{Size: c.WriteRate, RefillPerSecond: float64(c.WriteRate) / c.WritePer.Seconds()},
		MaxHold: c.MaxHold})
	require.NoError(t, err)
	key, err := base64.StdEncoding.DecodeString(c.SecretKey)
	require.NoError(t, err)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	retry := &msgraph.RetryPolicy{MaxAttempts: 6, BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second, MaxRetryAfter: 30 * time.Second}
	if c.ProdRetry {
		retry = nil
	}
	tc, err := tenant.New(tenant.Config{Keyring: kr, Budgets: budgets, AllowCustomURLs: true, AllowInsecureURLs: true, Logger: quiet,
		Retry: retry})
	require.NoError(t, err)
	return tc
}

func (s *stack) integration() *ent.Integration { return s.integrationFor(s.creds) }

// integrationFor authorizes an integration into the emulator tenant of creds.
func (s *stack) integrationFor(creds graphsim.Credentials) *ent.Integration {
	s.t.Helper()
	tc := connector(s.t, s.rdb, s.childCfg)
	id := pulid.New("IN")
	sealed, err := tc.SealSecret(id, creds.ClientSecret)
	require.NoError(s.t, err)
	var verified []string
	for _, tn := range s.sim.Tenants() {
		if tn.ID == creds.TenantID {
			for _, d := range tn.Domains {
				if d.Verified {
					verified = append(verified, strings.ToLower(d.Name))
				}
			}
		}
	}
	in, err := s.client.Integration.Create().SetID(id).SetOrganizationID(s.org.ID).SetName("M365 " + creds.TenantID).
		SetTenantID(creds.TenantID).SetClientID(creds.ClientID).SetClientSecretSealed(sealed).
		SetGraphBaseURL(s.simURL + "/v1.0").SetLoginBaseURL(s.simURL).
		SetVerifiedDomains(verified).SetStatus(integration.StatusAUTHORIZED).SetAuthorizedAt(time.Now()).
		SetAttributeMappings(mapping.Default()).Save(s.ctx)
	require.NoError(s.t, err)
	return in
}

// handler is the real reconcile handler on the stack.
func handlerFor(t testing.TB, client *ent.Client, rdb redis.UniversalClient, c childConfig) *provision.Reconciler {
	t.Helper()
	rec, err := provision.New(provision.Config{Ent: client, Tenants: connector(t, rdb, c),
		Publisher: pubsub.NewPublisher(rdb, c.Prefix), Logger: quiet})
	require.NoError(t, err)
	return rec
}

// startWorker runs a worker (asynq server + relay) in this process.
func (s *stack) startWorker(tune func(*worker.Config)) (stop func()) {
	s.t.Helper()
	c := s.childCfg
	cfg := worker.Config{Redis: s.redis, DB: s.db, DatabaseURL: s.dsn,
		Handler: handlerFor(s.t, s.client, s.rdb, c), RetryAfter: provision.RetryAfter,
		Concurrency: c.Concurrent, RetryBase: c.RetryBase, RetryMax: c.RetryMax, RelayPoll: c.RelayPoll,
		ShutdownTimeout: 2 * time.Second, Logger: quiet}
	if c.ProdRetry {
		cfg.RetryBase, cfg.RetryMax = 0, 0
	}
	if tune != nil {
		tune(&cfg)
	}
	w, err := worker.New(cfg)
	require.NoError(s.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	s.t.Cleanup(stop)
	return stop
}

// users creates n ACTIVE users u<from>…@contoso.com directly in PostgreSQL.
func (s *stack) users(from, n int) []pulid.ID {
	s.t.Helper()
	creates := make([]*ent.UserCreate, n)
	for i := range n {
		name := fmt.Sprintf("u%05d", from+i)
		creates[i] = s.client.User.Create().SetOrganizationID(s.org.ID).SetUsername(name).
			SetEmail(name + "@contoso.com").SetFirstName("First" + name).SetLastName("Last").
			SetDisplayName("User " + name).SetState(user.StateACTIVE)
	}
	var ids []pulid.ID
	for chunk := range chunks(creates, 500) {
		us, err := s.client.User.CreateBulk(chunk...).Save(s.ctx)
		require.NoError(s.t, err)
		for _, u := range us {
			ids = append(ids, u.ID)
		}
	}
	return ids
}

func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// bind binds users to the integration as the bindUsers mutation does, in
// batches of per, and returns the jobs.
func (s *stack) bind(ids []pulid.ID, per int) []pulid.ID {
	s.t.Helper()
	svc := integrations.New(s.client, nil)
	var jobIDs []pulid.ID
	for chunk := range chunks(ids, per) {
		_, job, err := svc.BindUsers(s.ctx, s.in.ID, chunk)
		require.NoError(s.t, err)
		require.NotNil(s.t, job)
		jobIDs = append(jobIDs, job.ID)
	}
	return jobIDs
}

// progress counts job items by status and links by status.
func (s *stack) progress() (items, links map[string]int) {
	items, links = map[string]int{}, map[string]int{}
	var rows []struct {
		Status string `json:"status"`
		Count  int    `json:"count"`
	}
	if err := s.client.JobItem.Query().GroupBy(jobitem.FieldStatus).Aggregate(ent.Count()).Scan(s.ctx, &rows); err == nil {
		for _, r := range rows {
			items[r.Status] = r.Count
		}
	}
	rows = nil
	if err := s.client.RemoteLink.Query().GroupBy(remotelink.FieldStatus).Aggregate(ent.Count()).Scan(s.ctx, &rows); err == nil {
		for _, r := range rows {
			links[r.Status] = r.Count
		}
	}
	return items, links
}

// waitConverged waits until every job item SUCCEEDED and n links are IN_SYNC.
func (s *stack) waitConverged(n int, timeout time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		items, links := s.progress()
		total := 0
		for _, c := range items {
			total += c
		}
		if items["SUCCEEDED"] == total && total > 0 && links["IN_SYNC"] == n && len(links) == 1 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			pending, _ := outbox.Pending(s.ctx, s.db)
			var sample []string
			bad, _ := s.client.RemoteLink.Query().Where(remotelink.StatusNEQ(remotelink.StatusIN_SYNC)).Limit(5).All(s.ctx)
			for _, l := range bad {
				sample = append(sample, fmt.Sprintf("%s %s %s: %s", l.Upn, l.Status, l.LastErrorCode, l.LastErrorMessage))
			}
			queue := "?"
			ins := asynq.NewInspector(s.redis)
			if qi, err := ins.GetQueueInfo(worker.DefaultQueue); err == nil {
				queue = fmt.Sprintf("pending %d active %d scheduled %d retry %d archived %d completed %d",
					qi.Pending, qi.Active, qi.Scheduled, qi.Retry, qi.Archived, qi.Completed)
				if rs, err := ins.ListRetryTasks(worker.DefaultQueue); err == nil {
					for _, r := range rs {
						queue += fmt.Sprintf("; retry #%d at %s (in %s): %s", r.Retried, r.NextProcessAt.Format(time.StampMilli), time.Until(r.NextProcessAt).Round(time.Millisecond), r.LastErr)
					}
				}
			}
			_ = ins.Close()
			s.t.Fatalf("not converged after %s: items %v, links %v (want %d IN_SYNC), outbox pending %d; e.g. %v; asynq: %s",
				timeout, items, links, n, pending, sample, queue)
		}
		if time.Since(start)/(5*time.Second) != (time.Since(start)+200*time.Millisecond)/(5*time.Second) {
			s.t.Logf("%s: items %v links %v", time.Since(start).Round(time.Second), items, links)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkNoDuplicates: the tenant holds exactly n users, every link names a
// distinct remote user whose UPN is the one the link sent.
func (s *stack) checkNoDuplicates(n int) {
	s.t.Helper()
	remote := s.sim.Users(s.creds.TenantID)
	byID := make(map[string]graphsim.User, len(remote))
	for _, u := range remote {
		byID[u.ID] = u
	}
	require.Len(s.t, remote, n, "remote user count")
	links, err := s.client.RemoteLink.Query().All(s.ctx)
	require.NoError(s.t, err)
	require.Len(s.t, links, n)
	seen := map[string]bool{}
	for _, l := range links {
		require.False(s.t, seen[l.RemoteID], "remote id %s linked twice", l.RemoteID)
		seen[l.RemoteID] = true
		u, ok := byID[l.RemoteID]
		require.True(s.t, ok, "link %s names remote id %s the tenant does not have", l.ID, l.RemoteID)
		require.True(s.t, strings.EqualFold(u.UserPrincipalName, l.Upn), "link UPN %s vs remote %s", l.Upn, u.UserPrincipalName)
	}
}

package provision_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/event"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/outbox"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/throttle"
)

// env is one test's world: its own PostgreSQL database, Redis database, Graph
// emulator tenant and an authorized integration pointing at it.
type env struct {
	t       *testing.T
	ctx     context.Context // system context
	client  *ent.Client
	sim     *graphsim.Sim
	srvURL  string
	creds   graphsim.Credentials
	org     *ent.Organization
	in      *ent.Integration
	tenants *tenant.Connector
	rdb     *redis.Client
	prefix  string
	rec     *provision.Reconciler
	// statements counts the SQL statements run through client.
	statements atomic.Int64
}

type envOpts struct {
	sim   graphsim.Config
	retry *msgraph.RetryPolicy
	// wrap, if set, wraps the emulator's HTTP handler (to hold or observe requests).
	wrap func(http.Handler) http.Handler
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{t: t, ctx: auth.SystemContext(context.Background())}
	db := testdb.New(t, dbmigrate.Migrator{})
	e.client = ent.NewClient(ent.Driver(dialect.DebugWithContext(entsql.OpenDB(dialect.Postgres, db),
		func(_ context.Context, v ...any) {
			// Every statement, begin and commit; not the deferred rollback
			// after a commit, which sends nothing.
			if len(v) == 1 {
				if s, ok := v[0].(string); ok && strings.HasSuffix(s, ": rollbacked") {
					return
				}
			}
			e.statements.Add(1)
		})))

	if o.sim.TimeScale == 0 {
		o.sim.DisableThrottling = true
	}
	e.sim = graphsim.New(o.sim)
	var h http.Handler = e.sim
	if o.wrap != nil {
		h = o.wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.srvURL = srv.URL
	var err error
	e.creds, err = e.sim.Bootstrap("contoso", "contoso.com", "fabrikam.com")
	require.NoError(t, err)

	info := testredis.New(t)
	opts := info.Options()
	opts.ContextTimeoutEnabled = true
	e.rdb = redis.NewClient(opts)
	t.Cleanup(func() { _ = e.rdb.Close() })
	budgets, err := throttle.New(throttle.Config{Redis: e.rdb,
		Writes: throttle.WriteBudget{Size: 2000, RefillPerSecond: 2000},
		Reads:  redis_rate.Limit{Rate: 2000, Period: time.Second, Burst: 200}})
	require.NoError(t, err)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	retry := o.retry
	if retry == nil {
		retry = &msgraph.RetryPolicy{MaxAttempts: 4, BaseDelay: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
	}
	e.tenants, err = tenant.New(tenant.Config{Keyring: kr, Budgets: budgets, AllowCustomURLs: true, AllowInsecureURLs: true, Retry: retry,
		Logger: quietLogger()})
	require.NoError(t, err)

	e.org, err = directory.New(e.client).CreateOrganization(e.ctx, "acme")
	require.NoError(t, err)
	e.in = e.integration("M365", e.creds, nil)

	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	e.prefix = "provtest:" + hex.EncodeToString(suffix) + ":"
	e.rec = e.reconciler()
	return e
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (e *env) reconciler() *provision.Reconciler {
	rec, err := provision.New(provision.Config{Ent: e.client, Tenants: e.tenants,
		Publisher: pubsub.NewPublisher(e.rdb, e.prefix), Logger: quietLogger()})
	require.NoError(e.t, err)
	return rec
}

// integration creates an authorized integration on creds' tenant; set edits the
// create (domains, email source...).
func (e *env) integration(name string, creds graphsim.Credentials, set func(*ent.IntegrationCreate)) *ent.Integration {
	e.t.Helper()
	id := pulid.New("IN")
	sealed, err := e.tenants.SealSecret(id, creds.ClientSecret)
	require.NoError(e.t, err)
	var verified []string
	for _, tn := range e.sim.Tenants() {
		if tn.ID == creds.TenantID {
			for _, d := range tn.Domains {
				if d.Verified {
					verified = append(verified, d.Name)
				}
			}
		}
	}
	c := e.client.Integration.Create().SetID(id).SetOrganizationID(e.org.ID).SetName(name).
		SetTenantID(creds.TenantID).SetClientID(creds.ClientID).SetClientSecretSealed(sealed).
		SetGraphBaseURL(e.srvURL + "/v1.0").SetLoginBaseURL(e.srvURL).
		SetStatus(integration.StatusAUTHORIZED).SetVerifiedDomains(verified).SetAttributeMappings(mapping.Default())
	if set != nil {
		set(c)
	}
	in, err := c.Save(e.ctx)
	require.NoError(e.t, err)
	return in
}

type userOpt func(*ent.UserCreate)

func active(c *ent.UserCreate) { c.SetState(user.StateACTIVE) }

func (e *env) user(username, email string, opts ...userOpt) *ent.User {
	e.t.Helper()
	c := e.client.User.Create().SetOrganizationID(e.org.ID).SetUsername(username).SetEmail(email)
	for _, o := range opts {
		o(c)
	}
	u, err := c.Save(e.ctx)
	require.NoError(e.t, err)
	return u
}

// bind binds users directly to in and starts the job, as the API does.
func (e *env) bind(in *ent.Integration, users ...*ent.User) *ent.Job {
	e.t.Helper()
	var targets []jobs.Target
	for _, u := range users {
		require.NoError(e.t, e.client.UserBinding.Create().SetOrganizationID(e.org.ID).
			SetIntegrationID(in.ID).SetUserID(u.ID).Exec(e.ctx))
		targets = append(targets, jobs.Target{IntegrationID: in.ID, UserID: u.ID})
	}
	return e.start(jobs.JobBindUsers, in.ID, targets...)
}

func (e *env) start(kind string, integrationID pulid.ID, targets ...jobs.Target) *ent.Job {
	e.t.Helper()
	j, err := jobs.Start(e.ctx, e.client, e.org.ID, kind, integrationID, targets)
	require.NoError(e.t, err)
	require.NotNil(e.t, j)
	return j
}

// tasks claims the undispatched outbox rows (as the relay would) and returns
// their payloads.
func (e *env) tasks() []jobs.ReconcileUser {
	e.t.Helper()
	rows, err := e.client.Outbox.Query().Where(outbox.DispatchedAtIsNil()).Order(ent.Asc(outbox.FieldID)).All(e.ctx)
	require.NoError(e.t, err)
	out := make([]jobs.ReconcileUser, 0, len(rows))
	for _, r := range rows {
		require.Equal(e.t, jobs.KindReconcileUser, r.Kind)
		var p jobs.ReconcileUser
		require.NoError(e.t, json.Unmarshal(r.Payload, &p))
		out = append(out, p)
		require.NoError(e.t, e.client.Outbox.UpdateOneID(r.ID).SetDispatchedAt(time.Now()).Exec(e.ctx))
	}
	return out
}

// run handles every pending task once and requires each to finish (nil).
func (e *env) run() {
	e.t.Helper()
	for _, task := range e.tasks() {
		require.NoError(e.t, e.rec.Handle(context.Background(), task, false))
	}
}

func (e *env) job(id pulid.ID) *ent.Job {
	e.t.Helper()
	j, err := e.client.Job.Get(e.ctx, id)
	require.NoError(e.t, err)
	return j
}

func (e *env) items(jobID pulid.ID) []*ent.JobItem {
	e.t.Helper()
	items, err := e.client.JobItem.Query().Where(jobitem.JobID(jobID)).Order(ent.Asc(jobitem.FieldID)).All(e.ctx)
	require.NoError(e.t, err)
	return items
}

func (e *env) link(in *ent.Integration, u *ent.User) *ent.RemoteLink {
	e.t.Helper()
	l, err := e.client.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.UserID(u.ID)).Only(e.ctx)
	if ent.IsNotFound(err) {
		return nil
	}
	require.NoError(e.t, err)
	return l
}

func (e *env) events(types ...string) []*ent.Event {
	e.t.Helper()
	q := e.client.Event.Query().Order(ent.Asc(event.FieldID))
	if len(types) > 0 {
		q = q.Where(event.TypeIn(types...))
	}
	evs, err := q.All(e.ctx)
	require.NoError(e.t, err)
	return evs
}

// remote returns the emulated user with this UPN (case-insensitive).
func (e *env) remote(tenantID, upn string) *graphsim.User {
	for _, u := range e.sim.Users(tenantID) {
		if strings.EqualFold(u.UserPrincipalName, upn) {
			return &u
		}
	}
	return nil
}

func (e *env) remoteCount(tenantID string) int { return len(e.sim.Users(tenantID)) }

// writes counts the Graph writes the emulator saw (POST/PATCH/DELETE on users).
func (e *env) writes(method string) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, "/v1.0/users") && r.Status < 300 {
			n++
		}
	}
	return n
}

// graph is a Graph client of the integration, for arranging remote state.
func (e *env) graph(in *ent.Integration) *msgraph.Client {
	gc, err := e.tenants.Build(in)
	require.NoError(e.t, err)
	return gc
}

// collector records the messages published on the org channel.
type collector struct {
	mu   sync.Mutex
	msgs []pubsub.Message
}

func (e *env) subscribe() *collector {
	e.t.Helper()
	c := &collector{}
	ps := e.rdb.PSubscribe(context.Background(), e.prefix+"org:*")
	_, err := ps.Receive(context.Background())
	require.NoError(e.t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ps.Channel() {
			var msg pubsub.Message
			if json.Unmarshal([]byte(m.Payload), &msg) == nil {
				c.mu.Lock()
				c.msgs = append(c.msgs, msg)
				c.mu.Unlock()
			}
		}
	}()
	e.t.Cleanup(func() { _ = ps.Close(); <-done })
	return c
}

func (c *collector) wait(t *testing.T, ok func([]pubsub.Message) bool) []pubsub.Message {
	t.Helper()
	var got []pubsub.Message
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		got = slices.Clone(c.msgs)
		return ok(got)
	}, 5*time.Second, 10*time.Millisecond)
	return got
}

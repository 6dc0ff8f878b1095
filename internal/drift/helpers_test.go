package drift_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
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
	"github.com/dirsync/dirsync/ent/outbox"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/drift"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/groupsync"
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

// env is one test's world: its own PostgreSQL and Redis databases, a Graph
// emulator tenant, an authorized integration on it, the reconcilers and the
// drift detector.
type env struct {
	t       testing.TB
	ctx     context.Context // system context
	client  *ent.Client
	sim     *graphsim.Sim
	srvURL  string
	creds   graphsim.Credentials
	org     *ent.Organization
	in      *ent.Integration
	tenants *tenant.Connector
	rdb     *redis.Client
	redis   testredis.Info
	rec     *provision.Reconciler
	grp     *groupsync.Reconciler
	det     *drift.Detector
}

type envOpts struct {
	sim    graphsim.Config
	groups bool   // group management on
	action string // driftAction; "" = default (CORRECT)
	name   string // integration name; "" = M365
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{t: t, ctx: auth.SystemContext(context.Background())}
	db := testdb.New(t, dbmigrate.Migrator{})
	e.client = ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	o.sim.DisableThrottling = true
	e.sim = graphsim.New(o.sim)
	srv := httptest.NewServer(e.sim)
	t.Cleanup(srv.Close)
	e.srvURL = srv.URL
	var err error
	e.creds, err = e.sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)

	e.redis = testredis.New(t)
	opts := e.redis.Options()
	opts.ContextTimeoutEnabled = true
	e.rdb = redis.NewClient(opts)
	t.Cleanup(func() { _ = e.rdb.Close() })
	budgets, err := throttle.New(throttle.Config{Redis: e.rdb,
		Writes: throttle.WriteBudget{Size: 5000, RefillPerSecond: 5000},
		Reads:  redis_rate.Limit{Rate: 5000, Period: time.Second, Burst: 500}})
	require.NoError(t, err)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	e.tenants, err = tenant.New(tenant.Config{Keyring: kr, Budgets: budgets, AllowCustomURLs: true, AllowInsecureURLs: true,
		Retry:  &msgraph.RetryPolicy{MaxAttempts: 4, BaseDelay: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		Logger: quietLogger()})
	require.NoError(t, err)

	e.org, err = directory.New(e.client).CreateOrganization(e.ctx, "acme")
	require.NoError(t, err)
	e.in = e.integration(o)

	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	pub := pubsub.NewPublisher(e.rdb, "drifttest:"+hex.EncodeToString(suffix)+":")
	e.rec, err = provision.New(provision.Config{Ent: e.client, Tenants: e.tenants, Publisher: pub, Logger: quietLogger()})
	require.NoError(t, err)
	e.grp, err = groupsync.New(groupsync.Config{Ent: e.client, Tenants: e.tenants, Publisher: pub, Logger: quietLogger()})
	require.NoError(t, err)
	e.det, err = drift.New(drift.Config{Ent: e.client, Tenants: e.tenants, Reconciler: e.rec, Publisher: pub, Logger: quietLogger()})
	require.NoError(t, err)
	return e
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (e *env) integration(o envOpts) *ent.Integration {
	e.t.Helper()
	id := pulid.New("IN")
	sealed, err := e.tenants.SealSecret(id, e.creds.ClientSecret)
	require.NoError(e.t, err)
	if o.name == "" {
		o.name = "M365"
	}
	c := e.client.Integration.Create().SetID(id).SetOrganizationID(e.org.ID).SetName(o.name).
		SetTenantID(e.creds.TenantID).SetClientID(e.creds.ClientID).SetClientSecretSealed(sealed).
		SetGraphBaseURL(e.srvURL + "/v1.0").SetLoginBaseURL(e.srvURL).
		SetStatus(integration.StatusAUTHORIZED).SetVerifiedDomains([]string{"contoso.com"}).
		SetAttributeMappings(mapping.Default()).SetGroupManagement(o.groups)
	if o.action != "" {
		c.SetDriftAction(integration.DriftAction(o.action))
	}
	in, err := c.Save(e.ctx)
	require.NoError(e.t, err)
	return in
}

func (e *env) user(username string) *ent.User {
	e.t.Helper()
	u, err := e.client.User.Create().SetOrganizationID(e.org.ID).SetUsername(username).
		SetEmail(username + "@contoso.com").SetFirstName(strings.ToUpper(username[:1]) + username[1:]).
		SetLastName("Tester").SetJobTitle("Engineer").SetState(user.StateACTIVE).Save(e.ctx)
	require.NoError(e.t, err)
	return u
}

// bind binds users directly and runs the job.
func (e *env) bind(users ...*ent.User) {
	e.t.Helper()
	var targets []jobs.Target
	for _, u := range users {
		require.NoError(e.t, e.client.UserBinding.Create().SetOrganizationID(e.org.ID).
			SetIntegrationID(e.in.ID).SetUserID(u.ID).Exec(e.ctx))
		targets = append(targets, jobs.Target{IntegrationID: e.in.ID, UserID: u.ID})
	}
	e.start(jobs.JobBindUsers, targets...)
	e.run()
}

// group creates a directory group of users, binds it (group management on)
// and runs everything.
func (e *env) group(name string, members ...*ent.User) *ent.UserGroup {
	e.t.Helper()
	g, err := e.client.UserGroup.Create().SetOrganizationID(e.org.ID).SetName(name).AddMembers(members...).Save(e.ctx)
	require.NoError(e.t, err)
	require.NoError(e.t, e.client.GroupBinding.Create().SetOrganizationID(e.org.ID).
		SetIntegrationID(e.in.ID).SetGroupID(g.ID).Exec(e.ctx))
	ts, err := groupsync.Targets(e.ctx, e.client, e.org.ID, []pulid.ID{g.ID}, e.in.ID)
	require.NoError(e.t, err)
	for _, m := range members {
		ts = append(ts, jobs.Target{IntegrationID: e.in.ID, UserID: m.ID})
	}
	e.start(jobs.JobBindGroups, ts...)
	e.run()
	return g
}

func (e *env) start(kind string, targets ...jobs.Target) *ent.Job {
	e.t.Helper()
	j, err := jobs.Start(e.ctx, e.client, e.org.ID, kind, e.in.ID, targets)
	require.NoError(e.t, err)
	return j
}

// run handles every undispatched outbox row (as relay + worker would) until
// none is left: user and group reconciles, follow-up passes included.
func (e *env) run() {
	e.t.Helper()
	for range 10 {
		rows, err := e.client.Outbox.Query().Where(outbox.DispatchedAtIsNil()).Order(ent.Asc(outbox.FieldID)).All(e.ctx)
		require.NoError(e.t, err)
		if len(rows) == 0 {
			return
		}
		for _, r := range rows {
			require.NoError(e.t, e.client.Outbox.UpdateOneID(r.ID).SetDispatchedAt(time.Now()).Exec(e.ctx))
			switch r.Kind {
			case jobs.KindReconcileUser:
				var p jobs.ReconcileUser
				require.NoError(e.t, json.Unmarshal(r.Payload, &p))
				require.NoError(e.t, e.rec.Handle(context.Background(), p, true))
			case jobs.KindReconcileGroup:
				var p jobs.ReconcileGroup
				require.NoError(e.t, json.Unmarshal(r.Payload, &p))
				require.NoError(e.t, e.grp.Handle(context.Background(), p, true))
			default:
				e.t.Fatalf("unexpected task kind %s", r.Kind)
			}
		}
	}
	e.t.Fatal("tasks keep coming")
}

// pending is how many outbox rows wait.
func (e *env) pending() int {
	n, err := e.client.Outbox.Query().Where(outbox.DispatchedAtIsNil()).Count(e.ctx)
	require.NoError(e.t, err)
	return n
}

func (e *env) round() *drift.Result {
	e.t.Helper()
	res, err := e.det.Round(context.Background(), e.org.ID, e.in.ID)
	require.NoError(e.t, err)
	return res
}

func (e *env) link(u *ent.User) *ent.RemoteLink {
	e.t.Helper()
	l, err := e.client.RemoteLink.Query().Where(remotelink.IntegrationID(e.in.ID), remotelink.UserID(u.ID)).Only(e.ctx)
	require.NoError(e.t, err)
	return l
}

func (e *env) groupLink(g *ent.UserGroup) *ent.RemoteLink {
	e.t.Helper()
	l, err := e.client.RemoteLink.Query().Where(remotelink.IntegrationID(e.in.ID), remotelink.GroupID(g.ID)).Only(e.ctx)
	require.NoError(e.t, err)
	return l
}

func (e *env) events(typ string) []*ent.Event {
	e.t.Helper()
	evs, err := e.client.Event.Query().Where(event.Type(typ)).Order(ent.Asc(event.FieldID)).All(e.ctx)
	require.NoError(e.t, err)
	return evs
}

func (e *env) remoteUser(id string) *graphsim.User {
	for _, u := range e.sim.Users(e.creds.TenantID) {
		if u.ID == id {
			return &u
		}
	}
	return nil
}

func (e *env) remoteGroup(id string) *graphsim.Group {
	for _, g := range e.sim.Groups(e.creds.TenantID) {
		if g.ID == id {
			return &g
		}
	}
	return nil
}

// graphCalls counts the Graph API requests the emulator saw (tokens aside).
func (e *env) graphCalls() int {
	n := 0
	for _, r := range e.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") {
			n++
		}
	}
	return n
}

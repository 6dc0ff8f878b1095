package groupsync_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
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
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/throttle"
	"github.com/dirsync/dirsync/internal/worker"
)

func quiet() *slog.Logger {
	if os.Getenv("GROUPSYNC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// stack is a whole deployment for one test: its own PostgreSQL database and
// Redis DB, the GraphQL API over HTTP (the real handler with its
// middleware), a worker (outbox relay + asynq + both reconcile handlers)
// and a Graph emulator tenant. Everything a test does goes through GraphQL,
// as a client would; the emulator is inspected (and, to set up a tenant
// that already has groups, written to) through Graph itself.
type stack struct {
	t      testing.TB
	client *ent.Client
	sim    *graphsim.Sim
	simURL string
	creds  graphsim.Credentials
	url    string
	key    string
	gc     *msgraph.Client // an admin's own Graph client on the tenant
	stop   func()
	// inspector sees the worker's queue (settled).
	inspector *asynq.Inspector
}

type stackOpts struct {
	sim         graphsim.Config
	writes      redis_rate.Limit // zero: Graph's write quota scaled by the emulator's TimeScale
	concurrency int
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	s := &stack{t: t}
	dsn := testdb.NewURL(t, dbmigrate.Migrator{})
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	require.NoError(t, err)
	db.SetMaxOpenConns(40)
	s.client = ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	t.Cleanup(func() { _ = s.client.Close() })

	s.sim = graphsim.New(o.sim)
	srv := httptest.NewServer(s.sim)
	t.Cleanup(srv.Close)
	s.simURL = srv.URL
	s.creds, err = s.sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)

	r := testredis.New(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, DB: r.DB, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	if o.writes.IsZero() {
		scale := o.sim.TimeScale
		if scale <= 0 {
			scale = 1
		}
		o.writes = redis_rate.Limit{Rate: 3000, Period: time.Duration(float64(150*time.Second) / scale), Burst: 20}
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	prefix := "gtest:" + hex.EncodeToString(suffix) + ":"
	budgets, err := throttle.New(throttle.Config{Redis: rdb, KeyPrefix: prefix + "throttle:",
		Writes: throttle.WriteBudget{Size: o.writes.Rate, RefillPerSecond: float64(o.writes.Rate) / o.writes.Period.Seconds()}})
	require.NoError(t, err)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(transport.CloseIdleConnections)
	conn, err := tenant.New(tenant.Config{Keyring: kr, Budgets: budgets, AllowCustomURLs: true, AllowInsecureURLs: true, Logger: quiet(),
		HTTPClient: &http.Client{Transport: transport, Timeout: 30 * time.Second},
		Retry:      &msgraph.RetryPolicy{MaxAttempts: 6, BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second, MaxRetryAfter: 30 * time.Second}})
	require.NoError(t, err)

	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(s.client).CreateOrganization(ctx, "acme")
	require.NoError(t, err)
	s.key, _, err = auth.CreateAPIKey(ctx, s.client, org.ID, "admin", auth.RoleAdmin)
	require.NoError(t, err)
	apiSrv := httptest.NewServer(api.NewHandler(api.Config{Deps: graph.Deps{Tenants: conn}}, s.client, quiet()))
	t.Cleanup(apiSrv.Close)
	s.url = apiSrv.URL + "/graphql"

	users, err := provision.New(provision.Config{Ent: s.client, Tenants: conn, Logger: quiet()})
	require.NoError(t, err)
	groups, err := groupsync.New(groupsync.Config{Ent: s.client, Tenants: conn, Logger: quiet()})
	require.NoError(t, err)
	if o.concurrency == 0 {
		o.concurrency = 10
	}
	w, err := worker.New(worker.Config{Redis: asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB}, DB: db, DatabaseURL: dsn,
		Handler: users, GroupHandler: groups, RetryAfter: provision.RetryAfter, Concurrency: o.concurrency,
		RetryBase: 100 * time.Millisecond, RetryMax: 2 * time.Second, RelayPoll: 200 * time.Millisecond,
		DelayedTaskCheckInterval: 200 * time.Millisecond, ShutdownTimeout: 2 * time.Second, Logger: quiet()})
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	var once sync.Once
	s.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(s.stop)
	s.inspector = asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr, DB: r.DB})
	t.Cleanup(func() { _ = s.inspector.Close() })

	s.gc, err = msgraph.New(msgraph.Config{TenantID: s.creds.TenantID, ClientID: s.creds.ClientID,
		ClientSecret: s.creds.ClientSecret, GraphBaseURL: s.simURL + "/v1.0", LoginBaseURL: s.simURL,
		HTTPClient: &http.Client{Transport: transport},
		Retry:      msgraph.RetryPolicy{MaxAttempts: 8, BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second, MaxRetryAfter: 30 * time.Second}})
	require.NoError(t, err)
	return s
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// gql runs a request that must succeed and decodes its data into out.
func (s *stack) gql(query string, vars map[string]any, out any) {
	s.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(s.t, err)
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	require.NoError(s.t, json.Unmarshal(raw, &r), "body: %s", raw)
	require.Empty(s.t, r.Errors, "query %s", query)
	if out != nil {
		require.NoError(s.t, json.Unmarshal(r.Data, out))
	}
}

// integration creates and authorizes an integration into the emulator
// tenant through GraphQL.
func (s *stack) integration(groupManagement bool) string {
	s.t.Helper()
	return s.integrationAs(s.creds, groupManagement)
}

// integrationAs is integration with another app's credentials.
func (s *stack) integrationAs(creds graphsim.Credentials, groupManagement bool) string {
	s.t.Helper()
	var c struct {
		CreateIntegration struct{ Integration struct{ ID string } }
	}
	s.gql(`mutation($in: CreateIntegrationInput!) { createIntegration(input: $in) { integration { id } } }`,
		map[string]any{"in": map[string]any{"name": "M365 " + creds.ClientID, "tenantID": creds.TenantID, "clientID": creds.ClientID,
			"clientSecret": creds.ClientSecret, "graphBaseURL": s.simURL + "/v1.0", "loginBaseURL": s.simURL,
			"groupManagement": groupManagement}}, &c)
	id := c.CreateIntegration.Integration.ID
	var a struct {
		AuthorizeIntegration struct{ Integration struct{ Status string } }
	}
	s.gql(`mutation($id: ID!) { authorizeIntegration(id: $id) { integration { status } } }`, map[string]any{"id": id}, &a)
	require.Equal(s.t, "AUTHORIZED", a.AuthorizeIntegration.Integration.Status)
	return id
}

func (s *stack) setGroupManagement(inID string, on bool) []string {
	s.t.Helper()
	var out struct {
		UpdateIntegration struct{ Jobs []struct{ ID string } }
	}
	s.gql(`mutation($id: ID!, $on: Boolean!) { updateIntegration(id: $id, input: {groupManagement: $on}) { jobs { id } } }`,
		map[string]any{"id": inID, "on": on}, &out)
	var ids []string
	for _, j := range out.UpdateIntegration.Jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// users creates n ACTIVE users through GraphQL and returns their ids.
func (s *stack) users(prefix string, n int) []string {
	s.t.Helper()
	ids := make([]string, n)
	for i := range n {
		var out struct {
			CreateUser struct{ User struct{ ID string } }
		}
		name := fmt.Sprintf("%s%04d", prefix, i)
		s.gql(`mutation($in: CreateUserInput!) { createUser(input: $in) { user { id } } }`,
			map[string]any{"in": map[string]any{"username": name, "email": name + "@contoso.com",
				"firstName": "F" + name, "lastName": "L" + name, "state": "ACTIVE"}}, &out)
		ids[i] = out.CreateUser.User.ID
	}
	return ids
}

func (s *stack) group(name, description string, members []string) string {
	s.t.Helper()
	var out struct {
		CreateUserGroup struct{ UserGroup struct{ ID string } }
	}
	in := map[string]any{"name": name}
	if description != "" {
		in["description"] = description
	}
	s.gql(`mutation($in: CreateUserGroupInput!) { createUserGroup(input: $in) { userGroup { id } } }`, map[string]any{"in": in}, &out)
	id := out.CreateUserGroup.UserGroup.ID
	for chunk := range chunks(members, 500) {
		s.addMembers(id, chunk)
	}
	return id
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

func (s *stack) addMembers(groupID string, users []string) {
	s.t.Helper()
	s.gql(`mutation($g: ID!, $u: [ID!]!) { addUserGroupMembers(groupID: $g, userIDs: $u) { userGroup { id } } }`,
		map[string]any{"g": groupID, "u": users}, nil)
}

func (s *stack) removeMembers(groupID string, users []string) {
	s.t.Helper()
	s.gql(`mutation($g: ID!, $u: [ID!]!) { removeUserGroupMembers(groupID: $g, userIDs: $u) { userGroup { id } } }`,
		map[string]any{"g": groupID, "u": users}, nil)
}

func (s *stack) bindUsers(inID string, users []string) {
	s.t.Helper()
	for chunk := range chunks(users, 1000) {
		s.gql(`mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`,
			map[string]any{"i": inID, "u": chunk}, nil)
	}
}

func (s *stack) bindGroups(inID string, groups ...string) {
	s.t.Helper()
	s.gql(`mutation($i: ID!, $g: [ID!]!) { bindUserGroups(integrationID: $i, groupIDs: $g) { jobs { id } } }`,
		map[string]any{"i": inID, "g": groups}, nil)
}

func (s *stack) unbindGroups(inID string, groups ...string) {
	s.t.Helper()
	s.gql(`mutation($i: ID!, $g: [ID!]!) { unbindUserGroups(integrationID: $i, groupIDs: $g) { jobs { id } } }`,
		map[string]any{"i": inID, "g": groups}, nil)
}

// linkOut is a group's link as GraphQL shows it.
type linkOut struct {
	ID                 string
	Kind               string
	RemoteID           *string
	Status             string
	StatusReason       *string
	DisplayName        *string
	TakenOver          bool
	MembersInSync      int
	MembersPending     int
	ForeignMembers     int
	LastErrorCode      *string
	LastErrorRequestID *string
	Integration        struct{ ID string }
}

const linkFields = `id kind remoteID status statusReason displayName takenOver membersInSync membersPending foreignMembers
	lastErrorCode lastErrorRequestID integration { id }`

// groupLink reads the group's link in the integration through UserGroup.links.
func (s *stack) groupLink(groupID, inID string) *linkOut {
	s.t.Helper()
	var out struct {
		Node *struct{ Links []linkOut }
	}
	s.gql(`query($id: ID!) { node(id: $id) { ... on UserGroup { links { `+linkFields+` } } } }`, map[string]any{"id": groupID}, &out)
	if out.Node == nil {
		return nil
	}
	for _, l := range out.Node.Links {
		if l.Integration.ID == inID {
			return &l
		}
	}
	return nil
}

// integrationGroupLinks reads Integration.links(where: {kind: GROUP}).
func (s *stack) integrationGroupLinks(inID string) []linkOut {
	s.t.Helper()
	var out struct {
		Node struct {
			Links struct {
				TotalCount int
				Edges      []struct{ Node linkOut }
			}
		}
	}
	s.gql(`query($id: ID!) { node(id: $id) { ... on Integration { links(where: {kind: GROUP}, first: 100) { totalCount edges { node { `+linkFields+` } } } } } }`,
		map[string]any{"id": inID}, &out)
	var ls []linkOut
	for _, e := range out.Node.Links.Edges {
		ls = append(ls, e.Node)
	}
	return ls
}

// userRemoteIDs maps directory user ids to their remote ids in the integration.
func (s *stack) userRemoteIDs(inID string) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	after := any(nil)
	for {
		var page struct {
			Node struct {
				Links struct {
					PageInfo struct {
						HasNextPage bool
						EndCursor   string
					}
					Edges []struct {
						Node struct {
							UserID   *string
							RemoteID *string
							Status   string
						}
					}
				}
			}
		}
		s.gql(`query($id: ID!, $after: Cursor) { node(id: $id) { ... on Integration { links(where: {kind: USER}, first: 100, after: $after) {
			pageInfo { hasNextPage endCursor } edges { node { userID remoteID status } } } } } }`, map[string]any{"id": inID, "after": after}, &page)
		for _, e := range page.Node.Links.Edges {
			if e.Node.UserID != nil && e.Node.RemoteID != nil && *e.Node.RemoteID != "" {
				out[*e.Node.UserID] = strings.ToLower(*e.Node.RemoteID)
			}
		}
		if !page.Node.Links.PageInfo.HasNextPage {
			return out
		}
		after = page.Node.Links.PageInfo.EndCursor
	}
}

// remoteGroups are the emulator's groups with this display name.
func (s *stack) remoteGroups(name string) []graphsim.Group {
	var out []graphsim.Group
	for _, g := range s.sim.Groups(s.creds.TenantID) {
		if g.DisplayName == name {
			out = append(out, g)
		}
	}
	return out
}

func (s *stack) remoteGroup(id string) graphsim.Group {
	s.t.Helper()
	for _, g := range s.sim.Groups(s.creds.TenantID) {
		if strings.EqualFold(g.ID, id) {
			return g
		}
	}
	s.t.Fatalf("remote group %s not found", id)
	return graphsim.Group{}
}

func lowerSorted(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.ToLower(id)
	}
	sort.Strings(out)
	return out
}

// remoteOf maps directory users to remote ids, sorted.
func remoteOf(t testing.TB, m map[string]string, users []string) []string {
	t.Helper()
	out := make([]string, 0, len(users))
	for _, u := range users {
		id, ok := m[u]
		require.True(t, ok, "user %s has no remote id", u)
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settled waits until every job item and outbox row is done and no
// group link awaits a follow-up pass.
func (s *stack) settled(limit time.Duration) {
	s.t.Helper()
	ctx := auth.SystemContext(context.Background())
	eventually(s.t, limit, "jobs settled", func() bool {
		var n int
		if q, err := s.inspector.GetQueueInfo(worker.DefaultQueue); err == nil && q.Pending+q.Active+q.Scheduled+q.Retry > 0 {
			return false
		}
		rows, err := s.client.QueryContext(ctx, `SELECT
			(SELECT count(*) FROM job_items WHERE status = 'PENDING') +
			(SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) +
			(SELECT count(*) FROM remote_links WHERE members_dirty OR status = 'PENDING')`)
		if err != nil {
			return false
		}
		defer rows.Close()
		if rows.Next() {
			_ = rows.Scan(&n)
		}
		return n == 0
	})
}

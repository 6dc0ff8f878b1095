package importer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/importer"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/server"
	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/throttle"
	"github.com/dirsync/dirsync/internal/worker"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// shared is what a worker subprocess needs to join a test's stack.
type shared struct {
	DSN       string `json:"dsn"`
	RedisAddr string `json:"redisAddr"`
	RedisDB   int    `json:"redisDB"`
	SecretKey string `json:"secretKey"`
	Prefix    string `json:"prefix"`
	PageSize  int    `json:"pageSize"`
	// Slice is the import handler's per-task budget (0: default).
	Slice time.Duration `json:"slice"`
}

// env is one test's deployment: its own database and Redis DB, a Graph
// emulator tenant, an authorized integration into it, the HTTP server
// (server.Handler with /graphql and the results CSV) and, when started, a
// worker running imports as in production.
type env struct {
	t      testing.TB
	ctx    context.Context // system context
	db     *sql.DB
	client *ent.Client
	rdb    *redis.Client
	sim    *graphsim.Sim
	simURL string
	creds  graphsim.Credentials
	tc     *tenant.Connector
	url    string // API base URL
	cfg    shared
	org    org
	in     *ent.Integration
	graph  *msgraph.Client
}

type org struct {
	id       pulid.ID
	admin    string
	readOnly string
}

type envOpts struct {
	sim      graphsim.Config
	pageSize int
	wrap     func(http.Handler) http.Handler
	// importWait is graph.Deps.ImportWait; 0 = 15 s.
	importWait time.Duration
	slice      time.Duration
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{t: t, ctx: auth.SystemContext(context.Background())}
	e.cfg.DSN = testdb.NewURL(t, dbmigrate.Migrator{})
	var err error
	e.db, err = stmtcache.Open(e.cfg.DSN, stmtcache.DefaultSize)
	require.NoError(t, err)
	e.db.SetMaxOpenConns(30)
	t.Cleanup(func() { _ = e.db.Close() })
	e.client = ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, e.db)))

	e.sim = graphsim.New(o.sim)
	var h http.Handler = e.sim
	if o.wrap != nil {
		h = o.wrap(h)
	}
	simSrv := httptest.NewServer(h)
	t.Cleanup(simSrv.Close)
	e.simURL = simSrv.URL
	e.creds, err = e.sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)

	r := testredis.New(t)
	e.cfg.RedisAddr, e.cfg.RedisDB = r.Addr, r.DB
	e.rdb = redis.NewClient(&redis.Options{Addr: r.Addr, DB: r.DB, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = e.rdb.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	e.cfg.SecretKey = base64.StdEncoding.EncodeToString(key)
	e.cfg.Prefix = "itest:" + hex.EncodeToString(suffix) + ":"
	e.cfg.PageSize = o.pageSize
	e.cfg.Slice = o.slice
	e.tc = connector(t, e.rdb, e.cfg)

	e.org = e.newOrg("acme")
	e.in = e.integration(e.org.id, "M365")
	e.graph, err = e.tc.Build(e.in)
	require.NoError(t, err)

	if o.importWait == 0 {
		o.importWait = 15 * time.Second
	}
	gql := api.NewHandler(api.Config{Deps: graph.Deps{Tenants: e.tc, ImportWait: o.importWait}}, e.client, quiet)
	srv, err := server.New(server.Config{GraphQL: gql, Routes: api.Routes(e.client, quiet), Logger: quiet})
	require.NoError(t, err)
	apiSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(apiSrv.Close)
	e.url = apiSrv.URL
	return e
}

func connector(t testing.TB, rdb redis.UniversalClient, c shared) *tenant.Connector {
	t.Helper()
	budgets, err := throttle.New(throttle.Config{Redis: rdb, KeyPrefix: c.Prefix + "throttle:",
		Writes: throttle.WriteBudget{Size: 3000, RefillPerSecond: 20}})
	require.NoError(t, err)
	key, err := base64.StdEncoding.DecodeString(c.SecretKey)
	require.NoError(t, err)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	tc, err := tenant.New(tenant.Config{Keyring: kr, Budgets: budgets, AllowCustomURLs: true, AllowInsecureURLs: true, Logger: quiet,
		Retry: &msgraph.RetryPolicy{MaxAttempts: 6, BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second, MaxRetryAfter: 30 * time.Second}})
	require.NoError(t, err)
	return tc
}

func (e *env) newOrg(name string) org {
	e.t.Helper()
	o, err := directory.New(e.client).CreateOrganization(e.ctx, name)
	require.NoError(e.t, err)
	admin, _, err := auth.CreateAPIKey(e.ctx, e.client, o.ID, "admin", auth.RoleAdmin)
	require.NoError(e.t, err)
	ro, _, err := auth.CreateAPIKey(e.ctx, e.client, o.ID, "reader", auth.RoleReadOnly)
	require.NoError(e.t, err)
	return org{id: o.ID, admin: admin, readOnly: ro}
}

// integration is an authorized integration of orgID into the emulator tenant.
func (e *env) integration(orgID pulid.ID, name string) *ent.Integration {
	e.t.Helper()
	id := pulid.New("IN")
	sealed, err := e.tc.SealSecret(id, e.creds.ClientSecret)
	require.NoError(e.t, err)
	in, err := e.client.Integration.Create().SetID(id).SetOrganizationID(orgID).SetName(name).
		SetTenantID(e.creds.TenantID).SetClientID(e.creds.ClientID).SetClientSecretSealed(sealed).
		SetGraphBaseURL(e.simURL + "/v1.0").SetLoginBaseURL(e.simURL).
		SetVerifiedDomains([]string{"contoso.com", "contoso.onmicrosoft.com"}).SetStatus(integration.StatusAUTHORIZED).
		SetAuthorizedAt(time.Now()).SetAttributeMappings(mapping.Default()).Save(e.ctx)
	require.NoError(e.t, err)
	return in
}

// importHandler is the import task handler on a stack described by c.
func importHandler(t testing.TB, client *ent.Client, rdb redis.UniversalClient, c shared) worker.TaskFunc {
	t.Helper()
	h, err := importer.NewHandler(importer.HandlerConfig{Ent: client, Tenants: connector(t, rdb, c),
		Publisher: pubsub.NewPublisher(rdb, c.Prefix), Logger: quiet, PageSize: c.PageSize, Slice: c.Slice})
	require.NoError(t, err)
	return app.ImportTask(h)
}

func workerConfig(t testing.TB, db *sql.DB, client *ent.Client, rdb redis.UniversalClient, c shared) worker.Config {
	t.Helper()
	rec, err := provision.New(provision.Config{Ent: client, Tenants: connector(t, rdb, c), Logger: quiet})
	require.NoError(t, err)
	return worker.Config{Redis: asynq.RedisClientOpt{Addr: c.RedisAddr, DB: c.RedisDB}, DB: db, DatabaseURL: c.DSN,
		Handler: rec, RetryAfter: provision.RetryAfter,
		Tasks:     map[string]worker.TaskFunc{jobs.KindImportUsers: importHandler(t, client, rdb, c)},
		RetryBase: 100 * time.Millisecond, RetryMax: 2 * time.Second, RelayPoll: 300 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Logger: quiet}
}

// startWorker runs a worker (asynq server + relay) in this process.
func (e *env) startWorker() (stop func()) {
	e.t.Helper()
	w, err := worker.New(workerConfig(e.t, e.db, e.client, e.rdb, e.cfg))
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

// remote creates a user in the tenant through Graph.
func (e *env) remote(upn, nick, mail string, enabled bool, extra func(*msgraph.UserFields)) string {
	e.t.Helper()
	f := msgraph.UserFields{AccountEnabled: msgraph.Ptr(enabled), DisplayName: msgraph.Ptr("Remote " + nick),
		MailNickname: msgraph.Ptr(nick), UserPrincipalName: msgraph.Ptr(upn),
		PasswordProfile: &msgraph.PasswordProfile{Password: "Zq7!vR2#kP9@xW4"}}
	if mail != "" {
		f.Mail = msgraph.Ptr(mail)
	}
	if extra != nil {
		extra(&f)
	}
	u, err := e.graph.CreateUser(e.ctx, f)
	require.NoError(e.t, err)
	return u.ID
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (g gqlError) code() string { s, _ := g.Extensions["code"].(string); return s }

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

func (e *env) post(key, query string, vars map[string]any) gqlResponse {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(e.t, err)
	req, err := http.NewRequest(http.MethodPost, e.url+"/graphql", bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	var out gqlResponse
	require.NoError(e.t, json.Unmarshal(raw, &out), "body: %s", raw)
	return out
}

func (e *env) must(key, query string, vars map[string]any, out any) {
	e.t.Helper()
	r := e.post(key, query, vars)
	require.Empty(e.t, r.Errors, "query %s", query)
	if out != nil {
		require.NoError(e.t, json.Unmarshal(r.Data, out))
	}
}

func (e *env) fails(key, query string, vars map[string]any, code string) gqlError {
	e.t.Helper()
	r := e.post(key, query, vars)
	require.Len(e.t, r.Errors, 1, "data: %s", r.Data)
	require.Equal(e.t, code, r.Errors[0].code(), "error: %+v", r.Errors[0])
	return r.Errors[0]
}

// get fetches a path of the API with a key.
func (e *env) get(key, path string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return res, string(b)
}

const importMutation = `mutation($in: ID!, $ids: [ID!], $all: Boolean) {
  importUsers(integrationID: $in, remoteIDs: $ids, all: $all) {
    job { id kind status total done failed resultsCSVURL }
    results { remoteID userPrincipalName status message user { id username email state jobTitle department firstName } }
  }
}`

type resultOut struct {
	RemoteID          string  `json:"remoteID"`
	UserPrincipalName string  `json:"userPrincipalName"`
	Status            string  `json:"status"`
	Message           *string `json:"message"`
	User              *struct {
		ID         string `json:"id"`
		Username   string `json:"username"`
		Email      string `json:"email"`
		State      string `json:"state"`
		JobTitle   string `json:"jobTitle"`
		Department string `json:"department"`
		FirstName  string `json:"firstName"`
	} `json:"user"`
}

type jobOut struct {
	ID            string  `json:"id"`
	Kind          string  `json:"kind"`
	Status        string  `json:"status"`
	Total         int     `json:"total"`
	Done          int     `json:"done"`
	Failed        int     `json:"failed"`
	ResultsCSVURL *string `json:"resultsCSVURL"`
}

type importOut struct {
	ImportUsers struct {
		Job     jobOut      `json:"job"`
		Results []resultOut `json:"results"`
	} `json:"importUsers"`
}

func (e *env) importIDs(key string, ids []string) importOut {
	e.t.Helper()
	var out importOut
	e.must(key, importMutation, map[string]any{"in": e.in.ID, "ids": ids}, &out)
	return out
}

// waitJob waits until the job ended and returns it.
func (e *env) waitJob(id string, limit time.Duration) *ent.Job {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		j, err := e.client.Job.Query().Where(job.ID(pulid.ID(id))).Only(e.ctx)
		require.NoError(e.t, err)
		if j.FinishedAt != nil {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s not finished after %s: %d/%d %s", id, limit, j.Done, j.Total, j.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func byRemote(rs []resultOut) map[string]resultOut {
	m := map[string]resultOut{}
	for _, r := range rs {
		m[strings.ToLower(r.RemoteID)] = r
	}
	return m
}

func msg(r resultOut) string {
	if r.Message == nil {
		return ""
	}
	return *r.Message
}

var _ = fmt.Sprintf
var _ = os.Getenv

package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/logctx"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/server"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/worker"
)

// emptyDB is a database nobody migrated (a deployment whose migrate step did
// not run).
type emptyDB struct{}

func (emptyDB) Hash() (string, error)                  { return "empty-for-readiness", nil }
func (emptyDB) Migrate(context.Context, *sql.DB) error { return nil }

func openApp(t *testing.T, m testdb.Migrator, logs io.Writer) *app.App {
	t.Helper()
	cfg := config.Defaults()
	cfg.DatabaseURL = testdb.NewURL(t, m)
	cfg.RedisURL = testredis.New(t).URL
	cfg.RelayStuckAfter = time.Minute
	a, err := app.Open(context.Background(), cfg,
		slog.New(logctx.NewHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	return a
}

func getJSON(t *testing.T, h http.Handler, path string) (int, map[string]string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return rec.Code, body
}

// /readyz is red on a database not migrated to the binary's version, names the
// reason, and turns green once `dirsync migrate` ran; /healthz stays green.
func TestReadinessRedOnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	a := openApp(t, emptyDB{}, io.Discard)
	srv, err := a.HTTPServer()
	require.NoError(t, err)
	h := srv.Handler()

	code, body := getJSON(t, h, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body["migrations"], "not migrated")
	require.Equal(t, "ok", body["postgres"])
	require.Equal(t, "ok", body["redis"])
	code, _ = getJSON(t, h, "/healthz")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on the database")

	require.NoError(t, dbmigrate.Up(context.Background(), a.DB))
	code, body = getJSON(t, h, "/readyz")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "ok", body["migrations"])

	// The worker's probe on the metrics address also watches the relay: an
	// outbox row nobody dispatched for longer than the limit turns it red.
	ops := server.Ops(a.Metrics, append(a.Checks(), a.RelayCheck()), a.Log)
	code, _ = getJSON(t, ops, "/readyz")
	require.Equal(t, http.StatusOK, code)
	_, err = a.DB.Exec(`INSERT INTO outbox (organization_id, kind, payload, created_at) VALUES ('ORx', 'reconcile:user', '\x7b7d', now() - interval '10 minutes')`)
	require.NoError(t, err)
	code, body = getJSON(t, ops, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body["relay"], "undispatched outbox row")
}

// Metrics are scraped after real traffic through the whole server: names and
// labels as documented, and no user ids or raw paths in any label.
func TestMetricsAfterRealTraffic(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	a := openApp(t, dbmigrate.Migrator{}, &logs)
	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(a.Ent).CreateOrganization(ctx, "metrics-org")
	require.NoError(t, err)
	key, _, err := auth.CreateAPIKey(ctx, a.Ent, org.ID, "k", auth.RoleAdmin)
	require.NoError(t, err)
	srv, err := a.HTTPServer()
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	post := func(body, requestID string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		if requestID != "" {
			req.Header.Set("X-Request-ID", requestID)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := post(`{"operationName":"NewUser","query":"mutation NewUser { createUser(input: {username: \"ann\", email: \"ann@example.com\"}) { user { id } } }"}`, "trace-1.a:b")
	require.Equal(t, "trace-1.a:b", resp.Header.Get("X-Request-ID"), "a well-formed id is honoured")
	resp = post(`{"query":"query Missing { node(id: \"USnothere\") { id } }"}`, "bad id forged=1")
	require.Regexp(t, `^[0-9a-f]{16}$`, resp.Header.Get("X-Request-ID"), "an unsafe id is replaced")
	post(`{"query":"mutation NewUser { createUser(input: {username: \"\", email: \"bad\"}) { user { id } } }"}`, "")

	// Graph calls through the one request path, observed per integration.
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/token") {
			_, _ = io.WriteString(w, `{"access_token":"t","token_type":"Bearer","expires_in":3600}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"g1"}`)
	}))
	t.Cleanup(graph.Close)
	gc, err := msgraph.New(msgraph.Config{TenantID: "tenant1", ClientID: "app", ClientSecret: "s",
		LoginBaseURL: graph.URL, GraphBaseURL: graph.URL + "/v1.0", Observer: a.Metrics.Graph("INmetrics"),
		Limiter: a.Budgets.For("tenant1/app")})
	require.NoError(t, err)
	_, err = gc.GetGroup(context.Background(), "g1")
	require.NoError(t, err)
	a.Budgets.For("tenant1/app").Penalize(context.Background(), time.Millisecond)

	// The worker registers the job, outbox and queue collectors.
	w, err := a.NewWorkerWith(worker.HandlerFunc(func(context.Context, jobs.ReconcileUser, bool) error { return nil }),
		nil, app.WorkerOptions{NoRelay: true})
	require.NoError(t, err)
	workerCtx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(workerCtx) }()
	t.Cleanup(func() { stopWorker(); <-workerDone })
	redisOpt, err := asynq.ParseRedisURI(a.Cfg.RedisConnURL())
	require.NoError(t, err)
	qc := asynq.NewClient(redisOpt)
	t.Cleanup(func() { _ = qc.Close() })
	payload, _ := json.Marshal(jobs.ReconcileUser{OrgID: org.ID, IntegrationID: "INmetrics", UserID: "USx"})
	_, err = qc.Enqueue(asynq.NewTask(jobs.KindReconcileUser, payload), w.TaskOptions()...)
	require.NoError(t, err)
	_, err = a.DB.Exec(`INSERT INTO jobs (id, created_at, updated_at, kind, status, total, done, organization_id, finished_at)
		VALUES ('JBmetrics', now() - interval '2 seconds', now(), 'BIND_USERS', 'SUCCEEDED', 1, 1, $1, now())`, org.ID)
	require.NoError(t, err)

	// An open SSE subscription is gauged while it lasts.
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- a.Hub.Run(hubCtx) }()
	t.Cleanup(func() { stopHub(); <-hubDone })
	sseReq, _ := http.NewRequest(http.MethodPost, ts.URL+"/graphql",
		strings.NewReader(`{"query":"subscription Watch { jobs { id } }"}`))
	sseReq.Header.Set("Content-Type", "application/json")
	sseReq.Header.Set("Accept", "text/event-stream")
	sseReq.Header.Set("Authorization", "Bearer "+key)
	sse, err := http.DefaultClient.Do(sseReq)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sse.Body.Close() })
	require.Equal(t, http.StatusOK, sse.StatusCode)

	// And an open websocket (graphql-transport-ws) too.
	wsConn, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(ts.URL, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	require.NoError(t, wsjson.Write(context.Background(), wsConn, map[string]any{
		"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + key}}))
	var ack map[string]any
	require.NoError(t, wsjson.Read(context.Background(), wsConn, &ack))
	require.Equal(t, "connection_ack", ack["type"])
	t.Cleanup(func() { _ = wsConn.CloseNow() })

	ops := httptest.NewServer(server.Ops(a.Metrics, a.Checks(), a.Log))
	t.Cleanup(ops.Close)
	scrape := func() string {
		mresp, err := http.Get(ops.URL + "/metrics")
		require.NoError(t, err)
		raw, _ := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		return string(raw)
	}
	var text string
	require.Eventually(t, func() bool {
		text = scrape()
		return strings.Contains(text, `dirsync_tasks_total{kind="reconcile:user:v1",outcome="ok"} 1`)
	}, 30*time.Second, 50*time.Millisecond, "the worker ran the task")
	for _, want := range []string{
		`dirsync_http_requests_total{operation="NewUser",status="200"} 2`,
		`dirsync_http_requests_total{operation="Missing",status="200"} 1`,
		`dirsync_graphql_errors_total{code="NOT_FOUND"}`,
		`dirsync_graphql_errors_total{code="BAD_USER_INPUT"}`,
		`dirsync_graphql_resolver_duration_seconds_count{field="Mutation.createUser"}`,
		`dirsync_graph_requests_total{integration="INmetrics",method="GET",status="200"} 1`,
		`dirsync_graph_request_duration_seconds_count{integration="INmetrics",method="GET"} 1`,
		`dirsync_throttle_budget_remaining{kind="read",tenant="tenant1/app"}`,
		`dirsync_graph_throttled_total{tenant="tenant1/app"} 1`,
		`dirsync_outbox_backlog 0`,
		`dirsync_subscription_connections{transport="sse"} 1`,
		`dirsync_subscription_connections{transport="websocket"} 1`,
		`dirsync_task_duration_seconds_count{kind="reconcile:user:v1"} 1`,
		`dirsync_jobs{kind="BIND_USERS",status="SUCCEEDED"} 1`,
		`dirsync_job_duration_seconds_bucket{kind="BIND_USERS",le="5"} 1`,
		`asynq_tasks_processed_total{queue="dirsync"}`,
		`dirsync_outbox_oldest_pending_age_seconds 0`,
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "ann", "no user data in labels")
	for _, line := range strings.Split(text, "\n") {
		require.NotContains(t, line, string(org.ID), "no organisation ids in labels")
	}

	// Every log line of the request carries its id.
	var sawRequestLine bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"trace-1.a:b"`) {
			sawRequestLine = true
		}
	}
	require.True(t, sawRequestLine, logs.String())
}

package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// gql runs a query or mutation over HTTP and decodes data into out.
func gql(t testing.TB, url, key, query string, vars map[string]any, out any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []any           `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(raw, &r), "%s", raw)
	require.Empty(t, r.Errors, "%s", raw)
	if out != nil {
		require.NoError(t, json.Unmarshal(r.Data, out))
	}
}

// realWorker is a worker process (internal/app's reconcile handler, asynq
// and the outbox relay) sharing the env's PostgreSQL and Redis and
// provisioning into a Graph emulator tenant.
type realWorker struct {
	e      *env
	app    *app.App
	simURL string
	creds  graphsim.Credentials
}

func (e *env) realWorker() *realWorker {
	t := e.t
	sim := graphsim.New(graphsim.Config{Seed: 7, DisableThrottling: true})
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	creds, err := sim.Bootstrap("live", "contoso.com")
	require.NoError(t, err)

	cfg := config.Defaults()
	cfg.DatabaseURL, cfg.RedisURL = e.dbURL, e.redis.URL
	cfg.SecretKey, cfg.SecretKeyID = bytes.Repeat([]byte{9}, 32), "k1"
	// The emulator is a custom Graph host on 127.0.0.1 over plain HTTP.
	cfg.AllowCustomGraphURLs, cfg.AllowInsecureGraphURLs = true, true
	cfg.ShutdownTimeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	workerApp, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	e.prefix = app.PubSubPrefixFor(cfg.RedisNamespace()) // the worker's App publishes there
	w, err := workerApp.NewWorker(app.WorkerOptions{Concurrency: 8})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		workerApp.Close()
	})
	return &realWorker{e: e, app: workerApp, simURL: simSrv.URL, creds: creds}
}

// integration creates and authorizes an integration on the emulator tenant
// through the API at url.
func (rw *realWorker) integration(url, key string) string {
	t := rw.e.t
	var created struct {
		CreateIntegration struct{ Integration struct{ ID string } }
	}
	gql(t, url, key, `mutation($in: CreateIntegrationInput!) { createIntegration(input: $in) { integration { id } } }`,
		map[string]any{"in": map[string]any{"name": "Contoso", "tenantID": rw.creds.TenantID, "clientID": rw.creds.ClientID,
			"clientSecret": rw.creds.ClientSecret, "graphBaseURL": rw.simURL + "/v1.0", "loginBaseURL": rw.simURL}}, &created)
	integ := created.CreateIntegration.Integration.ID
	gql(t, url, key, `mutation($id: ID!) { authorizeIntegration(id: $id) { integration { id status } } }`,
		map[string]any{"id": integ}, nil)
	return integ
}

func createUsers(t testing.TB, url, key string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		var u struct {
			CreateUser struct{ User struct{ ID string } }
		}
		name := fmt.Sprintf("u%03d", i)
		gql(t, url, key, `mutation($in: CreateUserInput!) { createUser(input: $in) { user { id } } }`,
			map[string]any{"in": map[string]any{"username": name, "email": name + "@contoso.com"}}, &u)
		ids[i] = u.CreateUser.User.ID
	}
	return ids
}

// The end-to-end case with the real worker: two API processes and a
// worker process (internal/app's reconcile handler, asynq and the outbox
// relay) sharing PostgreSQL and Redis, provisioning into the Graph emulator.
// A bind of 200 users made on process A is watched on process B until
// done = total and SUCCEEDED, and B's events stream carries each user's
// provisioning event.
func TestRealWorkerBindWatchedFromOtherProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rw := e.realWorker()
	a := e.api(api.Config{Deps: graph.Deps{Tenants: rw.app.Tenants}}, pubsub.HubConfig{})
	b := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	integ := rw.integration(a.url, o.admin)

	const n = 200
	ids := createUsers(t, a.url, o.admin, n)

	evSub, err := dial(t, b.ws, dialOpts{init: bearer(o.readOnly)})
	require.NoError(t, err)
	evSub.ack()
	evSub.subscribe("e", eventsQ, map[string]any{"f": map[string]any{"integrationID": integ}})
	waitFor(t, 5*time.Second, func() bool { return b.hub.Stats().Subscriptions == 1 })

	var bound struct {
		BindUsers struct{ Jobs []struct{ ID string } }
	}
	gql(t, a.url, o.admin, `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`,
		map[string]any{"i": integ, "u": ids}, &bound)
	require.Len(t, bound.BindUsers.Jobs, 1)
	jobID := bound.BindUsers.Jobs[0].ID

	jobSub, err := dial(t, b.ws, dialOpts{init: bearer(o.readOnly)})
	require.NoError(t, err)
	jobSub.ack()
	jobSub.subscribe("1", jobUpdatedQ, map[string]any{"id": jobID})
	results := jobSub.collect("1", 120*time.Second)
	require.NotEmpty(t, results)
	last := jobOut{}
	for _, r := range results {
		j := field[jobOut](t, r, "jobUpdated")
		require.GreaterOrEqual(t, j.Done, last.Done, "progress went back")
		last = j
	}
	require.Equal(t, jobOut{ID: jobID, Status: "SUCCEEDED", Done: n, Total: n}, last)
	t.Logf("real worker: %d versions of the job reached process B", len(results))

	// Every user's provisioning event reached B's events stream.
	users := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(users) < n && time.Now().Before(deadline) {
		ev := field[eventOut](t, evSub.nextResult("e", time.Until(deadline)), "events")
		if ev.Type == "user_create_provision" {
			users[ev.UserID] = true
		}
	}
	require.Len(t, users, n)
}

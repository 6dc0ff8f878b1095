package live_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/graphsim"
)

// The jobs subscription announces a new job as QUEUED — not first at
// RUNNING — through the whole stack as deployed: `dirsync serve` (the App's
// HTTP server with its middleware and Hub) and `dirsync worker` (relay,
// asynq, reconcile) as two Apps on one PostgreSQL and Redis, the emulator as
// the tenant. The announcement is made by the relay after the mutation's
// commit and before the first task is enqueued, so it cannot be overtaken.
func TestJobsSubscriptionAnnouncesNewJobAsQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := graphsim.New(graphsim.Config{Seed: 3, DisableThrottling: true})
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	creds, err := sim.Bootstrap("live", "contoso.com")
	require.NoError(t, err)

	cfg := config.Defaults()
	cfg.DatabaseURL, cfg.RedisURL = e.dbURL, e.redis.URL
	cfg.SecretKey, cfg.SecretKeyID = bytes.Repeat([]byte{7}, 32), "k1"
	cfg.AllowCustomGraphURLs, cfg.AllowInsecureGraphURLs = true, true
	cfg.ShutdownTimeout = 5 * time.Second
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	workerApp, err := app.Open(ctx, cfg, quietLog)
	require.NoError(t, err)
	w, err := workerApp.NewWorker(app.WorkerOptions{Concurrency: 4})
	require.NoError(t, err)
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(ctx) }()

	apiApp, err := app.Open(ctx, cfg, quietLog)
	require.NoError(t, err)
	hubDone := make(chan error, 1)
	go func() { hubDone <- apiApp.Hub.Run(ctx) }()
	srv, err := apiApp.HTTPServer()
	require.NoError(t, err)
	httpSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		httpSrv.CloseClientConnections()
		httpSrv.Close()
		cancel()
		<-workerDone
		<-hubDone
		workerApp.Close()
		apiApp.Close()
	})
	url := httpSrv.URL + "/graphql"
	ws := "ws" + strings.TrimPrefix(httpSrv.URL, "http") + "/graphql"
	waitFor(t, 5*time.Second, apiApp.Hub.Connected)

	o := e.org("acme")
	var created struct {
		CreateIntegration struct{ Integration struct{ ID string } }
	}
	gql(t, url, o.admin, `mutation($in: CreateIntegrationInput!) { createIntegration(input: $in) { integration { id } } }`,
		map[string]any{"in": map[string]any{"name": "Contoso", "tenantID": creds.TenantID, "clientID": creds.ClientID,
			"clientSecret": creds.ClientSecret, "graphBaseURL": simSrv.URL + "/v1.0", "loginBaseURL": simSrv.URL}}, &created)
	integ := created.CreateIntegration.Integration.ID
	gql(t, url, o.admin, `mutation($id: ID!) { authorizeIntegration(id: $id) { integration { id status } } }`,
		map[string]any{"id": integ}, nil)
	ids := make([]string, 3)
	for i := range ids {
		var u struct {
			CreateUser struct{ User struct{ ID string } }
		}
		name := fmt.Sprintf("q%d", i)
		gql(t, url, o.admin, `mutation($in: CreateUserInput!) { createUser(input: $in) { user { id } } }`,
			map[string]any{"in": map[string]any{"username": name, "email": name + "@contoso.com"}}, &u)
		ids[i] = u.CreateUser.User.ID
	}

	sub, err := dial(t, ws, dialOpts{init: bearer(o.readOnly)})
	require.NoError(t, err)
	sub.ack()
	sub.subscribe("j", jobsQ, nil)
	waitFor(t, 5*time.Second, func() bool { return apiApp.Hub.Stats().Subscriptions == 1 })

	var bound struct {
		BindUsers struct{ Jobs []struct{ ID string } }
	}
	gql(t, url, o.admin, `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`,
		map[string]any{"i": integ, "u": ids}, &bound)
	require.Len(t, bound.BindUsers.Jobs, 1)
	jobID := bound.BindUsers.Jobs[0].ID

	var seen []jobOut
	for len(seen) == 0 || seen[len(seen)-1].Status != "SUCCEEDED" {
		j := field[jobOut](t, sub.nextResult("j", 30*time.Second), "jobs")
		if j.ID == jobID {
			seen = append(seen, j)
		}
	}
	require.Equal(t, jobOut{ID: jobID, Status: "QUEUED", Total: 3}, seen[0], "the job's first message; all: %v", seen)
	require.Equal(t, jobOut{ID: jobID, Status: "SUCCEEDED", Done: 3, Total: 3}, seen[len(seen)-1])
}

package stacktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/worker"
)

// stack is one test's running service: API and worker from internal/app, an
// emulator for the tenants, and an organization with an admin and a
// read-only key.
type stack struct {
	t        *testing.T
	app      *app.App
	url      string // …/graphql
	sim      *graphsim.Sim
	simURL   string
	org      pulid.ID
	admin    string
	readOnly string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	r := testredis.New(t)
	cfg := config.Defaults()
	cfg.DatabaseURL = testdb.NewURL(t, dbmigrate.Migrator{})
	cfg.RedisURL = r.URL
	cfg.SecretKey = bytes.Repeat([]byte{7}, 32)
	cfg.AllowCustomGraphURLs, cfg.AllowInsecureGraphURLs = true, true
	var logOut io.Writer = io.Discard
	if testing.Verbose() && os.Getenv("STACKTEST_LOG") != "" {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, cfg, log)
	require.NoError(t, err)
	// Graph calls fail fast: a test's permanent failure must not back off for
	// seconds per attempt.
	a.Tenants, err = tenant.New(tenant.Config{Keyring: a.Keyring, Budgets: a.Budgets, AllowCustomURLs: true, AllowInsecureURLs: true, Logger: log,
		Retry: &msgraph.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	require.NoError(t, err)
	srv, err := a.HTTPServer()
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	w, err := a.NewWorker(app.WorkerOptions{Concurrency: 8, Tune: func(c *worker.Config) {
		c.MaxRetry, c.RetryBase, c.RetryMax, c.RelayPoll = 1, 10*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
	}})
	require.NoError(t, err)
	done := make(chan struct{}, 2)
	go func() { _ = a.Hub.Run(ctx); done <- struct{}{} }()
	go func() { _ = w.Run(ctx); done <- struct{}{} }()
	sim := graphsim.New(graphsim.Config{Seed: 7, DisableThrottling: true})
	ss := httptest.NewServer(sim)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-done
		<-done
		ss.Close()
		a.Close()
	})
	s := &stack{t: t, app: a, url: hs.URL + "/graphql", sim: sim, simURL: ss.URL}
	s.org, s.admin, s.readOnly = s.newOrg("acme")
	return s
}

func sys() context.Context { return auth.SystemContext(context.Background()) }

// newOrg creates an organization with an admin and a read-only key.
func (s *stack) newOrg(name string) (pulid.ID, string, string) {
	s.t.Helper()
	o, err := directory.New(s.app.Ent).CreateOrganization(sys(), name)
	require.NoError(s.t, err)
	admin, _, err := auth.CreateAPIKey(sys(), s.app.Ent, o.ID, "admin", auth.RoleAdmin)
	require.NoError(s.t, err)
	ro, _, err := auth.CreateAPIKey(sys(), s.app.Ent, o.ID, "reader", auth.RoleReadOnly)
	require.NoError(s.t, err)
	return o.ID, admin, ro
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string { c, _ := e.Extensions["code"].(string); return c }

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

func (s *stack) post(key, query string, vars map[string]any) gqlResponse {
	s.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(s.t, err)
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	var out gqlResponse
	require.NoError(s.t, json.Unmarshal(raw, &out), "body %s", raw)
	return out
}

// must runs a request that has to succeed and decodes data into out.
func (s *stack) must(key, query string, vars map[string]any, out any) {
	s.t.Helper()
	r := s.post(key, query, vars)
	require.Empty(s.t, r.Errors, "query %s", query)
	if out != nil {
		require.NoError(s.t, json.Unmarshal(r.Data, out))
	}
}

// fails runs a request that has to fail with exactly one error of code.
func (s *stack) fails(key, query string, vars map[string]any, code string) gqlError {
	s.t.Helper()
	r := s.post(key, query, vars)
	require.Len(s.t, r.Errors, 1, "data %s", r.Data)
	require.Equal(s.t, code, r.Errors[0].code(), "error %+v", r.Errors[0])
	return r.Errors[0]
}

// tenantIn is one emulated tenant and the authorized integration into it.
type tenantIn struct {
	name     string
	tenantID string
	id       string // integration id
}

// integration bootstraps an emulator tenant verifying domains and creates and
// authorizes an integration into it through the API with extra settings.
func (s *stack) integration(name string, domains []string, extra map[string]any) tenantIn {
	s.t.Helper()
	creds, err := s.sim.Bootstrap(strings.ToLower(name), domains...)
	require.NoError(s.t, err)
	in := map[string]any{
		"name": name, "tenantID": creds.TenantID, "clientID": creds.ClientID, "clientSecret": creds.ClientSecret,
		"graphBaseURL": s.simURL + "/v1.0", "loginBaseURL": s.simURL,
	}
	for k, v := range extra {
		in[k] = v
	}
	var out struct {
		CreateIntegration struct{ Integration struct{ ID string } }
	}
	s.must(s.admin, `mutation($in: CreateIntegrationInput!) { createIntegration(input: $in) { integration { id } } }`,
		map[string]any{"in": in}, &out)
	id := out.CreateIntegration.Integration.ID
	var auth struct {
		AuthorizeIntegration struct{ Integration struct{ Status string } }
	}
	s.must(s.admin, `mutation($id: ID!) { authorizeIntegration(id: $id) { integration { status } } }`, map[string]any{"id": id}, &auth)
	require.Equal(s.t, "AUTHORIZED", auth.AuthorizeIntegration.Integration.Status)
	return tenantIn{name: name, tenantID: creds.TenantID, id: id}
}

func (s *stack) createUser(username, email string) string {
	s.t.Helper()
	return s.createUserAs(s.admin, username, email, nil)
}

// createUserAs creates an ACTIVE user with the key, extra setting more fields.
func (s *stack) createUserAs(key, username, email string, extra map[string]any) string {
	s.t.Helper()
	in := map[string]any{
		"username": username, "email": email, "firstName": "Test", "lastName": strings.ToUpper(username[:1]) + username[1:],
		"state": "ACTIVE",
	}
	for k, v := range extra {
		in[k] = v
	}
	var out struct {
		CreateUser struct{ User struct{ ID string } }
	}
	s.must(key, `mutation($in: CreateUserInput!) { createUser(input: $in) { user { id } } }`, map[string]any{"in": in}, &out)
	return out.CreateUser.User.ID
}

type jobOut struct {
	ID      string
	Kind    string
	Status  string
	Total   int
	Failed  int
	RetryOf *struct{ ID string }
}

const jobFields = `id kind status total failed retryOf { id }`

// mutateJobs runs a mutation whose payload has jobs { … } under field and
// returns them.
func (s *stack) mutateJobs(key, field, query string, vars map[string]any) []jobOut {
	s.t.Helper()
	var out map[string]struct{ Jobs []jobOut }
	s.must(key, query, vars, &out)
	return out[field].Jobs
}

// wait polls the jobs through the API until each has ended, and returns them.
func (s *stack) wait(js ...jobOut) []jobOut {
	s.t.Helper()
	out := make([]jobOut, len(js))
	for i, j := range js {
		deadline := time.Now().Add(60 * time.Second)
		for {
			var q struct{ Job jobOut }
			s.must(s.readOnly, `query($id: ID!) { job(id: $id) { `+jobFields+` } }`, map[string]any{"id": j.ID}, &q)
			if q.Job.Status != "QUEUED" && q.Job.Status != "RUNNING" {
				out[i] = q.Job
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("job %s (%s) still %s", j.ID, j.Kind, q.Job.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// link is the user's link in an integration, nil when there is none.
func (s *stack) link(userID, integrationID string) *ent.RemoteLink {
	s.t.Helper()
	l, err := s.app.Ent.RemoteLink.Query().Where(remotelink.UserID(pulid.ID(userID)),
		remotelink.IntegrationID(pulid.ID(integrationID)), remotelink.KindEQ(remotelink.KindUSER)).Only(sys())
	if ent.IsNotFound(err) {
		return nil
	}
	require.NoError(s.t, err)
	return l
}

// remote finds the emulated user by UPN in a tenant, nil when absent.
func (s *stack) remote(tenantID, upn string) *graphsim.User {
	for _, u := range s.sim.Users(tenantID) {
		if strings.EqualFold(u.UserPrincipalName, upn) {
			return &u
		}
	}
	return nil
}

// graph is a Graph client into the integration's tenant, as an administrator
// of that tenant would use it behind our back.
func (s *stack) graph(integrationID string) *msgraph.Client {
	s.t.Helper()
	in, err := s.app.Ent.Integration.Get(sys(), pulid.ID(integrationID))
	require.NoError(s.t, err)
	gc, err := s.app.Tenants.Client(in)
	require.NoError(s.t, err)
	return gc
}

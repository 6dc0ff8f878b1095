package passwords_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/password"
	"github.com/dirsync/dirsync/internal/passwords"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/worker"
)

// fastParams keep the tests quick; the benchmark measures the real ones.
var fastParams = password.Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}

// fastSlots is the hasher's slot count in the test stack (0: its default).
var fastSlots = 0

// lockedBuffer collects the debug log of a whole stack.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stack is the whole deployment of one test: its own database and Redis DB,
// the real app (API handler through server.Handler with its middleware, the
// worker with relay, reconcile, password push and sweep), and a Graph
// emulator with two tenants.
type stack struct {
	t      testing.TB
	app    *app.App
	sim    *graphsim.Sim
	simURL string
	url    string // GraphQL endpoint
	dbURL  string
	redis  testredis.Info
	logs   *lockedBuffer
	ctx    context.Context // system
	org    pulid.ID
	admin  string
	creds  [2]graphsim.Credentials
}

type stackOpts struct {
	// limits of the portal rate limiter; zero: generous (tests log in a lot).
	account, ip redis_rate.Limit
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	s := &stack{t: t, ctx: auth.SystemContext(context.Background()), logs: &lockedBuffer{}}
	s.sim = graphsim.New(graphsim.Config{Seed: 11, DisableThrottling: true})
	simSrv := httptest.NewServer(s.sim)
	t.Cleanup(simSrv.Close)
	s.simURL = simSrv.URL
	var err error
	s.creds[0], err = s.sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)
	s.creds[1], err = s.sim.Bootstrap("fabrikam", "fabrikam.com")
	require.NoError(t, err)

	s.dbURL = testdb.NewURL(t, dbmigrate.Migrator{})
	s.redis = testredis.New(t)
	cfg := config.Defaults()
	cfg.DatabaseURL, cfg.RedisURL = s.dbURL, s.redis.URL
	cfg.SecretKey, cfg.SecretKeyID = bytes.Repeat([]byte{7}, 32), "k1"
	cfg.AllowCustomGraphURLs, cfg.AllowInsecureGraphURLs = true, true
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Argon2MemoryKiB, cfg.Argon2Iterations = int(fastParams.MemoryKiB), int(fastParams.Iterations)
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	s.app, err = app.Open(ctx, cfg, log)
	require.NoError(t, err)
	if o.account.IsZero() {
		o.account = redis_rate.PerMinute(1000)
	}
	if o.ip.IsZero() {
		o.ip = redis_rate.PerMinute(1000)
	}
	h, err := password.NewHasher(fastParams, fastSlots)
	require.NoError(t, err)
	s.app.Passwords, err = passwords.New(passwords.Config{Ent: s.app.Ent, Keyring: s.app.Keyring, Hasher: h,
		Redis: s.app.Redis, AccountLimit: o.account, IPLimit: o.ip, Logger: log})
	require.NoError(t, err)

	w, err := s.app.NewWorker(app.WorkerOptions{Concurrency: 4, Tune: func(c *worker.Config) {
		c.RetryBase, c.RetryMax, c.RelayPoll, c.MaxRetry = 100*time.Millisecond, time.Second, 200*time.Millisecond, 8
		c.PasswordSweepEvery = 300 * time.Millisecond
	}})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	srv, err := s.app.HTTPServer()
	require.NoError(t, err)
	api := httptest.NewServer(srv.Handler())
	s.url = api.URL + "/graphql"
	t.Cleanup(func() {
		api.Close()
		cancel()
		<-done
		s.app.Close()
	})

	o1, err := directory.New(s.app.Ent).CreateOrganization(s.ctx, "acme")
	require.NoError(t, err)
	s.org = o1.ID
	s.admin, _, err = auth.CreateAPIKey(s.ctx, s.app.Ent, o1.ID, "admin", auth.RoleAdmin)
	require.NoError(t, err)
	return s
}

type gqlErr struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlErr) code() string { c, _ := e.Extensions["code"].(string); return c }

type gqlRes struct {
	status int
	Data   json.RawMessage `json:"data"`
	Errors []gqlErr        `json:"errors"`
}

// do sends a GraphQL request with a bearer token (none when empty).
func (s *stack) do(token, query string, vars map[string]any) gqlRes {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	var out gqlRes
	require.NoError(s.t, json.Unmarshal(raw, &out), "%s", raw)
	out.status = res.StatusCode
	return out
}

// ok sends and requires success, decoding data into out.
func (s *stack) ok(token, query string, vars map[string]any, out any) {
	s.t.Helper()
	r := s.do(token, query, vars)
	require.Empty(s.t, r.Errors, "%s: %+v", query, r.Errors)
	if out != nil {
		require.NoError(s.t, json.Unmarshal(r.Data, out))
	}
}

// fails sends and requires exactly one error with code.
func (s *stack) fails(token, query string, vars map[string]any, code string) gqlErr {
	s.t.Helper()
	r := s.do(token, query, vars)
	require.NotEmpty(s.t, r.Errors, "%s answered %s", query, r.Data)
	require.Equal(s.t, code, r.Errors[0].code(), "%+v", r.Errors)
	return r.Errors[0]
}

// integration creates and authorizes an integration into tenant k.
func (s *stack) integration(k int, settings map[string]any) string {
	s.t.Helper()
	in := map[string]any{"name": fmt.Sprintf("M365-%d", k), "tenantID": s.creds[k].TenantID, "clientID": s.creds[k].ClientID,
		"clientSecret": s.creds[k].ClientSecret, "graphBaseURL": s.simURL + "/v1.0", "loginBaseURL": s.simURL}
	for key, v := range settings {
		in[key] = v
	}
	var out struct {
		CreateIntegration struct{ Integration struct{ ID string } }
	}
	s.ok(s.admin, `mutation($in: CreateIntegrationInput!) { createIntegration(input: $in) { integration { id } } }`,
		map[string]any{"in": in}, &out)
	id := out.CreateIntegration.Integration.ID
	s.ok(s.admin, `mutation($id: ID!) { authorizeIntegration(id: $id) { integration { id } } }`, map[string]any{"id": id}, nil)
	return id
}

// user creates a directory user (state ACTIVE or STAGED) and binds it to integ.
func (s *stack) user(name, domain, state, integ string) string {
	s.t.Helper()
	return s.userWithEmail(name, name+"@"+domain, state, integ)
}

func (s *stack) userWithEmail(name, email, state, integ string) string {
	s.t.Helper()
	var out struct {
		CreateUser struct{ User struct{ ID string } }
	}
	s.ok(s.admin, `mutation($in: CreateUserInput!) { createUser(input: $in) { user { id } } }`,
		map[string]any{"in": map[string]any{"username": name, "email": email, "state": state,
			"firstName": "Pat", "lastName": "Example"}}, &out)
	id := out.CreateUser.User.ID
	var bound struct {
		BindUsers struct{ Jobs []struct{ ID string } }
	}
	s.ok(s.admin, `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`,
		map[string]any{"i": integ, "u": []string{id}}, &bound)
	for _, j := range bound.BindUsers.Jobs {
		s.waitJob(j.ID)
	}
	return id
}

// waitJob waits until the job is finished and returns its status.
func (s *stack) waitJob(id string) string {
	s.t.Helper()
	var st string
	s.eventually(30*time.Second, func() bool {
		j, err := s.app.Ent.Job.Get(s.ctx, pulid.ID(id))
		require.NoError(s.t, err)
		st = string(j.Status)
		return j.Status != job.StatusQUEUED && j.Status != job.StatusRUNNING
	}, "job %s finished", id)
	return st
}

func (s *stack) eventually(limit time.Duration, cond func() bool, what string, args ...any) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("not within %s: "+what, append([]any{limit}, args...)...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// remote reads a user from the emulator's admin view (GET /_sim/tenants/{id}/users), by UPN.
func (s *stack) remote(k int, upn string) *graphsim.User {
	s.t.Helper()
	res, err := http.Get(s.simURL + "/_sim/tenants/" + s.creds[k].TenantID + "/users")
	require.NoError(s.t, err)
	defer res.Body.Close()
	var us []graphsim.User
	require.NoError(s.t, json.NewDecoder(res.Body).Decode(&us))
	for _, u := range us {
		if strings.EqualFold(u.UserPrincipalName, upn) {
			return &u
		}
	}
	return nil
}

// remotePassword waits until the remote user's password is want.
func (s *stack) remotePassword(k int, upn, want string) {
	s.t.Helper()
	s.eventually(30*time.Second, func() bool {
		u := s.remote(k, upn)
		return u != nil && u.Password == want
	}, "%s holds the new password", upn)
}

func (s *stack) remoteEnabled(k int, upn string, want bool) {
	s.t.Helper()
	s.eventually(30*time.Second, func() bool {
		u := s.remote(k, upn)
		return u != nil && u.AccountEnabled == want
	}, "%s accountEnabled=%v", upn, want)
}

const (
	setPw = `mutation($id: ID!, $pw: String!) { setUserPassword(id: $id, password: $pw) { user { id passwordSetAt } jobs { id kind } } }`
	login = `mutation($o: String!, $l: String!, $p: String!) { portalLogin(organization: $o, login: $l, password: $p) { token expiresAt user { id username } } }`
)

type jobRef struct{ ID, Kind string }

// setPassword sets a password as the admin and waits for the jobs it started.
func (s *stack) setPassword(id, pw string) []jobRef {
	s.t.Helper()
	var out struct {
		SetUserPassword struct{ Jobs []jobRef }
	}
	s.ok(s.admin, setPw, map[string]any{"id": id, "pw": pw}, &out)
	for _, j := range out.SetUserPassword.Jobs {
		s.waitJob(j.ID)
	}
	return out.SetUserPassword.Jobs
}

func (s *stack) login(name, pw string) string {
	s.t.Helper()
	var out struct {
		PortalLogin struct {
			Token     string
			ExpiresAt time.Time
		}
	}
	s.ok("", login, map[string]any{"o": "acme", "l": name, "p": pw}, &out)
	require.True(s.t, strings.HasPrefix(out.PortalLogin.Token, auth.SessionPrefix))
	require.WithinDuration(s.t, time.Now().Add(time.Hour), out.PortalLogin.ExpiresAt, 5*time.Minute)
	return out.PortalLogin.Token
}

// countJobs counts the organization's jobs of kind.
func (s *stack) countJobs(kind string) int {
	n, err := s.app.Ent.Job.Query().Where(job.Kind(kind)).Count(s.ctx)
	require.NoError(s.t, err)
	return n
}

// settle waits until no job is queued or running.
func (s *stack) settle() {
	s.t.Helper()
	s.eventually(30*time.Second, func() bool {
		n, err := s.app.Ent.Job.Query().Where(job.StatusIn(job.StatusQUEUED, job.StatusRUNNING)).Count(s.ctx)
		require.NoError(s.t, err)
		return n == 0
	}, "all jobs finished")
}

var _ = ent.IsNotFound

func rateLimit(perMinute int) redis_rate.Limit { return redis_rate.PerMinute(perMinute) }

func graphsimAppWithoutPasswordRight() graphsim.AppSpec {
	var perms []string
	for _, p := range graphsim.AllPermissions {
		if p != graphsim.PermUserPasswordProfileReadWrite {
			perms = append(perms, p)
		}
	}
	return graphsim.AppSpec{Name: "no-password-right", Permissions: perms, UserAdministrator: true}
}

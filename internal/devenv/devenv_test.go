package devenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/devenv"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// start prepares and runs dev until the returned stop is called.
func start(t *testing.T, cfg config.Config, stateDir string) (*devenv.Env, string, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env, err := devenv.PrepareWith(context.Background(), cfg, devenv.Options{StateDir: stateDir, GraphsimAddr: "127.0.0.1:0"}, log)
	require.NoError(t, err)
	var welcome bytes.Buffer
	env.PrintWelcome(&welcome)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.Run(ctx) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get(env.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-done)
			env.Close()
		}
	}
	t.Cleanup(stop)
	return env, welcome.String(), stop
}

func gql(t *testing.T, env *devenv.Env, query string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+env.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Data   map[string]any `json:"data"`
		Errors []any          `json:"errors"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Empty(t, out.Errors, query)
	return out.Data
}

var idRE = regexp.MustCompile(`"id":"([A-Z]{2}[0-9A-Z]{26})"`)

func firstID(t *testing.T, v any) string {
	t.Helper()
	b, _ := json.Marshal(v)
	m := idRE.FindSubmatch(b)
	require.NotNil(t, m, string(b))
	return string(m[1])
}

// TestDevTourWorksAndSurvivesARestart runs the README tour against dev: create
// a user, bind it to the ready emulator integration, the job succeeds and the
// user is in the emulated tenant. After a restart (a new, empty emulator) the
// user is provisioned again without anyone asking.
func TestDevTourWorksAndSurvivesARestart(t *testing.T) {
	t.Parallel()
	r := testredis.New(t)
	cfg := config.Defaults()
	cfg.DatabaseURL = testdb.NewURL(t, dbmigrate.Migrator{})
	cfg.RedisURL = r.URL
	cfg.Listen = freeAddr(t)
	cfg.Playground, cfg.Introspection, cfg.AllowCustomGraphURLs = true, true, true
	cfg.AllowInsecureGraphURLs = true
	stateDir := t.TempDir()

	env, welcome, stop := start(t, cfg, stateDir)
	require.NotNil(t, env.Integration)
	require.Contains(t, welcome, string(env.Integration.ID))
	require.Contains(t, welcome, "bindUsers")

	u := firstID(t, gql(t, env, `mutation { createUser(input: {username: "ann", email: "ann@contoso.com", firstName: "Ann", lastName: "Lee"}) { user { id } } }`))
	job := firstID(t, gql(t, env, fmt.Sprintf(`mutation { bindUsers(integrationID: %q, userIDs: [%q]) { jobs { id status } } }`, env.Integration.ID, u)))
	require.Eventually(t, func() bool {
		d := gql(t, env, fmt.Sprintf(`{ job(id: %q) { status } }`, job))
		return d["job"].(map[string]any)["status"] == "SUCCEEDED"
	}, 20*time.Second, 50*time.Millisecond)
	users := env.Sim.Users(env.TenantID)
	require.Len(t, users, 1)
	require.Equal(t, "ann@contoso.com", strings.ToLower(users[0].UserPrincipalName))
	stop()

	env2, _, _ := start(t, cfg, stateDir)
	require.Equal(t, env.Integration.ID, env2.Integration.ID, "the same integration, refreshed")
	require.Equal(t, env.APIKey, env2.APIKey)
	require.NotNil(t, env2.Resync, "the users it had are reconciled into the new emulator")
	require.Eventually(t, func() bool { return len(env2.Sim.Users(env2.TenantID)) == 1 }, 20*time.Second, 50*time.Millisecond)
}

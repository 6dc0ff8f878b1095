package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/testdb"
)

// env is one test's service: its own database, the real /graphql handler
// behind httptest, and a count of the SQL statements the handler ran.
type env struct {
	t       *testing.T
	client  *ent.Client
	url     string
	queries atomic.Int64
}

func newEnv(t *testing.T, cfg api.Config) *env {
	t.Helper()
	e := &env{t: t}
	db := testdb.New(t, dbmigrate.Migrator{})
	drv := dialect.DebugWithContext(entsql.OpenDB(dialect.Postgres, db), func(context.Context, ...any) {
		e.queries.Add(1)
	})
	e.client = ent.NewClient(ent.Driver(drv))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	srv := httptest.NewServer(api.NewHandler(cfg, e.client, logger))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// tenant is an organization with an admin and a read-only key.
type tenant struct {
	id       string
	admin    string
	readOnly string
}

func (e *env) tenant(name string) tenant {
	e.t.Helper()
	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(e.client).CreateOrganization(ctx, name)
	require.NoError(e.t, err)
	admin, _, err := auth.CreateAPIKey(ctx, e.client, org.ID, "admin", auth.RoleAdmin)
	require.NoError(e.t, err)
	ro, _, err := auth.CreateAPIKey(ctx, e.client, org.ID, "reader", auth.RoleReadOnly)
	require.NoError(e.t, err)
	return tenant{id: string(org.ID), admin: admin, readOnly: ro}
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (g gqlError) code() string  { s, _ := g.Extensions["code"].(string); return s }
func (g gqlError) field() string { s, _ := g.Extensions["field"].(string); return s }

type gqlResponse struct {
	status int
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

// post sends a GraphQL request with the key (none when empty).
func (e *env) post(key, query string, vars map[string]any) gqlResponse {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(e.t, err)
	req, err := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) gqlResponse {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	var out gqlResponse
	require.NoError(e.t, json.Unmarshal(raw, &out), "body: %s", raw)
	out.status = res.StatusCode
	return out
}

// must runs a request that has to succeed and decodes its data into out.
func (e *env) must(key, query string, vars map[string]any, out any) {
	e.t.Helper()
	r := e.post(key, query, vars)
	require.Empty(e.t, r.Errors, "query %s", query)
	require.Equal(e.t, http.StatusOK, r.status)
	if out != nil {
		require.NoError(e.t, json.Unmarshal(r.Data, out))
	}
}

// fails runs a request that has to fail with one error of code (and field,
// when given), and returns that error.
func (e *env) fails(key, query string, vars map[string]any, code, field string) gqlError {
	e.t.Helper()
	r := e.post(key, query, vars)
	require.Len(e.t, r.Errors, 1, "data: %s", r.Data)
	require.Equal(e.t, code, r.Errors[0].code(), "error: %+v", r.Errors[0])
	if field != "" {
		require.Equal(e.t, field, r.Errors[0].field(), "error: %+v", r.Errors[0])
	}
	return r.Errors[0]
}

const createUser = `mutation($in: CreateUserInput!) { createUser(input: $in) { user { id username email state } } }`

type userOut struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
	State    string `json:"state"`
}

func (e *env) createUser(key, username string) userOut {
	e.t.Helper()
	var out struct {
		CreateUser struct{ User userOut } `json:"createUser"`
	}
	e.must(key, createUser, map[string]any{"in": map[string]any{
		"username": username, "email": username + "@example.com",
	}}, &out)
	return out.CreateUser.User
}

const createGroup = `mutation($in: CreateUserGroupInput!) { createUserGroup(input: $in) { userGroup { id name } } }`

func (e *env) createGroup(key, name string) string {
	e.t.Helper()
	var out struct {
		CreateUserGroup struct{ UserGroup struct{ ID string } } `json:"createUserGroup"`
	}
	e.must(key, createGroup, map[string]any{"in": map[string]any{"name": name}}, &out)
	return out.CreateUserGroup.UserGroup.ID
}

const addMembers = `mutation($g: ID!, $u: [ID!]!) { addUserGroupMembers(groupID: $g, userIDs: $u) { userGroup { id members { totalCount } } } }`
const removeMembers = `mutation($g: ID!, $u: [ID!]!) { removeUserGroupMembers(groupID: $g, userIDs: $u) { userGroup { id members { totalCount } } } }`

// userCount counts an organization's users through the API.
func (e *env) userCount(key string) int {
	e.t.Helper()
	var out struct {
		Users struct{ TotalCount int } `json:"users"`
	}
	e.must(key, `{ users { totalCount } }`, nil, &out)
	return out.Users.TotalCount
}

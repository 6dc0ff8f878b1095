package queueui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	_ "github.com/dirsync/dirsync/ent/runtime"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/queueui"
	"github.com/dirsync/dirsync/internal/server"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
)

// Issue 13: the asynq dashboard at /admin/queues, through the whole server:
// refused without a valid key, the UI for an admin key (bearer or as the
// Basic password a browser asks for), views only for a read-only key.
func TestQueueDashboardBehindAPIKeys(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, dbmigrate.Migrator{})
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	rinfo := testredis.New(t)
	redisOpt := asynq.RedisClientOpt{Addr: rinfo.Addr, DB: rinfo.DB}
	// A queue with a task, so the dashboard has something to show.
	q := asynq.NewClient(redisOpt)
	t.Cleanup(func() { _ = q.Close() })
	_, err := q.Enqueue(asynq.NewTask("probe", nil), asynq.Queue("default"))
	require.NoError(t, err)

	sys := auth.SystemContext(context.Background())
	o, err := directory.New(client).CreateOrganization(sys, "acme")
	require.NoError(t, err)
	admin, _, err := auth.CreateAPIKey(sys, client, o.ID, "admin", auth.RoleAdmin)
	require.NoError(t, err)
	reader, _, err := auth.CreateAPIKey(sys, client, o.ID, "reader", auth.RoleReadOnly)
	require.NoError(t, err)

	ui := queueui.New(redisOpt, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(ui.Close)
	srv, err := server.New(server.Config{GraphQL: http.NotFoundHandler(), Queues: ui, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	do := func(method, path string, set func(*http.Request)) (int, string) {
		req, err := http.NewRequest(method, ts.URL+path, nil)
		require.NoError(t, err)
		if set != nil {
			set(req)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	bearer := func(k string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+k) }
	}
	basic := func(k string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth("me", k) } }

	for name, set := range map[string]func(*http.Request){
		"no key": nil, "unknown key": bearer("dsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "bad basic": basic("nope"),
	} {
		status, _ := do(http.MethodGet, "/admin/queues", set)
		require.Equal(t, http.StatusUnauthorized, status, name)
		status, _ = do(http.MethodGet, "/admin/queues/api/queues", set)
		require.Equal(t, http.StatusUnauthorized, status, name)
	}

	status, page := do(http.MethodGet, "/admin/queues", bearer(admin))
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, strings.ToLower(page), "<html")
	status, body := do(http.MethodGet, "/admin/queues/api/queues", basic(admin))
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `"queue":"default"`)
	require.Contains(t, body, `"pending":1`)

	status, body = do(http.MethodGet, "/admin/queues/api/queues", basic(reader))
	require.Equal(t, http.StatusOK, status, "read-only keys view")
	require.Contains(t, body, `"pending":1`)
	status, _ = do(http.MethodPost, "/admin/queues/api/queues/default:pause", basic(reader))
	require.Equal(t, http.StatusMethodNotAllowed, status, "read-only keys change nothing")
	status, _ = do(http.MethodPost, "/admin/queues/api/queues/default:pause", bearer(admin))
	require.Less(t, status, 300, "an admin key may act")
}

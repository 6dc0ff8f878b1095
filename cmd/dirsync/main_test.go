package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
)

func TestUsageListsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"help"}, &out))
	for _, cmd := range []string{"dev", "serve", "worker", "migrate", "org", "apikey", "graphsim", "healthcheck", "version"} {
		require.Contains(t, out.String(), "dirsync "+cmd)
	}
}

// TestWorkerStartsAndStopsOnSignal wires `dirsync worker` from the environment
// and stops it as SIGTERM would (context cancelled).
func TestWorkerStartsAndStopsOnSignal(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("DIRSYNC_DATABASE_URL", testdb.NewURL(t, dbmigrate.Migrator{}))
	t.Setenv("DIRSYNC_REDIS_URL", testredis.New(t).URL)
	t.Setenv("DIRSYNC_SECRET_KEY", base64.StdEncoding.EncodeToString(key))
	t.Setenv("DIRSYNC_LOG_LEVEL", "error")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, run(ctx, []string{"worker", "--concurrency", "2"}, &bytes.Buffer{}))
	require.Less(t, time.Since(start), 10*time.Second)

	t.Setenv("DIRSYNC_SECRET_KEY", "")
	err := run(context.Background(), []string{"worker"}, &bytes.Buffer{})
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "DIRSYNC_SECRET_KEY"), err.Error())
}

// `org create` of a taken name and `apikey create` for an unknown
// organization fail with one clear line (main prints it and exits 1), not a
// database error; nothing is created.
func TestOrgCommandsReportPlainErrors(t *testing.T) {
	t.Setenv("DIRSYNC_DATABASE_URL", testdb.NewURL(t, dbmigrate.Migrator{}))
	t.Setenv("DIRSYNC_REDIS_URL", testredis.New(t).URL)
	t.Setenv("DIRSYNC_LOG_LEVEL", "error")
	ctx := context.Background()
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"org", "create", "acme"}, &out))
	require.Contains(t, out.String(), `organization "acme" created`)

	for _, name := range []string{"acme", " acme "} {
		out.Reset()
		err := run(ctx, []string{"org", "create", name}, &out)
		require.Error(t, err)
		require.Equal(t, `an organization named "acme" already exists`, err.Error())
		require.Empty(t, out.String())
	}
	err := run(ctx, []string{"org", "create", "  "}, &out)
	require.Error(t, err)
	require.Equal(t, "name must not be empty", err.Error())

	err = run(ctx, []string{"apikey", "create", "--org", "nope", "--role", "admin"}, &out)
	require.Error(t, err)
	require.Equal(t, `organization "nope" not found`, err.Error())
	require.Empty(t, out.String(), "no key printed")

	require.NoError(t, run(ctx, []string{"apikey", "create", "--org", " acme", "--role", "readonly"}, &out))
	require.Contains(t, out.String(), "shown once")
}

func TestVersionAndHealthcheck(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), []string{arg}, &out))
		require.Contains(t, out.String(), "dirsync ")
		require.Contains(t, out.String(), "commit:")
		require.Contains(t, out.String(), "built:")
	}
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) }))
	defer ok.Close()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"healthcheck", "--url", ok.URL + "/healthz"}, &out))
	red := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer red.Close()
	require.Error(t, run(context.Background(), []string{"healthcheck", "--url", red.URL + "/readyz"}, &out))
	require.Equal(t, "127.0.0.1:8080", localAddr(":8080", "x"))
	require.Equal(t, "10.0.0.1:80", localAddr("10.0.0.1:80", "x"))
}

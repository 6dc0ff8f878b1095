package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/testdb"
	"github.com/dirsync/dirsync/internal/testredis"
	"github.com/dirsync/dirsync/internal/worker"
)

// deployment opens an App as `dirsync serve`/`worker` would, on the shared
// Redis server (URL database 0) with DIRSYNC_REDIS_DB = db.
func deployment(t *testing.T, addr string, db int) (*app.App, asynq.RedisClientOpt) {
	t.Helper()
	cfg := config.Defaults()
	cfg.DatabaseURL = testdb.NewURL(t, dbmigrate.Migrator{})
	cfg.RedisURL, cfg.RedisDB = "redis://"+addr+"/0", db
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	var workerRedis asynq.RedisConnOpt
	_, err = a.NewWorkerWith(worker.HandlerFunc(func(context.Context, jobs.ReconcileUser, bool) error { return nil }), nil,
		app.WorkerOptions{Tune: func(c *worker.Config) { workerRedis = c.Redis }})
	require.NoError(t, err)
	return a, workerRedis.(asynq.RedisClientOpt)
}

// Two deployments on one Redis server with different DIRSYNC_REDIS_DB: the
// API's client (pub/sub, throttle budgets) and the worker's asynq use the
// same database within a deployment, and neither deployment's live updates
// reach the other's subscribers, even for the same organisation id (a
// restored copy).
func TestRedisDBSeparatesDeployments(t *testing.T) {
	t.Parallel()
	ra, rb := testredis.New(t), testredis.New(t)
	a, aWorker := deployment(t, ra.Addr, ra.DB)
	b, bWorker := deployment(t, rb.Addr, rb.DB)
	require.Equal(t, ra.DB, a.Redis.Options().DB)
	require.Equal(t, ra.DB, aWorker.DB, "worker and API share the namespace")
	require.Equal(t, rb.DB, b.Redis.Options().DB)
	require.Equal(t, rb.DB, bWorker.DB)

	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- a.Hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-hubDone })
	got := make(chan string, 100)
	sub, err := a.Hub.SubscribeFunc(ctx, "ORsame", nil, func(m *pubsub.Message) bool {
		if m.Kind != pubsub.KindResync {
			got <- m.ID
		}
		return true
	}, func(error) {})
	require.NoError(t, err)
	defer sub.Close()
	msg := func(id string) pubsub.Message {
		return pubsub.Message{Kind: pubsub.KindJob, OrgID: "ORsame", ID: id, At: time.Now(), Data: []byte(`{}`)}
	}
	// Until A's hub is listening: A's own messages arrive.
	require.Eventually(t, func() bool {
		require.NoError(t, a.Publisher.Publish(ctx, msg("A1")))
		select {
		case id := <-got:
			return id == "A1"
		case <-time.After(50 * time.Millisecond):
			return false
		}
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, b.Publisher.Publish(ctx, msg("B")))
	require.NoError(t, a.Publisher.Publish(ctx, msg("A2")))
	for id := range got {
		require.NotEqual(t, "B", id, "a message of the other deployment arrived")
		if id == "A2" {
			break
		}
	}
}

package pubsub_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is one test's Redis database and channel prefix; several hubs and
// publishers on it stand for several processes.
type env struct {
	t      testing.TB
	info   testredis.Info
	prefix string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return &env{t: t, info: testredis.New(t), prefix: "test:" + randomHex(6) + ":"}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *env) client(mod ...func(*redis.Options)) *redis.Client {
	opts := e.info.Options()
	for _, f := range mod {
		f(opts)
	}
	rdb := redis.NewClient(opts)
	e.t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func (e *env) publisher() *pubsub.Publisher { return pubsub.NewPublisher(e.client(), e.prefix) }

// hub starts a Hub on its own client, waits until it is subscribed, and
// stops it when the test ends.
func (e *env) hub(cfg pubsub.HubConfig, mod ...func(*redis.Options)) *pubsub.Hub {
	e.t.Helper()
	if cfg.Client == nil {
		cfg.Client = e.client(mod...)
	}
	cfg.Prefix = e.prefix
	h := pubsub.NewHub(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = h.Run(ctx) })
	e.t.Cleanup(func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			e.t.Errorf("Hub.Run: %v", runErr)
		}
	})
	waitFor(e.t, 5*time.Second, h.Connected)
	return h
}

func waitFor(t testing.TB, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv returns the next message or fails the test after limit.
func recv(t testing.TB, s *pubsub.Subscription, limit time.Duration) pubsub.Message {
	t.Helper()
	select {
	case m, ok := <-s.C():
		require.True(t, ok, "subscription closed early: %v", s.Err())
		return m
	case <-time.After(limit):
		t.Fatalf("no message within %s", limit)
		return pubsub.Message{}
	}
}

// drainUntilClosed reads until C closes and returns what it read.
func drainUntilClosed(t testing.TB, s *pubsub.Subscription, limit time.Duration) []pubsub.Message {
	t.Helper()
	var got []pubsub.Message
	timeout := time.After(limit)
	for {
		select {
		case m, ok := <-s.C():
			if !ok {
				return got
			}
			got = append(got, m)
		case <-timeout:
			t.Fatalf("subscription not closed within %s (read %d)", limit, len(got))
		}
	}
}

// assertQuiet fails if s receives anything within d.
func assertQuiet(t testing.TB, s *pubsub.Subscription, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if ok {
			t.Fatalf("unexpected message %+v", m)
		}
		t.Fatalf("subscription closed: %v", s.Err())
	case <-time.After(d):
	}
}

package pubsub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// Two hubs on separate clients stand for two API processes: a message a
// worker publishes reaches subscribers of both (issue 5 fan-out).
func TestPublishReachesEveryProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hubA, hubB := e.hub(pubsub.HubConfig{}), e.hub(pubsub.HubConfig{})
	subA, err := hubA.Subscribe(t.Context(), "org1", nil)
	require.NoError(t, err)
	subB, err := hubB.Subscribe(t.Context(), "org1", nil)
	require.NoError(t, err)

	at := time.Now().Add(-time.Second).Round(time.Microsecond)
	want := pubsub.Message{Kind: pubsub.KindJob, OrgID: "org1", ID: "job-7", Seq: 3, At: at,
		Data: json.RawMessage(`{"id":"job-7","status":"RUNNING","done":3,"total":10}`)}
	require.NoError(t, e.publisher().Publish(t.Context(), want))

	for _, s := range []*pubsub.Subscription{subA, subB} {
		got := recv(t, s, 2*time.Second)
		assert.True(t, want.At.Equal(got.At), "At %v != %v", got.At, want.At)
		got.At = want.At
		assert.Equal(t, want, got)
	}
	assert.EqualValues(t, 1, hubA.Stats().Delivered)
}

// O1: a subscriber never sees another organisation's messages, whichever way
// they are addressed, and sees all of its own in publish order.
func TestOrganisationIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.hub(pubsub.HubConfig{})
	orgs := []string{"A", "B", "A:x"} // "A:x" must not match a prefix of "A"
	subs := map[string]*pubsub.Subscription{}
	for _, org := range orgs {
		s, err := h.Subscribe(t.Context(), org, nil, pubsub.WithBuffer(2000))
		require.NoError(t, err)
		subs[org] = s
	}

	// Mis-addressed: channel of A, body claiming B. A publisher bug must
	// not leak B's data to A nor reach B.
	rdb := e.client()
	bad, _ := json.Marshal(pubsub.Message{Kind: pubsub.KindEvent, OrgID: "B", ID: "leak"})
	require.NoError(t, rdb.Publish(t.Context(), pubsub.Channel(e.prefix, "A"), bad).Err())
	// Same org under another deployment's prefix.
	require.NoError(t, pubsub.NewPublisher(rdb, "other:"+e.prefix).Publish(t.Context(),
		pubsub.Message{Kind: pubsub.KindEvent, OrgID: "A", ID: "foreign"}))

	const perOrg = 500
	pub := e.publisher()
	for i := range perOrg {
		for _, org := range orgs {
			require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindEvent, OrgID: org, ID: fmt.Sprintf("%s-%d", org, i), Seq: int64(i)}))
		}
	}
	for _, org := range orgs {
		s := subs[org]
		for i := range perOrg {
			m := recv(t, s, 5*time.Second)
			require.Equal(t, org, m.OrgID)
			require.Equal(t, fmt.Sprintf("%s-%d", org, i), m.ID, "order or isolation broken")
		}
		assertQuiet(t, s, 50*time.Millisecond)
	}
	assert.EqualValues(t, 1, h.Stats().Invalid)
}

func TestFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.hub(pubsub.HubConfig{})
	onlyJob := func(id string) func(pubsub.Message) bool {
		return func(m pubsub.Message) bool { return m.Kind == pubsub.KindJob && m.ID == id }
	}
	job2, err := h.Subscribe(t.Context(), "o", onlyJob("2"))
	require.NoError(t, err)
	events, err := h.Subscribe(t.Context(), "o", func(m pubsub.Message) bool { return m.Kind == pubsub.KindEvent })
	require.NoError(t, err)

	pub := e.publisher()
	for i := range 5 {
		for _, kind := range []string{pubsub.KindJob, pubsub.KindEvent} {
			require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: kind, OrgID: "o", ID: fmt.Sprint(i)}))
		}
	}
	m := recv(t, job2, 2*time.Second)
	assert.Equal(t, pubsub.KindJob, m.Kind)
	assert.Equal(t, "2", m.ID)
	for i := range 5 {
		m := recv(t, events, 2*time.Second)
		assert.Equal(t, pubsub.KindEvent, m.Kind)
		assert.Equal(t, fmt.Sprint(i), m.ID)
	}
	assertQuiet(t, job2, 50*time.Millisecond)
	assertQuiet(t, events, 10*time.Millisecond)
}

// Concurrent publishers (several workers) interleave, but each one's
// messages arrive in its own order.
func TestOrderPerPublisher(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.hub(pubsub.HubConfig{})
	const publishers, each = 4, 250
	s, err := h.Subscribe(t.Context(), "o", nil, pubsub.WithBuffer(publishers*each))
	require.NoError(t, err)

	var wg sync.WaitGroup
	for p := range publishers {
		pub := e.publisher()
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, pub.Publish(context.Background(), pubsub.Message{Kind: pubsub.KindJob, OrgID: "o", ID: fmt.Sprint(p), Seq: int64(i)}))
			}
		})
	}
	wg.Wait()
	next := map[string]int64{}
	for range publishers * each {
		m := recv(t, s, 5*time.Second)
		require.Equal(t, next[m.ID], m.Seq, "publisher %s out of order", m.ID)
		next[m.ID]++
	}
	for p := range publishers {
		assert.EqualValues(t, each, next[fmt.Sprint(p)])
	}
}

// A stalled subscriber is cut off with ErrSlowConsumer once its buffer is
// full, while the Hub keeps serving a fast subscriber everything in order.
func TestSlowConsumerDisconnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.hub(pubsub.HubConfig{})
	slow, err := h.Subscribe(t.Context(), "o", nil, pubsub.WithBuffer(16))
	require.NoError(t, err)
	fast, err := h.Subscribe(t.Context(), "o", nil)
	require.NoError(t, err)

	const n = 400
	received := make(chan int, 1)
	go func() {
		count := 0
		for m := range fast.C() {
			if m.Seq != int64(count) {
				break
			}
			count++
			if count == n {
				break
			}
		}
		received <- count
	}()
	pub := e.publisher()
	for i := range n {
		require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindEvent, OrgID: "o", Seq: int64(i)}))
	}
	select {
	case count := <-received:
		assert.Equal(t, n, count, "fast subscriber missed or reordered messages")
	case <-time.After(5 * time.Second):
		t.Fatal("fast subscriber did not receive everything")
	}
	buffered := drainUntilClosed(t, slow, time.Second)
	assert.Len(t, buffered, 16, "the slow subscriber keeps what was queued before the overflow")
	assert.ErrorIs(t, slow.Err(), pubsub.ErrSlowConsumer)
	assert.NoError(t, fast.Err())
	st := h.Stats()
	assert.EqualValues(t, 1, st.SlowConsumers)
	assert.Equal(t, 1, st.Subscriptions)
}

// Issue 5 leak test at this layer: subscriptions that end by Close or by
// context cancellation leave no goroutine and no bookkeeping behind. Not
// parallel: goroutine counts are process-wide.
func TestSubscribeCyclesLeaveNothingBehind(t *testing.T) {
	e := newEnv(t)
	h := e.hub(pubsub.HubConfig{MaxPerKey: 2})
	pub := e.publisher()
	keep, err := h.Subscribe(t.Context(), "o", nil)
	require.NoError(t, err)
	baseline := runtime.NumGoroutine()
	ignore := goleak.IgnoreCurrent()

	for i := range 500 {
		ctx, cancel := context.WithCancel(t.Context())
		// The same key throughout: a leaked count would hit the cap of 2.
		s, err := h.Subscribe(ctx, fmt.Sprintf("org-%d", i%7), nil, pubsub.WithKey("k"))
		require.NoError(t, err)
		if i%50 == 0 {
			require.NoError(t, pub.Publish(ctx, pubsub.Message{Kind: pubsub.KindJob, OrgID: "o", Seq: int64(i)}))
		}
		if i%2 == 0 {
			s.Close()
			cancel()
			<-drainDone(s)
			assert.NoError(t, s.Err())
		} else {
			cancel()
			<-drainDone(s)
			assert.ErrorIs(t, s.Err(), context.Canceled)
		}
	}
	for range 10 {
		recv(t, keep, 2*time.Second)
	}
	waitFor(t, 3*time.Second, func() bool { return runtime.NumGoroutine() <= baseline })
	goleak.VerifyNone(t, ignore)
	st := h.Stats()
	assert.Equal(t, 1, st.Subscriptions)
	assert.Equal(t, 1, st.Orgs)
}

func drainDone(s *pubsub.Subscription) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range s.C() {
		}
		close(done)
	}()
	return done
}

// The Hub outlives its Redis connection: after CLIENT KILL it reconnects,
// tells subscribers to resync (through their filters), and delivers again.
func TestHubSurvivesConnectionKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "pubsubtest" + randomHex(6)
	h := e.hub(pubsub.HubConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		func(o *redis.Options) { o.ClientName = name })
	s, err := h.Subscribe(t.Context(), "o", func(m pubsub.Message) bool { return m.ID != "hidden" })
	require.NoError(t, err)
	pub := e.publisher()
	require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindJob, OrgID: "o", ID: "before"}))
	assert.Equal(t, "before", recv(t, s, 2*time.Second).ID)

	// Kill only this hub's connection: other packages' tests (asynq) share
	// the server and have pub/sub connections of their own.
	admin := e.client()
	id := pubsubClientID(t, admin, name)
	require.NoError(t, admin.Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub", "ID", id).Err())

	m := recv(t, s, 5*time.Second)
	assert.Equal(t, pubsub.KindResync, m.Kind)
	assert.Equal(t, "o", m.OrgID)
	require.True(t, h.Connected())
	assert.NotEqual(t, id, pubsubClientID(t, admin, name), "a new connection")
	assert.EqualValues(t, 2, h.Stats().Connects)

	require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindJob, OrgID: "o", ID: "hidden"}))
	require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindJob, OrgID: "o", ID: "after"}))
	assert.Equal(t, "after", recv(t, s, 2*time.Second).ID)
	assert.NoError(t, s.Err())
}

func pubsubClientID(t *testing.T, rdb *redis.Client, name string) string {
	t.Helper()
	list, err := rdb.Do(t.Context(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	require.NoError(t, err)
	for line := range strings.Lines(list) {
		fields := strings.Fields(line)
		if !containsField(fields, "name="+name) {
			continue
		}
		for _, f := range fields {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				return id
			}
		}
	}
	t.Fatalf("no pub/sub connection named %s", name)
	return ""
}

func containsField(fields []string, f string) bool {
	for _, x := range fields {
		if x == f {
			return true
		}
	}
	return false
}

// Subscriptions made while Redis is unreachable (here: before Run) learn
// through a resync that they may have missed something.
func TestResyncAfterFirstConnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := pubsub.NewHub(pubsub.HubConfig{Client: e.client(), Prefix: e.prefix})
	s, err := h.Subscribe(t.Context(), "o", func(pubsub.Message) bool { return false })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	assert.Equal(t, pubsub.KindResync, recv(t, s, 5*time.Second).Kind)

	// Run's end closes everything and refuses newcomers.
	cancel()
	require.NoError(t, <-done)
	drainUntilClosed(t, s, time.Second)
	assert.ErrorIs(t, s.Err(), pubsub.ErrHubClosed)
	_, err = h.Subscribe(t.Context(), "o", nil)
	assert.ErrorIs(t, err, pubsub.ErrHubClosed)
	assert.Error(t, h.Run(t.Context()), "Run twice")
}

func TestCapPerKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.hub(pubsub.HubConfig{MaxPerKey: 3})
	var subs []*pubsub.Subscription
	for i := range 3 {
		s, err := h.Subscribe(t.Context(), fmt.Sprint("org", i), nil, pubsub.WithKey("key1"))
		require.NoError(t, err)
		subs = append(subs, s)
	}
	_, err := h.Subscribe(t.Context(), "org0", nil, pubsub.WithKey("key1"))
	require.ErrorIs(t, err, pubsub.ErrTooManySubscriptions)
	_, err = h.Subscribe(t.Context(), "org0", nil, pubsub.WithKey("key2"))
	require.NoError(t, err, "caps are per key")
	_, err = h.Subscribe(t.Context(), "org0", nil)
	require.NoError(t, err, "unkeyed subscriptions are not counted")

	subs[1].Close()
	_, err = h.Subscribe(t.Context(), "org0", nil, pubsub.WithKey("key1"))
	require.NoError(t, err, "a closed subscription frees its slot")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = h.Subscribe(ctx, "org0", nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestPublishRejectsBadMessages(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	pub := pubsub.NewPublisher(rdb, "p:")
	for _, m := range []pubsub.Message{
		{OrgID: "o"},
		{Kind: pubsub.KindJob},
		{Kind: pubsub.KindResync, OrgID: "o"},
	} {
		assert.Error(t, pub.Publish(t.Context(), m), "%+v", m)
	}
}

// A Redis that accepts connections but never answers must not stall the
// worker that publishes: the context deadline, else DefaultPublishTimeout,
// bounds the call.
func TestPublishDoesNotBlock(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Wait()
		for _, c := range held {
			_ = c.Close()
		}
	})
	// Without ContextTimeoutEnabled go-redis ignores context deadlines and
	// only its own Dial/Read/WriteTimeout (5 s/3 s/3 s) bound the call.
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	pub := pubsub.NewPublisher(rdb, "p:")
	msg := pubsub.Message{Kind: pubsub.KindJob, OrgID: "o"}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.Error(t, pub.Publish(ctx, msg))
	assert.Less(t, time.Since(start), 600*time.Millisecond)

	start = time.Now()
	assert.Error(t, pub.Publish(t.Context(), msg))
	assert.Less(t, time.Since(start), pubsub.DefaultPublishTimeout+500*time.Millisecond)
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	h := pubsub.NewHub(pubsub.HubConfig{MaxPerKey: -2})
	err := h.Run(t.Context())
	require.ErrorContains(t, err, "Client is required")
	require.ErrorContains(t, err, "MaxPerKey")
	_, err = h.Subscribe(t.Context(), "o", nil)
	require.ErrorIs(t, err, pubsub.ErrHubClosed)
}

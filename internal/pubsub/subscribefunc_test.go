package pubsub_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// funcQueue is a SubscribeFunc consumer with a bounded queue of pointers.
type funcQueue struct {
	q      chan *pubsub.Message
	mu     sync.Mutex
	ends   int
	reason error
	ended  chan struct{}
}

func newFuncQueue(n int) *funcQueue {
	return &funcQueue{q: make(chan *pubsub.Message, n), ended: make(chan struct{})}
}

func (f *funcQueue) deliver(m *pubsub.Message) bool {
	select {
	case f.q <- m:
		return true
	default:
		return false
	}
}

func (f *funcQueue) end(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends++
	f.reason = err
	if f.ends == 1 {
		close(f.ended)
	}
}

func (f *funcQueue) waitEnd(t *testing.T) error {
	t.Helper()
	select {
	case <-f.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("end not called")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 1, f.ends, "end is called once")
	return f.reason
}

func TestSubscribeFunc(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.hub(pubsub.HubConfig{})
	pub := e.publisher()

	// Resync, filter, order and one shared message for every subscriber.
	a, b := newFuncQueue(64), newFuncQueue(64)
	ctx, cancel := context.WithCancel(t.Context())
	sa, err := h.SubscribeFunc(ctx, "o", func(m pubsub.Message) bool { return m.Kind == pubsub.KindEvent }, a.deliver, a.end, pubsub.WithKey("k"))
	require.NoError(t, err)
	assert.Nil(t, sa.C())
	sb, err := h.SubscribeFunc(t.Context(), "o", nil, b.deliver, b.end)
	require.NoError(t, err)
	require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindJob, OrgID: "o", ID: "j"}))
	for i := range 5 {
		require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindEvent, OrgID: "o", Seq: int64(i)}))
	}
	for i := range 5 {
		select {
		case m := <-a.q:
			assert.Equal(t, int64(i), m.Seq)
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
	}
	var fromB []*pubsub.Message
	waitFor(t, 5*time.Second, func() bool { return len(b.q) == 6 })
	for range 6 {
		fromB = append(fromB, <-b.q)
	}
	assert.Equal(t, pubsub.KindJob, fromB[0].Kind, "no filter: everything")

	// Cancellation ends it with the context's error; no deliver after end.
	cancel()
	assert.ErrorIs(t, a.waitEnd(t), context.Canceled)
	assert.ErrorIs(t, sa.Err(), context.Canceled)

	// A queue that stays full ends it with ErrSlowConsumer.
	slow := newFuncQueue(4)
	ss, err := h.SubscribeFunc(t.Context(), "o", nil, slow.deliver, slow.end)
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, pub.Publish(t.Context(), pubsub.Message{Kind: pubsub.KindEvent, OrgID: "o", Seq: int64(i)}))
	}
	assert.ErrorIs(t, slow.waitEnd(t), pubsub.ErrSlowConsumer)
	assert.ErrorIs(t, ss.Err(), pubsub.ErrSlowConsumer)
	assert.Len(t, slow.q, 4, "what was queued before the overflow stays")

	// Close ends it with nil, once.
	sb.Close()
	sb.Close()
	assert.NoError(t, b.waitEnd(t))
	waitFor(t, 5*time.Second, func() bool { return h.Stats().Subscriptions == 0 })
}

package live

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// The queue of a stream: messages go through step in order, the bound
// refuses the message beyond it (the Hub then ends the subscription as a
// slow consumer), and a drained queue holds no memory (issue 12).
func TestPumpQueueBoundOrderAndRelease(t *testing.T) {
	const limit = 8
	p := newPump(limit)
	gate := make(chan struct{})
	got := make(chan int64, 100)
	finished := make(chan error, 1)
	p.step = func(m *pubsub.Message) bool {
		<-gate
		got <- m.Seq
		return true
	}
	p.stop = func() { t.Error("stop: no step returned false") }
	p.finish = func(reason error) { finished <- reason }

	// Queued before start (the stream's setup): held, not handled.
	for i := range limit {
		require.True(t, p.deliver(&pubsub.Message{Seq: int64(i)}))
	}
	require.False(t, p.deliver(&pubsub.Message{Seq: 99}), "beyond the bound")
	p.start()
	// The drain hands over the first, then takes the second and waits in
	// step: two slots are free.
	gate <- struct{}{}
	require.Equal(t, int64(0), <-got)
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.q)-p.head == limit-2
	}, time.Second, time.Millisecond)
	require.True(t, p.deliver(&pubsub.Message{Seq: limit}))
	require.True(t, p.deliver(&pubsub.Message{Seq: limit + 1}))
	require.False(t, p.deliver(&pubsub.Message{Seq: 99}), "full again")
	for i := 1; i <= limit+1; i++ {
		gate <- struct{}{}
		require.Equal(t, int64(i), <-got)
	}
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.running && p.q == nil
	}, time.Second, time.Millisecond, "an idle stream holds no queue and no drain")

	// A client that stays a little behind never empties the queue: the
	// consumed front is reused, so the slice stays within about twice the bound.
	close(gate)
	for i := range 10 * limit {
		for !p.deliver(&pubsub.Message{Seq: int64(limit + 2 + i)}) {
			time.Sleep(time.Microsecond)
		}
		p.mu.Lock()
		require.LessOrEqual(t, cap(p.q), 2*limit+1)
		p.mu.Unlock()
	}
	for i := range 10 * limit {
		require.Equal(t, int64(limit+2+i), <-got)
	}
	p.end(nil)
	require.NoError(t, <-finished)
}

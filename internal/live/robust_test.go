package live_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/live"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// fakeEvent publishes an event message without a row: streams forward the
// message's data, so this is all a subscriber sees of a real one.
func (e *env) publishEvent(t testing.TB, o pulid.ID, detail string) {
	t.Helper()
	ev := &ent.Event{ID: pulid.New("EV"), OrganizationID: o, Type: "user_update_provision", Detail: detail,
		CreatedAt: time.Now(), UpdatedAt: time.Now()}
	data, err := json.Marshal(ev)
	require.NoError(t, err)
	require.NoError(t, e.pub.Publish(context.Background(), pubsub.Message{Kind: pubsub.KindEvent, OrgID: string(o), ID: string(ev.ID), Data: data}))
}

// A client that stops reading fills its socket, then its queue of
// live.DefaultBuffer messages, and is cut off: its subscription ends
// (SLOW_CONSUMER) and its websocket is closed with 4503, while a healthy
// subscriber of the same organisation on the same process receives
// everything and publishing never waits (issue 12).
func TestStalledClientIsCutOffOthersUnaffected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	const q = `subscription { events { id detail } }`

	fast, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	fast.ack()
	fast.subscribe("f", q, nil)

	// The stalled client: reads its ack, subscribes, then never reads again.
	ctx := context.Background()
	stalled, _, err := websocket.Dial(ctx, p.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	stalled.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = stalled.CloseNow() })
	write := func(m wsMsg) {
		b, _ := json.Marshal(m)
		require.NoError(t, stalled.Write(ctx, websocket.MessageText, b))
	}
	write(wsMsg{Type: "connection_init", Payload: mustJSON(bearer(o.admin))})
	_, ack, err := stalled.Read(ctx)
	require.NoError(t, err)
	require.Contains(t, string(ack), "connection_ack")
	write(wsMsg{ID: "s", Type: "subscribe", Payload: mustJSON(map[string]any{"query": q})})
	waitFor(t, 5*time.Second, func() bool { return p.hub.Stats().Subscriptions == 2 })

	// Once it is cut off, the stalled client reads again: what was queued,
	// then the close frame (the server gives a close frame 5 s to get out).
	type ending struct {
		nexts, slow int
		err         error
	}
	stalledEnd := make(chan ending, 1)
	go func() {
		var r ending
		for p.hub.Stats().SlowConsumers == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, data, err := stalled.Read(rctx)
			cancel()
			if err != nil {
				r.err = err
				stalledEnd <- r
				return
			}
			var m wsMsg
			if json.Unmarshal(data, &m) == nil && m.Type == "next" {
				r.nexts++
				if strings.Contains(string(m.Payload), "SLOW_CONSUMER") {
					r.slow++
				}
			}
		}
	}()

	// 1,500 × 4 KB ≈ 6 MB: more than the socket buffers of a connection
	// whose reader never reads (receive-buffer autotuning needs reads),
	// beyond the queue's bound.
	n := live.DefaultBuffer + 1500
	detail := strings.Repeat("x", 4<<10)
	got := make(chan int)
	go func() {
		count := 0
		for count < n {
			m, ok := <-fast.msgs
			if !ok {
				break
			}
			if m.Type == "next" {
				count++
			}
			if m.Type == "complete" {
				t.Logf("healthy subscriber ended: %s", m.Payload)
				break
			}
		}
		got <- count
	}()
	start := time.Now()
	for i := range n {
		e.publishEvent(t, o.id, detail)
		if i%3 == 2 {
			time.Sleep(time.Millisecond) // paced like a worker, not a flood
		}
	}
	t.Logf("published %d events in %s", n, time.Since(start))
	select {
	case c := <-got:
		require.Equal(t, n, c, "the healthy subscriber missed messages")
	case <-time.After(30 * time.Second):
		t.Fatal("healthy subscriber did not receive everything")
	}
	waitFor(t, 10*time.Second, func() bool { return p.hub.Stats().SlowConsumers >= 1 })

	// The stalled client got part of the stream, then its connection was
	// closed with 4503 (issue 12), not left to the keepalive.
	select {
	case r := <-stalledEnd:
		require.Equal(t, websocket.StatusCode(4503), websocket.CloseStatus(r.err), "close: %v", r.err)
		require.Less(t, r.nexts, n)
		t.Logf("stalled client got %d of %d messages, then close 4503 (%d SLOW_CONSUMER errors before it)", r.nexts-r.slow, n, r.slow)
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled client's connection was not closed")
	}
}

// 500 clients connect, subscribe and vanish (half abruptly, half politely);
// the process returns to its goroutine baseline and holds no subscription.
// Not parallel on purpose: Go runs sequential tests before the parallel
// ones resume, so the goroutine count here is this test's alone.
func TestNoLeakAfter500ConnectDisconnectCycles(t *testing.T) {
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")

	warm, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	warm.ack()
	_ = warm.conn.Close(websocket.StatusNormalClosure, "")
	<-warm.done
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	for i := range 500 {
		c, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
		require.NoError(t, err)
		c.ack()
		c.subscribe("1", `subscription { events { id } }`, nil)
		if i%2 == 0 {
			_ = c.conn.CloseNow()
		} else {
			c.send(wsMsg{ID: "1", Type: "complete"})
			_ = c.conn.Close(websocket.StatusNormalClosure, "bye")
		}
		<-c.done
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, subs := runtime.NumGoroutine(), p.hub.Stats().Subscriptions
		if n <= baseline+2 && subs == 0 {
			t.Logf("goroutines: baseline %d, after 500 cycles %d", baseline, n)
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d (baseline %d), subscriptions %d\n%s", n, baseline, subs, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

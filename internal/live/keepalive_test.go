package live_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// TestKeepalive: the server pings graphql-transport-ws clients every
// PingInterval; one that answers stays connected, one that never answers
// is closed after about twice the interval.
func TestKeepalive(t *testing.T) {
	e := newEnv(t)
	o := e.org("keepalive")
	const every = 100 * time.Millisecond
	p := e.api(api.Config{PingInterval: every}, pubsub.HubConfig{})

	// wsClient answers pings with pongs.
	good, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	good.ack()

	// This one reads but never answers.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, p.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	require.NoError(t, err)
	defer conn.CloseNow()
	init, _ := json.Marshal(wsMsg{Type: "connection_init", Payload: mustJSON(bearer(o.admin))})
	require.NoError(t, conn.Write(ctx, websocket.MessageText, init))
	start := time.Now()
	pings := 0
	var closedAfter time.Duration
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			closedAfter = time.Since(start)
			break
		}
		var m wsMsg
		require.NoError(t, json.Unmarshal(data, &m))
		if m.Type == "ping" {
			pings++
		}
	}
	assert.GreaterOrEqual(t, pings, 2, "pinged before being dropped")
	assert.GreaterOrEqual(t, closedAfter, 2*every)
	assert.Less(t, closedAfter, 3*time.Second)

	// The answering client outlived it and still works.
	time.Sleep(5 * every)
	good.subscribe("1", `subscription { jobUpdated(id: "job_00000000000000000000000000") { id } }`, nil)
	r := good.nextResult("1", 10*time.Second)
	assert.NotEmpty(t, r.Errors, "an unknown job is an error, over a live socket")
}

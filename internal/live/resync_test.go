package live_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// killHubConnection cuts only this process's Redis subscription (other
// packages' tests share the server), as a Redis failover would.
func (e *env) killHubConnection(t *testing.T, p *process) {
	t.Helper()
	admin := e.rdb()
	list, err := admin.Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	require.NoError(t, err)
	for line := range strings.Lines(list) {
		fields := strings.Fields(line)
		named := false
		var id string
		for _, f := range fields {
			named = named || f == "name="+p.hubRedis
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
		}
		if named {
			require.NoError(t, admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err())
			return
		}
	}
	t.Fatalf("no pub/sub connection named %s", p.hubRedis)
}

// Messages lost while the Hub reconnects are made up for by re-reading
// PostgreSQL on the Hub's resync: jobUpdated shows the job's new state and
// events sends the events recorded meanwhile, once.
func TestResyncAfterRedisReconnectRereadsState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	o := e.org("acme")
	w := e.startJob(o.id, 2)

	c, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	c.ack()
	c.subscribe("1", jobUpdatedQ, map[string]any{"id": w.job.ID})
	require.Equal(t, "QUEUED", field[jobOut](t, c.nextResult("1", 10*time.Second), "jobUpdated").Status)
	ev, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	ev.ack()
	ev.subscribe("e", eventsQ, nil)
	waitFor(t, 5*time.Second, func() bool { return p.hub.Stats().Subscriptions == 2 })

	// Committed, never published: the messages were "lost".
	ctx := auth.SystemContext(context.Background())
	require.NoError(t, e.client.Job.UpdateOneID(w.job.ID).SetStatus(job.StatusRUNNING).SetDone(1).Exec(ctx))
	lost, err := e.client.Event.Create().SetOrganizationID(o.id).SetType("user_create_provision").
		SetJobID(w.job.ID).Save(ctx)
	require.NoError(t, err)

	before := p.hub.Stats().Connects
	e.killHubConnection(t, p)
	waitFor(t, 10*time.Second, func() bool { return p.hub.Stats().Connects > before })

	j := field[jobOut](t, c.nextResult("1", 10*time.Second), "jobUpdated")
	require.Equal(t, jobOut{ID: string(w.job.ID), Status: "RUNNING", Done: 1, Total: 2}, j)
	got := field[eventOut](t, ev.nextResult("e", 10*time.Second), "events")
	require.Equal(t, string(lost.ID), got.ID)

	// Live again, and the backfilled event is not repeated.
	require.NoError(t, w.complete(1, false))
	for range 2 {
		got := field[eventOut](t, ev.nextResult("e", 10*time.Second), "events")
		require.NotEqual(t, string(lost.ID), got.ID)
	}
	require.Equal(t, "SUCCEEDED", field[jobOut](t, c.nextResult("1", 10*time.Second), "jobUpdated").Status)
}

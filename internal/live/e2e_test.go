package live_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/pubsub"
)

const (
	jobUpdatedQ = `subscription($id: ID!) { jobUpdated(id: $id) { id status done total failed } }`
	eventsQ     = `subscription($f: EventsSubscriptionFilter) { events(filter: $f) { id type userID jobID } }`
	jobsQ       = `subscription($f: JobsSubscriptionFilter) { jobs(filter: $f) { id status done total } }`
)

func bearer(key string) map[string]any { return map[string]any{"Authorization": "Bearer " + key} }

// A bind of 200 users run by a worker (simulated: 4 concurrent goroutines
// completing items and publishing through pubsub.Publisher, exactly as the
// reconcile worker does) is watched from two other API processes: the job
// subscriber sees the current state first, progress that never goes back,
// and the final SUCCEEDED with done = total; the events subscriber sees each
// user's events in order; a subscriber joining after the end gets the final
// state and completes.
func TestBindWatchedFromOtherProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.api(api.Config{}, pubsub.HubConfig{}), e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	w := e.startJob(o.id, 200)

	jobSub, err := dial(t, b.ws, dialOpts{init: bearer(o.readOnly)}) // read-only keys may subscribe
	require.NoError(t, err)
	jobSub.ack()
	jobSub.subscribe("1", jobUpdatedQ, map[string]any{"id": w.job.ID})
	first := field[jobOut](t, jobSub.nextResult("1", 10*time.Second), "jobUpdated")
	require.Equal(t, jobOut{ID: string(w.job.ID), Status: "QUEUED", Total: 200}, first)

	evSub, err := dial(t, a.ws, dialOpts{init: map[string]any{"apiKey": o.admin}})
	require.NoError(t, err)
	evSub.ack()
	evSub.subscribe("e", eventsQ, nil)
	jobsSub, err := dial(t, a.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	jobsSub.ack()
	jobsSub.subscribe("j", jobsQ, map[string]any{"f": map[string]any{"statuses": []string{"SUCCEEDED"}}})
	// A subscription is live once the resolver has subscribed to the Hub.
	waitFor(t, 5*time.Second, func() bool { return a.hub.Stats().Subscriptions == 2 })

	require.NoError(t, w.runAll(4))

	results := jobSub.collect("1", 30*time.Second)
	last := jobOut{Total: 200}
	for _, r := range results {
		j := field[jobOut](t, r, "jobUpdated")
		require.GreaterOrEqual(t, j.Done, last.Done, "progress went back")
		last = j
	}
	require.Equal(t, jobOut{ID: string(w.job.ID), Status: "SUCCEEDED", Done: 200, Total: 200}, last)
	t.Logf("job subscriber got %d versions for 200 items", len(results))

	// Events: 2 per user, in order per user.
	perUser := map[string][]string{}
	for range 400 {
		ev := field[eventOut](t, evSub.nextResult("e", 10*time.Second), "events")
		perUser[ev.UserID] = append(perUser[ev.UserID], ev.Type)
	}
	require.Len(t, perUser, 200)
	for u, types := range perUser {
		require.Equal(t, []string{"user_create_provision", "user_update_provision"}, types, "user %s", u)
	}

	// jobs(statuses: [SUCCEEDED]) saw exactly the final version.
	fin := field[jobOut](t, jobsSub.nextResult("j", 10*time.Second), "jobs")
	require.Equal(t, "SUCCEEDED", fin.Status)
	require.Equal(t, 200, fin.Done)

	// Joining after the end: final state, then complete.
	late, err := dial(t, a.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	late.ack()
	late.subscribe("x", jobUpdatedQ, map[string]any{"id": w.job.ID})
	got := late.collect("x", 10*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, "SUCCEEDED", field[jobOut](t, got[0], "jobUpdated").Status)
}

// O1: no job or event of org B ever reaches org A's subscribers, whether
// asked for by id, by a wildcard stream, or sent by a buggy publisher on A's
// channel with B's data.
func TestOrganizationsAreIsolated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{})
	orgA, orgB := e.org("a"), e.org("b")
	jobB := e.startJob(orgB.id, 3)
	jobA := e.startJob(orgA.id, 1)

	c, err := dial(t, p.ws, dialOpts{init: bearer(orgA.admin)})
	require.NoError(t, err)
	c.ack()
	c.subscribe("byid", jobUpdatedQ, map[string]any{"id": jobB.job.ID})
	res := c.collect("byid", 10*time.Second)
	require.Len(t, res, 1)
	require.Equal(t, "NOT_FOUND", res[0].code())

	c.subscribe("ev", eventsQ, nil)
	c2, err := dial(t, p.ws, dialOpts{init: bearer(orgA.admin)})
	require.NoError(t, err)
	c2.ack()
	c2.subscribe("jobs", jobsQ, nil)
	waitFor(t, 5*time.Second, func() bool { return p.hub.Stats().Subscriptions == 2 })

	require.NoError(t, jobB.runAll(2))
	// A publisher bug: B's event on A's channel. The Hub routes by channel,
	// the stream checks the object's own organisation.
	evB, err := e.client.Event.Query().First(auth.SystemContext(context.Background()))
	require.NoError(t, err)
	require.Equal(t, orgB.id, evB.OrganizationID)
	data, _ := json.Marshal(evB)
	require.NoError(t, e.pub.Publish(context.Background(), pubsub.Message{Kind: pubsub.KindEvent, OrgID: string(orgA.id), ID: string(evB.ID), Data: data}))
	// Then A's own work, which must be the first thing A sees.
	require.NoError(t, jobA.runAll(1))

	for range 2 {
		ev := field[eventOut](t, c.nextResult("ev", 10*time.Second), "events")
		require.Equal(t, string(jobA.job.ID), ev.JobID)
	}
	j := field[jobOut](t, c2.nextResult("jobs", 10*time.Second), "jobs")
	require.Equal(t, string(jobA.job.ID), j.ID)
}

func TestWebsocketAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{AllowedOrigins: []string{"https://admin.example.com"}}, pubsub.HubConfig{})
	o := e.org("acme")

	refused := map[string]dialOpts{
		"no payload":         {},
		"empty payload":      {init: map[string]any{}},
		"unknown key":        {init: bearer("dsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")},
		"not a key":          {init: map[string]any{"apiKey": "hunter2"}},
		"basic scheme":       {init: map[string]any{"Authorization": "Basic " + o.admin}},
		"bad header no init": {init: map[string]any{}, header: http.Header{"Authorization": {"Bearer dsk_nope"}}},
	}
	for name, opts := range refused {
		t.Run(name, func(t *testing.T) {
			c, err := dial(t, p.ws, opts)
			require.NoError(t, err)
			require.Equal(t, websocket.StatusCode(4403), c.closeStatus())
		})
	}
	t.Run("key in upgrade header", func(t *testing.T) {
		c, err := dial(t, p.ws, dialOpts{header: http.Header{"Authorization": {"Bearer " + o.admin}}})
		require.NoError(t, err)
		c.ack()
	})
	t.Run("subscribe before init is 4401", func(t *testing.T) {
		c, err := dial(t, p.ws, dialOpts{noInit: true})
		require.NoError(t, err)
		c.subscribe("1", jobsQ, nil)
		require.Equal(t, websocket.StatusCode(4401), c.closeStatus())
	})
	t.Run("second init is 4429", func(t *testing.T) {
		c, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
		require.NoError(t, err)
		c.ack()
		c.send(wsMsg{Type: "connection_init", Payload: mustJSON(bearer(o.admin))})
		require.Equal(t, websocket.StatusCode(4429), c.closeStatus())
	})
	t.Run("origins", func(t *testing.T) {
		for origin, ok := range map[string]bool{
			"https://admin.example.com":               true,
			"https://evil.example.com":                false,
			"http://admin.example.com":                false, // scheme matters
			strings.Replace(p.url, "/graphql", "", 1): true,  // same origin
		} {
			c, err := dial(t, p.ws, dialOpts{init: bearer(o.admin), header: http.Header{"Origin": {origin}}})
			if !ok {
				require.Error(t, err, origin)
				require.Contains(t, err.Error(), "403", origin)
				continue
			}
			require.NoError(t, err, origin)
			c.ack()
		}
	})
}

// Caps: connections per key (4429 at connection_init) and subscriptions per
// key (TOO_MANY_SUBSCRIPTIONS); a freed slot can be used again.
func TestCapsPerKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{MaxConnectionsPerKey: 2}, pubsub.HubConfig{MaxPerKey: 2})
	o := e.org("acme")

	c1, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	c1.ack()
	c2, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	c2.ack()
	c3, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
	require.NoError(t, err)
	require.Equal(t, websocket.StatusCode(4429), c3.closeStatus())
	// Another key of the same organisation has its own budget.
	other, err := dial(t, p.ws, dialOpts{init: bearer(o.readOnly)})
	require.NoError(t, err)
	other.ack()

	c1.subscribe("1", eventsQ, nil)
	c1.subscribe("2", eventsQ, nil)
	waitFor(t, 5*time.Second, func() bool { return p.hub.Stats().Subscriptions == 2 })
	c2.subscribe("3", eventsQ, nil)
	res := c2.collect("3", 10*time.Second)
	require.Len(t, res, 1)
	require.Equal(t, "TOO_MANY_SUBSCRIPTIONS", res[0].code())

	// Closing a connection frees its slot and its subscriptions.
	_ = c1.conn.CloseNow()
	waitFor(t, 5*time.Second, func() bool { return p.hub.Stats().Subscriptions == 0 })
	require.Eventually(t, func() bool {
		c, err := dial(t, p.ws, dialOpts{init: bearer(o.admin)})
		if err != nil {
			return false
		}
		m, ok := c.next(5 * time.Second)
		return ok && m.Type == "connection_ack"
	}, 5*time.Second, 50*time.Millisecond)
}

// graphql-sse, distinct connections mode: the key in the Authorization header,
// results as `next` events, then `complete`.
func TestSSE(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	w := e.startJob(o.id, 2)

	post := func(key string) *http.Response {
		body, _ := json.Marshal(map[string]any{"query": jobUpdatedQ, "variables": map[string]any{"id": w.job.ID}})
		req, err := http.NewRequest(http.MethodPost, p.url, strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = res.Body.Close() })
		return res
	}
	require.Equal(t, http.StatusUnauthorized, post("").StatusCode)

	res := post(o.readOnly)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, res.Header.Get("Content-Type"), "text/event-stream")
	events := make(chan [2]string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
				if ev == "complete" {
					events <- [2]string{ev, ""}
				}
			case strings.HasPrefix(line, "data: "):
				events <- [2]string{ev, strings.TrimPrefix(line, "data: ")}
			}
		}
	}()
	readNext := func() jobOut {
		select {
		case ev := <-events:
			require.Equal(t, "next", ev[0])
			var r result
			require.NoError(t, json.Unmarshal([]byte(ev[1]), &r))
			return field[jobOut](t, r, "jobUpdated")
		case <-time.After(10 * time.Second):
			t.Fatal("no SSE event")
			return jobOut{}
		}
	}
	require.Equal(t, "QUEUED", readNext().Status)
	waitFor(t, 5*time.Second, func() bool { return p.hub.Stats().Subscriptions == 1 })
	require.NoError(t, w.runAll(1))
	var last jobOut
	for last.Status != "SUCCEEDED" {
		last = readNext()
	}
	require.Equal(t, 2, last.Done)
	select {
	case ev := <-events:
		require.Equal(t, "complete", ev[0])
	case <-time.After(10 * time.Second):
		t.Fatal("no complete")
	}
}

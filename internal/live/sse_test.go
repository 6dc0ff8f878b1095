package live_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"

	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/server"
)

// sseStream is one graphql-sse subscription ("distinct connections" mode:
// one POST per operation), its body parsed by go-sse, a spec-conforming
// text/event-stream reader (comments such as the keepalive ": ping" are
// skipped, multi-line data joined, CRLF handled).
type sseStream struct {
	t      testing.TB
	res    *http.Response
	events chan sse.Event // closed when the stream ends
}

func sseSubscribe(t testing.TB, url, key, query string, vars map[string]any) *sseStream {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode, "SSE subscription refused")
	require.Contains(t, res.Header.Get("Content-Type"), "text/event-stream")
	s := &sseStream{t: t, res: res, events: make(chan sse.Event, 256)}
	go func() {
		defer close(s.events)
		for ev, err := range sse.Read(res.Body, nil) {
			if err != nil {
				return
			}
			s.events <- ev
		}
	}()
	return s
}

// next returns the next event, or fails the test after limit.
func (s *sseStream) next(limit time.Duration) (sse.Event, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(limit):
		s.t.Fatalf("no SSE event within %s", limit)
		return sse.Event{}, false
	}
}

// nextResult returns the payload of the next `next` event.
func (s *sseStream) nextResult(limit time.Duration) result {
	s.t.Helper()
	ev, ok := s.next(limit)
	require.True(s.t, ok, "stream ended")
	require.Equal(s.t, "next", ev.Type, "event %+v", ev)
	var r result
	require.NoError(s.t, json.Unmarshal([]byte(ev.Data), &r), ev.Data)
	return r
}

// collect returns every result up to `complete`, failing if the stream
// does not complete within limit.
func (s *sseStream) collect(limit time.Duration) []result {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	var out []result
	for {
		ev, ok := s.next(time.Until(deadline))
		require.True(s.t, ok, "stream ended without complete")
		if ev.Type == "complete" {
			return out
		}
		require.Equal(s.t, "next", ev.Type, "event %+v", ev)
		var r result
		require.NoError(s.t, json.Unmarshal([]byte(ev.Data), &r), ev.Data)
		out = append(out, r)
	}
}

// SSE through the whole HTTP front (server.Handler and its middleware), on
// two API replicas sharing one Redis, with the real worker: a bind made on
// replica A is followed on replica B over SSE through jobUpdated, jobs and
// events; a subscriber that comes after the end gets the terminal state and
// then `complete`, on either replica. Before the fix every one of these
// answered HTTP 500 "streaming unsupported".
func TestSSEAcrossReplicasWithRealWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rw := e.realWorker()
	a := e.api(api.Config{Deps: graph.Deps{Tenants: rw.app.Tenants}}, pubsub.HubConfig{})
	b := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	integ := rw.integration(a.url, o.admin)
	const n = 5
	ids := createUsers(t, a.url, o.admin, n)

	jobsS := sseSubscribe(t, b.url, o.readOnly, jobsQ, nil)
	require.Equal(t, "no-store", jobsS.res.Header.Get("Cache-Control"))
	require.Equal(t, "nosniff", jobsS.res.Header.Get("X-Content-Type-Options"))
	require.NotEmpty(t, jobsS.res.Header.Get("X-Request-Id"))
	eventsS := sseSubscribe(t, b.url, o.readOnly, eventsQ, map[string]any{"f": map[string]any{"integrationID": integ}})
	waitFor(t, 5*time.Second, func() bool { return b.hub.Stats().Subscriptions == 2 })

	var bound struct {
		BindUsers struct{ Jobs []struct{ ID string } }
	}
	gql(t, a.url, o.admin, `mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`,
		map[string]any{"i": integ, "u": ids}, &bound)
	require.Len(t, bound.BindUsers.Jobs, 1)
	jobID := bound.BindUsers.Jobs[0].ID

	jobS := sseSubscribe(t, b.url, o.readOnly, jobUpdatedQ, map[string]any{"id": jobID})
	results := jobS.collect(60 * time.Second)
	require.NotEmpty(t, results)
	last := jobOut{}
	for _, r := range results {
		j := field[jobOut](t, r, "jobUpdated")
		require.GreaterOrEqual(t, j.Done, last.Done, "progress went back")
		last = j
	}
	require.Equal(t, jobOut{ID: jobID, Status: "SUCCEEDED", Done: n, Total: n}, last)

	// jobs on B saw the job end.
	for {
		j := field[jobOut](t, jobsS.nextResult(30*time.Second), "jobs")
		if j.ID == jobID && j.Status == "SUCCEEDED" {
			require.Equal(t, n, j.Done)
			break
		}
	}
	// events on B carried every user's provisioning.
	users := map[string]bool{}
	for len(users) < n {
		ev := field[eventOut](t, eventsS.nextResult(30*time.Second), "events")
		if ev.Type == "user_create_provision" {
			users[ev.UserID] = true
		}
	}
	require.Len(t, users, n)

	// Late subscribers, on the replica that took the mutation and on the
	// other: the terminal state, then complete.
	for _, p := range []*process{a, b} {
		late := sseSubscribe(t, p.url, o.readOnly, jobUpdatedQ, map[string]any{"id": jobID})
		got := late.collect(10 * time.Second)
		require.Len(t, got, 1)
		require.Equal(t, jobOut{ID: jobID, Status: "SUCCEEDED", Done: n, Total: n}, field[jobOut](t, got[0], "jobUpdated"))
		_, open := late.next(10 * time.Second)
		require.False(t, open, "the server closes the stream after complete")
	}
}

// An SSE stream outlives the server's read and write timeouts: they bound
// reading the request and writing an ordinary answer, and the stream lifts
// the write deadline for itself once its body is read (left in place, it
// would cut the next event).
func TestSSEOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	limits := server.Limits{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	p := e.apiServer(api.Config{}, pubsub.HubConfig{}, &limits)
	o := e.org("acme")
	w := e.startJob(o.id, 2)

	s := sseSubscribe(t, p.url, o.readOnly, jobUpdatedQ, map[string]any{"id": w.job.ID})
	require.Equal(t, "QUEUED", field[jobOut](t, s.nextResult(10*time.Second), "jobUpdated").Status)
	waitFor(t, 5*time.Second, func() bool { return p.hub.Stats().Subscriptions == 1 })
	time.Sleep(3 * limits.WriteTimeout) // both deadlines would have passed by now
	require.Equal(t, 1, p.hub.Stats().Subscriptions, "the stream is still subscribed")
	require.NoError(t, w.runAll(1))
	got := s.collect(10 * time.Second)
	require.NotEmpty(t, got)
	require.Equal(t, "SUCCEEDED", field[jobOut](t, got[len(got)-1], "jobUpdated").Status)
}

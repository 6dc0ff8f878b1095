package msgraph

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type wireBatch struct {
	Requests []struct {
		ID        string            `json:"id"`
		Method    string            `json:"method"`
		URL       string            `json:"url"`
		Headers   map[string]string `json:"headers"`
		Body      json.RawMessage   `json:"body"`
		DependsOn []string          `json:"dependsOn"`
	} `json:"requests"`
}

// GRAPH.md "$batch": an inner 429 carries its own Retry-After and must be
// re-sent by the client, with the dependants it held back; a failed dependency
// gives its dependants 424; the outer status may be 200 or 424.
func TestBatchResendsInner429AndPropagatesFailedDependency(t *testing.T) {
	var mu sync.Mutex
	var posts []wireBatch
	f, c, sl := newFake(t, nil)
	f.graph = func(w http.ResponseWriter, r *http.Request) {
		var b wireBatch
		require.NoError(t, json.NewDecoder(r.Body).Decode(&b))
		mu.Lock()
		posts = append(posts, b)
		n := len(posts)
		mu.Unlock()
		var out []map[string]any
		failed := map[string]bool{}
		for _, q := range b.Requests {
			if q.Body != nil {
				assert.Equal(t, "application/json", q.Headers["Content-Type"], "GRAPH.md: Content-Type required with a body")
			}
			dep := false
			for _, d := range q.DependsOn {
				dep = dep || failed[d]
			}
			switch {
			case dep:
				failed[q.ID] = true
				out = append(out, map[string]any{"id": q.ID, "status": 424, "body": map[string]any{"error": map[string]string{"code": "FailedDependency"}}})
			case q.ID == "1" && n == 1:
				failed[q.ID] = true
				out = append(out, map[string]any{"id": q.ID, "status": 429, "headers": map[string]string{"Retry-After": "4"},
					"body": map[string]any{"error": map[string]string{"code": "TooManyRequests", "message": "Please retry again later."}}})
			case q.ID == "3":
				failed[q.ID] = true
				out = append(out, map[string]any{"id": q.ID, "status": 400, "body": map[string]any{"error": map[string]string{"code": "Request_BadRequest", "message": "Another object with the same value for property userPrincipalName already exists."}}})
			default:
				out = append(out, map[string]any{"id": q.ID, "status": 201, "body": map[string]string{"id": "obj-" + q.ID}})
			}
		}
		// Answer in reverse order (Graph may use any order) and with the old
		// outer-424 form on the first call.
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		status := 200
		if n == 1 {
			status = 424
		}
		writeJSON(w, status, map[string]any{"responses": out})
	}
	lim := &fakeLimiter{}
	c.cfg.Limiter = lim
	reqs := []BatchRequest{
		{ID: "1", Method: "POST", URL: "/users", Body: map[string]string{"displayName": "one"}},
		{ID: "2", Method: "POST", URL: "/groups/g/members/$ref", Body: map[string]string{"@odata.id": "x"}, DependsOn: []string{"1"}},
		{ID: "3", Method: "POST", URL: "/users", Body: map[string]string{"displayName": "dup"}},
		{ID: "4", Method: "POST", URL: "/groups/g/members/$ref", Body: map[string]string{"@odata.id": "y"}, DependsOn: []string{"3"}},
		{ID: "5", Method: "GET", URL: "/users/u5"},
	}
	res, err := c.Batch(context.Background(), reqs)
	require.NoError(t, err)
	require.Len(t, res, 5)
	for i, r := range res {
		assert.Equal(t, reqs[i].ID, r.ID, "results follow input order")
	}
	assert.Equal(t, 201, res[0].Status, "throttled request re-sent")
	assert.Equal(t, 201, res[1].Status, "its dependant re-sent with it")
	assert.True(t, IsUPNConflict(res[2].Err()))
	assert.Equal(t, 424, res[3].Status)
	assert.Equal(t, 201, res[4].Status)
	var obj struct{ ID string }
	require.NoError(t, res[0].Decode(&obj))
	assert.Equal(t, "obj-1", obj.ID)

	require.Len(t, posts, 2)
	var resent []string
	for _, q := range posts[1].Requests {
		resent = append(resent, q.ID)
	}
	assert.Equal(t, []string{"1", "2"}, resent)
	assert.Equal(t, []string{"1"}, posts[1].Requests[1].DependsOn)
	assert.Equal(t, []time.Duration{4 * time.Second}, sl.Waits())
	assert.Equal(t, []time.Duration{4 * time.Second}, lim.penalties)
}

// 45 requests go out as 20+20+5; a dependency that ended in an earlier chunk is
// resolved by the client (dropped when it succeeded, 424 when it failed)
// because Graph resolves dependsOn only inside one batch.
func TestBatchChunksOf20AcrossDependencies(t *testing.T) {
	var sizes []int
	var deps [][]string
	f, c, _ := newFake(t, nil)
	f.graph = func(w http.ResponseWriter, r *http.Request) {
		var b wireBatch
		require.NoError(t, json.NewDecoder(r.Body).Decode(&b))
		sizes = append(sizes, len(b.Requests))
		var out []map[string]any
		for _, q := range b.Requests {
			deps = append(deps, q.DependsOn)
			st := 204
			if q.ID == "19" {
				st = 403
			}
			out = append(out, map[string]any{"id": q.ID, "status": st})
		}
		writeJSON(w, 200, map[string]any{"responses": out})
	}
	var reqs []BatchRequest
	for i := range 45 {
		r := BatchRequest{ID: strconv.Itoa(i), Method: "DELETE", URL: "/users/u" + strconv.Itoa(i)}
		switch i {
		case 20:
			r.DependsOn = []string{"19"} // failed in chunk 1
		case 21:
			r.DependsOn = []string{"18"} // succeeded in chunk 1
		case 22:
			r.DependsOn = []string{"21"} // same chunk
		}
		reqs = append(reqs, r)
	}
	res, err := c.Batch(context.Background(), reqs)
	require.NoError(t, err)
	assert.Equal(t, []int{20, 20, 4}, sizes, "request 20 answered 424 locally, never sent")
	assert.Equal(t, 424, res[20].Status)
	assert.Equal(t, 403, res[19].Status)
	assert.Equal(t, 204, res[21].Status)
	assert.Nil(t, deps[20], "settled dependency dropped")
	assert.Equal(t, []string{"21"}, deps[21])
}

func TestBatchRejectsBadInput(t *testing.T) {
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) { t.Fatal("not sent") })
	ctx := context.Background()
	_, err := c.Batch(ctx, []BatchRequest{{ID: "1", URL: "/a"}, {ID: "1", URL: "/b"}})
	assert.ErrorContains(t, err, "not unique")
	_, err = c.Batch(ctx, []BatchRequest{{ID: "1", URL: "/a", DependsOn: []string{"2"}}, {ID: "2", URL: "/b"}})
	assert.ErrorContains(t, err, "earlier")
	_, err = c.Batch(ctx, []BatchRequest{{URL: "/a"}})
	assert.ErrorContains(t, err, "no id")
	_, err = c.Batch(ctx, []BatchRequest{{ID: "1", URL: "https://evil.example/v1.0/users"}})
	assert.ErrorContains(t, err, "relative")
	res, err := c.Batch(ctx, nil)
	assert.NoError(t, err)
	assert.Empty(t, res)
}

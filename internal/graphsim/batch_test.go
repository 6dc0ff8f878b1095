package graphsim

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

type batchRes struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (e *env) batch(status int, reqs ...map[string]any) map[string]batchRes {
	e.t.Helper()
	res, b := e.do("POST", "/$batch", map[string]any{"requests": reqs})
	require.Equal(e.t, status, res.StatusCode, "%s", b)
	var out struct{ Responses []batchRes }
	require.NoError(e.t, json.Unmarshal(b, &out))
	m := map[string]batchRes{}
	for _, r := range out.Responses {
		m[r.ID] = r
	}
	return m
}

var jsonHdr = map[string]string{"Content-Type": "application/json"}

func TestBatch(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	res := e.batch(200,
		map[string]any{"id": "1", "method": "POST", "url": "/users", "headers": jsonHdr, "body": newUserBody("ada@contoso.com")},
		map[string]any{"id": "2", "method": "GET", "url": "/users/ada@contoso.com?$select=id", "dependsOn": []string{"1"}},
		map[string]any{"id": "3", "method": "POST", "url": "/users", "headers": jsonHdr, "body": newUserBody("ada@contoso.com")},
		map[string]any{"id": "4", "method": "GET", "url": "users", "dependsOn": []string{"3"}},
		map[string]any{"id": "5", "method": "GET", "url": "/nothing"},
	)
	require.Len(t, res, 5)
	require.Equal(t, 201, res["1"].Status)
	require.Equal(t, 200, res["2"].Status)
	require.Equal(t, 400, res["3"].Status)
	require.Contains(t, string(res["3"].Body), "ObjectConflict")
	require.Equal(t, 424, res["4"].Status, "a failed dependency fails its dependants")
	require.Equal(t, 400, res["5"].Status)
	require.Contains(t, res["1"].Headers["Content-Type"], "application/json")

	// Whole-batch errors.
	var many []map[string]any
	for i := 0; i < 21; i++ {
		many = append(many, map[string]any{"id": fmt.Sprint(i), "method": "GET", "url": "/users"})
	}
	r, b := e.do("POST", "/$batch", map[string]any{"requests": many})
	require.Equal(t, 400, r.StatusCode, "%s", b)
	r, b = e.do("POST", "/$batch", map[string]any{"requests": []map[string]any{
		{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/groups"}}})
	require.Equal(t, 400, r.StatusCode, "%s", b)
	r, b = e.do("POST", "/$batch", map[string]any{"requests": []map[string]any{
		{"id": "1", "method": "POST", "url": "/users", "body": newUserBody("x@contoso.com")}}})
	require.Equal(t, 400, r.StatusCode)
	require.Contains(t, string(b), "does not contain Content-Type header")
	r, _ = e.do("POST", "/$batch", map[string]any{"requests": []map[string]any{
		{"id": "1", "method": "GET", "url": "/users", "dependsOn": []string{"9"}}}})
	require.Equal(t, 400, r.StatusCode)
	require.Len(t, e.sim.Users(e.creds.TenantID), 1, "a rejected batch runs nothing")
}

func TestBatchInnerThrottling(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	e.sim.SetFaults(Faults{Force429: 1})
	res := e.batch(200,
		map[string]any{"id": "a", "method": "GET", "url": "/users"},
		map[string]any{"id": "b", "method": "GET", "url": "/users"},
	)
	require.Equal(t, 429, res["a"].Status)
	require.Equal(t, "1", res["a"].Headers["Retry-After"])
	require.Contains(t, string(res["a"].Body), codeTooManyRequests)
	require.Equal(t, 200, res["b"].Status)

	// The older documented behaviour: outer 424.
	e2 := newEnv(t, Config{DisableThrottling: true, BatchThrottled424: true})
	e2.sim.SetFaults(Faults{Force429: 1})
	res = e2.batch(424, map[string]any{"id": "a", "method": "GET", "url": "/users"})
	require.Equal(t, 429, res["a"].Status)

	// Each inner request is logged and throttled on its own.
	var inner int
	for _, r := range e.sim.Requests() {
		if r.Batch {
			inner++
		}
	}
	require.Equal(t, 2, inner)
}

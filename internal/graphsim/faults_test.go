package graphsim

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReplicationDelay(t *testing.T) {
	clk := newFakeClock()
	e := newEnv(t, Config{DisableThrottling: true, Now: clk.Now, Faults: Faults{ReplicationDelay: 2 * time.Second}})
	u := e.json(201, "POST", "/users", newUserBody("ada@contoso.com"))
	id := u["id"].(string)
	g := e.json(201, "POST", "/groups", newGroupBody("G"))
	gid := g["id"].(string)

	code, _, _ := e.graphErr(404, "GET", "/users/"+id, nil)
	require.Equal(t, codeNotFound, code)
	e.graphErr(404, "GET", "/users/ada@contoso.com", nil)
	e.graphErr(404, "PATCH", "/users/"+id, map[string]any{"jobTitle": "x"})
	e.graphErr(404, "GET", "/groups/"+gid, nil)
	e.graphErr(404, "POST", "/groups/"+gid+"/members/$ref", ref(id))
	require.Empty(t, e.json(200, "GET", "/users?$filter="+url.QueryEscape("userPrincipalName eq 'ada@contoso.com'"), nil)["value"])
	items, _ := e.deltaRound("/users/delta")
	require.Empty(t, items)
	// The UPN is taken all the same.
	e.graphErr(400, "POST", "/users", newUserBody("ada@contoso.com"))

	clk.Advance(2 * time.Second)
	e.json(200, "GET", "/users/"+id, nil)
	e.json(204, "POST", "/groups/"+gid+"/members/$ref", ref(id))
	require.Len(t, e.json(200, "GET", "/users", nil)["value"], 1)
}

func TestDeltaDoesNotLoseDelayedObjects(t *testing.T) {
	clk := newFakeClock()
	e := newEnv(t, Config{DisableThrottling: true, Now: clk.Now})
	_, link := e.deltaRound("/users/delta")
	e.sim.SetFaults(Faults{ReplicationDelay: time.Second})
	e.json(201, "POST", "/users", newUserBody("late@contoso.com"))
	items, link := e.deltaRound(link)
	require.Empty(t, items)
	clk.Advance(time.Second)
	items, _ = e.deltaRound(link)
	require.Len(t, items, 1, "the next round brings the object the delay hid")
}

func TestServerErrorsAndForced429(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true, Seed: 7})
	e.sim.SetFaults(Faults{ServerErrorRate: 1})
	seen := map[int]bool{}
	for i := 0; i < 30; i++ {
		res, b := e.do("POST", "/users", newUserBody("x@contoso.com"))
		require.Contains(t, []int{500, 503, 504}, res.StatusCode)
		require.Contains(t, string(b), `"innerError"`)
		seen[res.StatusCode] = true
	}
	require.Len(t, seen, 3)
	require.Empty(t, e.sim.Users(e.creds.TenantID), "an injected 5xx changes nothing")

	e.sim.SetFaults(Faults{Force429: 3, Force429RetryAfter: 2 * time.Second})
	for i := 0; i < 3; i++ {
		res, _ := e.do("GET", "/users", nil)
		require.Equal(t, 429, res.StatusCode)
		require.Equal(t, "2", res.Header.Get("Retry-After"))
	}
	e.json(200, "GET", "/users", nil)
	require.Equal(t, 0, e.sim.Faults().Force429)
}

func TestLatency(t *testing.T) {
	e := newEnv(t, Config{Faults: Faults{LatencyBase: 40 * time.Millisecond, LatencyJitter: 10 * time.Millisecond}})
	start := time.Now()
	e.json(200, "GET", "/users", nil)
	require.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond)
}

func TestSeedIsDeterministic(t *testing.T) {
	a, b := New(Config{Seed: 42}), New(Config{Seed: 42})
	ca, err := a.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)
	cb, err := b.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)
	require.Equal(t, ca, cb)
	c, err := New(Config{Seed: 43}).Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)
	require.NotEqual(t, ca.TenantID, c.TenantID)
}

package graphsim

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestResourceUnitCosts(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.json(201, "POST", "/users", newUserBody("ada@contoso.com"))
	g := e.json(201, "POST", "/groups", newGroupBody("G"))
	for path, want := range map[string]string{
		"/users":                                   "2",
		"/users?$select=id":                        "1",
		"/users?$top=5":                            "1",
		"/users?$select=id&$top=5":                 "1", // never below 1
		"/users/" + u["id"].(string):               "1",
		"/groups/" + g["id"].(string) + "/members": "3",
		"/groups/" + g["id"].(string) + "/members?$top=999": "3",
		"/domains": "1",
		"/groups":  "1",
	} {
		res, b := e.do("GET", path, nil)
		require.Equal(t, 200, res.StatusCode, "%s", b)
		require.Equal(t, want, res.Header.Get("x-ms-resource-unit"), path)
	}
	res, _ := e.do("PATCH", "/users/"+u["id"].(string), map[string]any{"jobTitle": "x"})
	require.Equal(t, "1", res.Header.Get("x-ms-resource-unit"))
}

func TestWriteQuotaThrottles(t *testing.T) {
	clk := newFakeClock()
	// 3,000 writes / 150 s scaled by 0.01: 30 writes, refilled at 0.2 per second;
	// TimeScale 10 makes the window 15 s: 2 per second.
	e := newEnv(t, Config{QuotaMultiplier: 0.01, TimeScale: 10, Now: clk.Now})
	ok := 0
	var throttled *http.Response
	for i := 0; i < 40; i++ {
		res, b := e.do("POST", "/users", newUserBody("u"+strconv.Itoa(i)+"@contoso.com"))
		if res.StatusCode == 429 {
			throttled = res
			require.Contains(t, string(b), `"code":"TooManyRequests"`)
			require.Contains(t, string(b), `"message":"Please retry again later."`)
			break
		}
		require.Equal(t, 201, res.StatusCode, "%s", b)
		if pct := res.Header.Get("x-ms-throttle-limit-percentage"); ok >= 25 {
			require.NotEmpty(t, pct, "above 80 %% of the budget")
		}
		ok++
	}
	require.Equal(t, 30, ok)
	require.NotNil(t, throttled)
	require.Equal(t, "1", throttled.Header.Get("Retry-After"))
	require.Equal(t, "1", throttled.Header.Get("x-ms-resource-unit"), "every answer, 429s included, carries its cost")
	require.Equal(t, "WriteLimitExceeded", throttled.Header.Get("x-ms-throttle-information"))
	require.Contains(t, throttled.Header.Get("x-ms-throttle-scope"), "Tenant_Application/Write/"+e.creds.ClientID+"/"+e.creds.TenantID)

	// Reads are not bound by the write quota.
	e.json(200, "GET", "/users?$select=id", nil)
	// After Retry-After the write goes through.
	clk.Advance(time.Second)
	e.json(201, "POST", "/users", newUserBody("late@contoso.com"))
	var n int
	for _, r := range e.sim.Requests() {
		if r.Throttled {
			n++
		}
	}
	require.Equal(t, 1, n, "the request log marks throttled requests")
}

func TestResourceUnitQuotaThrottles(t *testing.T) {
	clk := newFakeClock()
	// 3,500 RU / 10 s at 0.01: 35 RU; a list costs 2.
	e := newEnv(t, Config{QuotaMultiplier: 0.01, Now: clk.Now})
	for i := 0; i < 17; i++ {
		e.json(200, "GET", "/users", nil)
	}
	res, _ := e.do("GET", "/users", nil)
	require.Equal(t, 429, res.StatusCode)
	require.Equal(t, "ResourceUnitLimitExceeded", res.Header.Get("x-ms-throttle-information"))
	ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, ra, 1)
	clk.Advance(time.Duration(ra) * time.Second)
	e.json(200, "GET", "/users", nil)
}

func TestThrottleTiers(t *testing.T) {
	require.Equal(t, 3500.0, ruQuota(49))
	require.Equal(t, 5000.0, ruQuota(50))
	require.Equal(t, 5000.0, ruQuota(500))
	require.Equal(t, 8000.0, ruQuota(501))
}

func TestTinyQuotaStillPasses(t *testing.T) {
	clk := newFakeClock()
	// 3,500 RU × 0.0001 = 0.35 RU: a list (2 RU) passes whenever the bucket is full.
	e := newEnv(t, Config{QuotaMultiplier: 0.0001, Now: clk.Now})
	e.json(200, "GET", "/users", nil)
	res, _ := e.do("GET", "/users", nil)
	require.Equal(t, 429, res.StatusCode)
	clk.Advance(time.Minute)
	e.json(200, "GET", "/users", nil)
}

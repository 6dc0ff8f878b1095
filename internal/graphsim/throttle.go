package graphsim

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Microsoft's identity-and-access quotas.
const (
	ruWindowAppTenant    = 10 * time.Second
	writesAppTenant      = 3000
	writesWindowApp      = 150 * time.Second
	writesTenant         = 18000
	writesWindowTenant   = 5 * time.Minute
	ruApp                = 150000
	ruWindowApp          = 20 * time.Second
	writesAppAllTenants  = 35000
	writesWindowAllTenan = 5 * time.Minute
)

// ruQuota is the app+tenant resource-unit bucket size for a tenant of n users.
func ruQuota(users int) float64 {
	switch {
	case users < 50:
		return 3500
	case users <= 500:
		return 5000
	default:
		return 8000
	}
}

// bucket is a token bucket of size capacity refilled evenly over window.
type bucket struct {
	capacity float64
	window   time.Duration
	tokens   float64
	last     time.Time
}

func newBucket(capacity float64, window time.Duration, now time.Time) *bucket {
	return &bucket{capacity: capacity, window: window, tokens: capacity, last: now}
}

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = math.Min(b.capacity, b.tokens+b.capacity*dt.Seconds()/b.window.Seconds())
		b.last = now
	}
}

// wait is how long until n tokens are there (0: now). A request costing more
// than a (heavily scaled-down) bucket holds passes once the bucket is full,
// leaving it in debt, rather than never.
func (b *bucket) wait(n float64) time.Duration {
	n = math.Min(n, b.capacity)
	if b.tokens >= n {
		return 0
	}
	need := n - b.tokens
	return time.Duration(need / b.capacity * float64(b.window))
}

// used is the consumed fraction of the bucket.
func (b *bucket) used() float64 { return (b.capacity - b.tokens) / b.capacity }

type throttler struct {
	disabled         bool
	quota, timeScale float64
	appTenantRU      map[string]*bucket // tenant|client
	appTenantWrites  map[string]*bucket
	tenantWrites     map[string]*bucket // tenant
	appRU, appWrites map[string]*bucket // client id, all tenants
}

func newThrottler(cfg Config) *throttler {
	th := &throttler{disabled: cfg.DisableThrottling, quota: cfg.QuotaMultiplier, timeScale: cfg.TimeScale}
	if th.quota <= 0 {
		th.quota = 1
	}
	if th.timeScale <= 0 {
		th.timeScale = 1
	}
	th.appTenantRU, th.appTenantWrites, th.tenantWrites, th.appRU, th.appWrites =
		map[string]*bucket{}, map[string]*bucket{}, map[string]*bucket{}, map[string]*bucket{}, map[string]*bucket{}
	return th
}

func (th *throttler) get(m map[string]*bucket, key string, capacity float64, window time.Duration, now time.Time) *bucket {
	capacity *= th.quota
	window = time.Duration(float64(window) / th.timeScale)
	b := m[key]
	if b == nil {
		b = newBucket(capacity, window, now)
		m[key] = b
	}
	b.refill(now)
	if b.capacity != capacity { // tenant grew into another tier
		b.tokens += capacity - b.capacity
		b.capacity = capacity
	}
	return b
}

// take charges one request of ru resource units (and one write when write)
// to every quota it counts against. It answers the response headers to add,
// or a 429 when a quota is exhausted (nothing is charged then).
func (th *throttler) take(t *tenant, a *app, ru int, write bool, now time.Time) (http.Header, *graphError) {
	h := http.Header{}
	if ru <= 0 {
		return h, nil
	}
	h.Set("x-ms-resource-unit", strconv.Itoa(ru))
	if th.disabled {
		return h, nil
	}
	type charge struct {
		b           *bucket
		n           float64
		scope, info string
		appTenant   bool // counts for x-ms-throttle-limit-percentage
	}
	atKey := t.id + "|" + a.clientID
	charges := []charge{
		{th.get(th.appTenantRU, atKey, ruQuota(len(t.users)), ruWindowAppTenant, now), float64(ru),
			"Tenant_Application/ReadWrite/" + a.clientID + "/" + t.id, "ResourceUnitLimitExceeded", true},
		{th.get(th.appRU, a.clientID, ruApp, ruWindowApp, now), float64(ru),
			"Application/ReadWrite/" + a.clientID, "ResourceUnitLimitExceeded", false},
	}
	if write {
		charges = append(charges,
			charge{th.get(th.appTenantWrites, atKey, writesAppTenant, writesWindowApp, now), 1,
				"Tenant_Application/Write/" + a.clientID + "/" + t.id, "WriteLimitExceeded", true},
			charge{th.get(th.tenantWrites, t.id, writesTenant, writesWindowTenant, now), 1,
				"Tenant/Write/" + t.id, "WriteLimitExceeded", false},
			charge{th.get(th.appWrites, a.clientID, writesAppAllTenants, writesWindowAllTenan, now), 1,
				"Application/Write/" + a.clientID, "WriteLimitExceeded", false})
	}
	var worst *charge
	var wait time.Duration
	for i := range charges {
		if w := charges[i].b.wait(charges[i].n); w > wait {
			worst, wait = &charges[i], w
		}
	}
	if worst != nil {
		e := gerr(http.StatusTooManyRequests, codeTooManyRequests, msgRetryLater)
		e.header = http.Header{
			"Retry-After":               {strconv.Itoa(retryAfterSeconds(wait))},
			"X-Ms-Throttle-Scope":       {worst.scope},
			"X-Ms-Throttle-Information": {worst.info},
			"X-Ms-Resource-Unit":        {strconv.Itoa(ru)},
		}
		return e.header, e
	}
	usage := 0.0
	for _, c := range charges {
		c.b.tokens -= c.n
		if c.appTenant {
			usage = math.Max(usage, c.b.used())
		}
	}
	if usage > 0.8 {
		h.Set("x-ms-throttle-limit-percentage", strconv.FormatFloat(math.Round(usage*10)/10, 'f', 1, 64))
	}
	return h, nil
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

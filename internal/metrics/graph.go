package metrics

import (
	"context"
	"strconv"
	"time"
)

// GraphObserver records the Graph requests of one integration. It satisfies
// msgraph.Observer.
type GraphObserver struct {
	m           *Metrics
	integration string
}

// Graph returns the observer for an integration's Graph client.
func (m *Metrics) Graph(integration string) *GraphObserver {
	return &GraphObserver{m: m, integration: integration}
}

// ObserveRequest implements msgraph.Observer.
func (o *GraphObserver) ObserveRequest(_ context.Context, method string, status int, d time.Duration) {
	if o == nil || o.m == nil {
		return
	}
	o.m.graphCalls.WithLabelValues(o.integration, method, strconv.Itoa(status)).Inc()
	o.m.graphDuration.WithLabelValues(o.integration, method).Observe(d.Seconds())
}

// ThrottleObserver records the tenant budgets. It satisfies throttle.Observer.
type ThrottleObserver struct{ m *Metrics }

// Throttle returns the observer for internal/throttle.
func (m *Metrics) Throttle() *ThrottleObserver { return &ThrottleObserver{m: m} }

// TooManyRequests implements throttle.Observer.
func (o *ThrottleObserver) TooManyRequests(tenant string) {
	if o == nil || o.m == nil {
		return
	}
	o.m.throttle429s.WithLabelValues(tenant).Inc()
}

// Waited implements throttle.Observer.
func (o *ThrottleObserver) Waited(tenant, reason string, d time.Duration) {
	if o == nil || o.m == nil {
		return
	}
	o.m.throttleWait.WithLabelValues(tenant, reason).Add(d.Seconds())
}

// Budget implements throttle.Observer.
func (o *ThrottleObserver) Budget(tenant, kind string, remaining int) {
	if o == nil || o.m == nil {
		return
	}
	o.m.throttleBudget.WithLabelValues(tenant, kind).Set(float64(remaining))
}

// Paused implements throttle.Observer.
func (o *ThrottleObserver) Paused(tenant string, paused bool) {
	if o == nil || o.m == nil {
		return
	}
	v := 0.0
	if paused {
		v = 1
	}
	o.m.throttledTenant.WithLabelValues(tenant).Set(v)
}

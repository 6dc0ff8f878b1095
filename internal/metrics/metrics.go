// Package metrics is dirsync's Prometheus instrumentation. One *Metrics per
// process owns its own registry (no global state), served on the separate
// metrics listener (DIRSYNC_METRICS_ADDR) so it need not be public. Every
// method is safe on a nil *Metrics, so components built without metrics (tests,
// tools) need no checks.
//
// Labels are bounded by design: GraphQL operation names are capped (clients
// choose them), fields come from the schema, integrations and tenants from
// admin-created rows; no user ids and no raw paths.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxOperationNames bounds the distinct GraphQL operation names recorded;
// later names are counted as "other", so a client cannot grow the series
// without limit by inventing names.
const MaxOperationNames = 200

// Metrics holds the collectors of one process.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests     *prometheus.CounterVec
	gqlErrors        *prometheus.CounterVec
	resolverDuration *prometheus.HistogramVec
	subscriptions    *prometheus.GaugeVec

	tasks        *prometheus.CounterVec
	taskDuration *prometheus.HistogramVec

	graphCalls    *prometheus.CounterVec
	graphDuration *prometheus.HistogramVec

	throttle429s    *prometheus.CounterVec
	throttleWait    *prometheus.CounterVec
	throttleBudget  *prometheus.GaugeVec
	throttledTenant *prometheus.GaugeVec

	opsMu sync.Mutex
	ops   map[string]bool
}

// New builds the collectors and registers them, with the Go runtime and process
// collectors, on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ops: map[string]bool{},
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_http_requests_total",
			Help: "HTTP requests served, by GraphQL operation name (or route for other endpoints) and status code.",
		}, []string{"operation", "status"}),
		gqlErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_graphql_errors_total",
			Help: "Errors in GraphQL responses, by extensions.code.",
		}, []string{"code"}),
		resolverDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dirsync_graphql_resolver_duration_seconds",
			Help:    "Latency of GraphQL resolvers (fields with a resolver), by Object.field.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"field"}),
		subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dirsync_subscription_connections",
			Help: "Open subscription connections, by transport (websocket, sse).",
		}, []string{"transport"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_tasks_total",
			Help: "Worker task attempts, by task kind and outcome (ok, error).",
		}, []string{"kind", "outcome"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dirsync_task_duration_seconds",
			Help:    "Duration of worker task attempts, by task kind.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}, []string{"kind"}),
		graphCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_graph_requests_total",
			Help: "Microsoft Graph HTTP requests (each attempt), by integration, method and status code (0: no answer).",
		}, []string{"integration", "method", "status"}),
		graphDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dirsync_graph_request_duration_seconds",
			Help:    "Latency of Microsoft Graph HTTP requests, by integration and method.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 8),
		}, []string{"integration", "method"}),
		throttle429s: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_graph_throttled_total",
			Help: "429 answers from Microsoft Graph, by tenant budget (tenant id/client id).",
		}, []string{"tenant"}),
		throttleWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_throttle_wait_seconds_total",
			Help: "Time Graph calls waited for the tenant budget, by tenant and reason (retry_after: a 429 pause; budget: the quota).",
		}, []string{"tenant", "reason"}),
		throttleBudget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dirsync_throttle_budget_remaining",
			Help: "Calls left in the tenant's budget at its last use, by tenant and kind (read, write).",
		}, []string{"tenant", "kind"}),
		throttledTenant: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dirsync_throttle_paused",
			Help: "1 while this process sees the tenant paused by a 429's Retry-After, else 0.",
		}, []string{"tenant"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.gqlErrors, m.resolverDuration, m.subscriptions,
		m.tasks, m.taskDuration, m.graphCalls, m.graphDuration,
		m.throttle429s, m.throttleWait, m.throttleBudget, m.throttledTenant,
	)
	return m
}

// Register adds more collectors (the database and queue collectors).
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	if m == nil {
		return nil
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Gatherer exposes the registry (tests).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the registry in the Prometheus text format. A failing
// collector (database down) leaves its series out instead of failing the scrape.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// operationLabel returns name if it is among the first MaxOperationNames seen.
func (m *Metrics) operationLabel(name string) string {
	if name == "" {
		return "anonymous"
	}
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	if m.ops[name] {
		return name
	}
	if len(m.ops) >= MaxOperationNames || len(name) > 100 {
		return "other"
	}
	m.ops[name] = true
	return name
}

// Task records one worker task attempt.
func (m *Metrics) Task(kind string, err error, d time.Duration) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.tasks.WithLabelValues(kind, outcome).Inc()
	m.taskDuration.WithLabelValues(kind).Observe(d.Seconds())
}

package metrics

import (
	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// NewQueueCollector is asynq's own queue collector (asynq_tasks_enqueued_total,
// asynq_queue_size, asynq_queue_latency_seconds, ...), reading Redis at
// scrape time. The returned close function releases its Redis connection.
func NewQueueCollector(redis asynq.RedisConnOpt) (prometheus.Collector, func() error) {
	insp := asynq.NewInspector(redis)
	return asynqmetrics.NewQueueMetricsCollector(insp), insp.Close
}

package metrics

import (
	"context"
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// jobDurationBuckets bound dirsync_job_duration_seconds (creation to finish).
var jobDurationBuckets = []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// DBCollector reads the job and outbox figures from PostgreSQL at scrape time,
// so they are right whichever process did the work. Register it in one kind of
// process only (the worker), or sums across processes count twice.
type DBCollector struct {
	db      *sql.DB
	timeout time.Duration

	jobs          *prometheus.Desc
	jobDuration   *prometheus.Desc
	outboxBacklog *prometheus.Desc
	outboxOldest  *prometheus.Desc
}

// NewDBCollector builds the collector on db.
func NewDBCollector(db *sql.DB) *DBCollector {
	return &DBCollector{
		db:      db,
		timeout: 5 * time.Second,
		jobs: prometheus.NewDesc("dirsync_jobs",
			"Jobs in the database, by kind and status.", []string{"kind", "status"}, nil),
		jobDuration: prometheus.NewDesc("dirsync_job_duration_seconds",
			"Time from a job's creation to its end, for finished jobs, by kind.", []string{"kind"}, nil),
		outboxBacklog: prometheus.NewDesc("dirsync_outbox_backlog",
			"Outbox rows not yet dispatched to the queue.", nil, nil),
		outboxOldest: prometheus.NewDesc("dirsync_outbox_oldest_pending_age_seconds",
			"Age of the oldest outbox row not yet dispatched (0 when none).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *DBCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.jobDuration
	ch <- c.outboxBacklog
	ch <- c.outboxOldest
}

// Collect implements prometheus.Collector.
func (c *DBCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.collectJobs(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(c.jobs, err)
	}
	if err := c.collectDurations(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(c.jobDuration, err)
	}
	var n int64
	var age float64
	err := c.db.QueryRowContext(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)
		FROM outbox WHERE dispatched_at IS NULL`).Scan(&n, &age)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.outboxBacklog, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.outboxBacklog, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.outboxOldest, prometheus.GaugeValue, max(age, 0))
}

func (c *DBCollector) collectJobs(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.db.QueryContext(ctx, `SELECT kind, status, count(*) FROM jobs GROUP BY kind, status`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var kind, status string
		var n int64
		if err := rows.Scan(&kind, &status, &n); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(n), kind, status)
	}
	return rows.Err()
}

func (c *DBCollector) collectDurations(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.db.QueryContext(ctx, `SELECT kind, EXTRACT(EPOCH FROM finished_at - created_at)
		FROM jobs WHERE finished_at IS NOT NULL`)
	if err != nil {
		return err
	}
	defer rows.Close()
	type hist struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	byKind := map[string]*hist{}
	for rows.Next() {
		var kind string
		var d float64
		if err := rows.Scan(&kind, &d); err != nil {
			return err
		}
		h := byKind[kind]
		if h == nil {
			h = &hist{buckets: map[float64]uint64{}}
			byKind[kind] = h
		}
		h.count++
		h.sum += d
		for _, b := range jobDurationBuckets {
			if d <= b {
				h.buckets[b]++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for kind, h := range byKind {
		ch <- prometheus.MustNewConstHistogram(c.jobDuration, h.count, h.sum, h.buckets, kind)
	}
	return nil
}

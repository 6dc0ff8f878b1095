// Package outbox moves remote work from PostgreSQL into asynq. Mutations write an
// outbox row in the same transaction as the state change (so work is never lost
// to a rollback, nor run before its data is visible); the relay claims undispatched
// rows with FOR UPDATE SKIP LOCKED (so several relays share the load), enqueues each
// with a task id made from the row's task_uuid (so a row relayed twice is one
// task), and stamps it.
// It wakes on LISTEN/NOTIFY and polls as a fallback; when Redis is down the rows
// simply wait.
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/lib/pq"
)

// Channel is the NOTIFY channel written by Notify and listened to by the relay.
const Channel = "dirsync_outbox"

// Enqueuer is the part of *asynq.Client the relay uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Config configures a Relay.
type Config struct {
	DB          *sql.DB
	DatabaseURL string // for the LISTEN connection; empty = poll only
	Enqueuer    Enqueuer
	// TaskOptions are added to every enqueue (queue, max retry, retention...). The
	// retention must outlast any chance of re-relaying a row, since the task id is
	// what makes a second relay a no-op.
	TaskOptions []asynq.Option
	BatchSize   int           // default 200
	Poll        time.Duration // fallback poll interval, default 2 s
	// KeepDispatched is how long dispatched rows stay (for inspection) before
	// Run prunes them, hourly; default 7 days. Only dispatched rows go, so
	// pruning never drops or repeats work.
	KeepDispatched time.Duration
	// BeforeEnqueue, when set, sees each claimed batch after its rows are
	// committed (the relay only sees committed rows) and before any of them
	// reaches asynq, so nothing it announces can be overtaken by the work
	// itself. It must not block for long; its failures are its own.
	BeforeEnqueue func(ctx context.Context, rows []Row)
	Logger        *slog.Logger
}

// Row is one claimed outbox row.
type Row struct {
	ID       int64
	Kind     string
	Payload  []byte
	TaskUUID uuid.UUID
}

// Relay is the outbox → asynq pump.
type Relay struct{ cfg Config }

// New validates cfg.
func New(cfg Config) (*Relay, error) {
	if cfg.DB == nil || cfg.Enqueuer == nil {
		return nil, errors.New("outbox: DB and Enqueuer required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 200
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.KeepDispatched <= 0 {
		cfg.KeepDispatched = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Relay{cfg: cfg}, nil
}

// Run relays until ctx ends. Enqueue failures (Redis down) are logged and retried
// on the next wake-up or poll; they never drop a row. An unreachable database
// for LISTEN only costs latency: the poll keeps going while the listener
// reconnects in the background.
func (r *Relay) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := make(chan struct{}, 1)
	if r.cfg.DatabaseURL != "" {
		listenerDone := make(chan struct{})
		go func() {
			defer close(listenerDone)
			r.listen(ctx, wake)
		}()
		defer func() { cancel(); <-listenerDone }()
	}
	tick := time.NewTicker(r.cfg.Poll)
	defer tick.Stop()
	var lastPrune time.Time
	for {
		if _, err := r.Drain(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("outbox: relay pass failed; rows stay queued", "err", err)
		}
		if time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			if _, err := r.Prune(ctx, r.cfg.KeepDispatched); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("outbox: prune failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
	}
}

// Prune deletes rows dispatched more than olderThan ago, in bounded batches,
// and returns how many it deleted. Undispatched rows are never touched.
func (r *Relay) Prune(ctx context.Context, olderThan time.Duration) (int, error) {
	total := 0
	for {
		res, err := r.cfg.DB.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (
			SELECT id FROM outbox WHERE dispatched_at < now() - make_interval(secs => $1) LIMIT 5000)`,
			olderThan.Seconds())
		if err != nil {
			return total, fmt.Errorf("outbox: prune: %w", err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
		if n < 5000 {
			return total, nil
		}
	}
}

// listen forwards NOTIFYs on Channel to wake until ctx ends. pq's Listen
// blocks until a connection is up, so it runs here, never in Run's way.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	l := pq.NewListener(r.cfg.DatabaseURL, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("outbox: listener", "event", int(ev), "err", err)
		}
	})
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer func() {
		if stop() { // ctx still live: close ourselves
			_ = l.Close()
		}
	}()
	if err := l.Listen(Channel); err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.Warn("outbox: LISTEN failed, polling only", "err", err)
		}
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-l.Notify: // nil after a reconnect: rows may have been missed, drain anyway
			if !ok {
				return
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
}

// Drain relays batches until no undispatched row is left, returning how many rows
// it dispatched.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.relayBatch(ctx)
		total += n
		if err != nil || n < r.cfg.BatchSize {
			return total, err
		}
	}
}

func (r *Relay) relayBatch(ctx context.Context) (int, error) {
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT id, kind, payload, task_uuid FROM outbox
		WHERE dispatched_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("outbox: claim: %w", err)
	}
	var claimed []Row
	for rows.Next() {
		var x Row
		if err := rows.Scan(&x.ID, &x.Kind, &x.Payload, &x.TaskUUID); err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox: scan: %w", err)
		}
		claimed = append(claimed, x)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("outbox: claim: %w", err)
	}
	if len(claimed) > 0 && r.cfg.BeforeEnqueue != nil {
		r.cfg.BeforeEnqueue(ctx, claimed)
	}
	var done []int64
	var enqErr error
	for _, x := range claimed {
		opts := append([]asynq.Option{asynq.TaskID(TaskID(x.TaskUUID))}, r.cfg.TaskOptions...)
		_, err := r.cfg.Enqueuer.EnqueueContext(ctx, asynq.NewTask(x.Kind, x.Payload), opts...)
		// A conflict means this very row was enqueued before (a relay died
		// between enqueue and commit): the id is the row's own random UUID,
		// which no other row, database or deployment produces.
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			enqErr = fmt.Errorf("outbox: enqueue row %d: %w", x.ID, err)
			break
		}
		done = append(done, x.ID)
	}
	if len(done) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET dispatched_at = now() WHERE id = ANY($1)`, pq.Array(done)); err != nil {
			return 0, fmt.Errorf("outbox: mark dispatched: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		// The enqueued rows will be relayed again; their task ids make that a no-op.
		return 0, fmt.Errorf("outbox: commit: %w", err)
	}
	if enqErr != nil {
		return len(done), enqErr
	}
	return len(done), nil
}

// TaskID is the asynq task id of the outbox row with this task_uuid. It never
// looks like the ids of earlier versions ("outbox-<row id>"), so a Redis that
// still holds those cannot answer for a new row.
func TaskID(taskUUID uuid.UUID) string { return "outbox-" + taskUUID.String() }

// Pending counts undispatched rows (readiness, metrics, tests).
func Pending(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE dispatched_at IS NULL`).Scan(&n)
	return n, err
}

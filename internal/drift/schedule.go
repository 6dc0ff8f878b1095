package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
)

// KindRound is the asynq task type of one drift round (payload Task). Never
// rename it: tasks may sit in a queue; add a new version instead.
const KindRound = "drift:round:v1"

// Task is the payload of a drift round: ids only, like every task.
type Task struct {
	OrgID         pulid.ID `json:"org"`
	IntegrationID pulid.ID `json:"integration"`
	// Period is the number of the interval the round belongs to (its task id).
	Period int64 `json:"period"`
}

// HandleTask runs the round a KindRound task asks for (worker.TaskFunc). A
// failed round is not retried: the next period's round reads the same
// changes, since the deltaLink is stored only by a round that completed.
func (d *Detector) HandleTask(ctx context.Context, payload []byte, _ bool) error {
	var t Task
	if err := json.Unmarshal(payload, &t); err != nil {
		return fmt.Errorf("drift: %s payload: %v: %w", KindRound, err, asynq.SkipRetry)
	}
	if _, err := d.Round(ctx, t.OrgID, t.IntegrationID); err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return nil
}

// Scheduler enqueues one drift round per authorized integration and period.
// Every worker process runs one; the task id names the integration and the
// period, so replicas enqueueing the same round collide
// (asynq.ErrTaskIDConflict) and it runs once across the fleet.
type Scheduler struct {
	Ent    *ent.Client
	Client *asynq.Client
	// Every is the interval (DIRSYNC_DRIFT_INTERVAL); must be > 0.
	Every time.Duration
	Queue string
	// Retention keeps a finished round's id taken (default 2×Every), so a
	// replica starting late in the period does not run it again.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// TaskID names the round of an integration in one period.
func TaskID(integrationID pulid.ID, every time.Duration, period int64) string {
	return fmt.Sprintf("drift-%s-%d-%d", integrationID, int64(every), period)
}

// Offset is the integration's fixed place inside each period: rounds of
// many integrations spread over the interval instead of hitting Redis,
// PostgreSQL and the Graph budgets at once, and every replica computes the
// same time for the same round.
func Offset(integrationID pulid.ID, every time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(integrationID))
	return time.Duration(h.Sum64() % uint64(every))
}

// ScheduleOnce enqueues the current period's round of every authorized
// integration, to run at the period's start plus the integration's offset.
// It returns how many it enqueued (rounds another replica already enqueued
// are not counted).
func (s *Scheduler) ScheduleOnce(ctx context.Context) (int, error) {
	now := s.now()
	period := now.UnixNano() / int64(s.Every)
	start := time.Unix(0, period*int64(s.Every))
	ins, err := s.Ent.Integration.Query().Where(integration.StatusEQ(integration.StatusAUTHORIZED)).
		Select(integration.FieldID, integration.FieldOrganizationID).All(auth.SystemContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("drift: list integrations: %w", err)
	}
	retention := s.Retention
	if retention <= 0 {
		retention = 2 * s.Every
	}
	n := 0
	var errs []error
	for _, in := range ins {
		payload, err := json.Marshal(Task{OrgID: in.OrganizationID, IntegrationID: in.ID, Period: period})
		if err != nil {
			return n, err
		}
		opts := []asynq.Option{asynq.TaskID(TaskID(in.ID, s.Every, period)), asynq.MaxRetry(0),
			asynq.Retention(retention), asynq.ProcessAt(start.Add(Offset(in.ID, s.Every)))}
		if s.Queue != "" {
			opts = append(opts, asynq.Queue(s.Queue))
		}
		_, err = s.Client.EnqueueContext(ctx, asynq.NewTask(KindRound, payload), opts...)
		switch {
		case err == nil:
			n++
		case errors.Is(err, asynq.ErrTaskIDConflict):
		default:
			errs = append(errs, fmt.Errorf("drift: schedule round of %s: %w", in.ID, err))
		}
	}
	return n, errors.Join(errs...)
}

// Run schedules until ctx ends, looking for new periods and newly
// authorized integrations a few times per period (at most every minute).
// It starts one interval after the worker did: a worker restart (a deploy,
// a crash loop) must not bring every integration's round forward, and the
// rounds of a long-running fleet are already scheduled by its peers.
func (s *Scheduler) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(s.Every):
	}
	tick := min(max(s.Every/4, time.Second), time.Minute)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if _, err := s.ScheduleOnce(ctx); err != nil && ctx.Err() == nil {
			s.logger().Warn("drift: scheduling rounds", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Scheduler) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

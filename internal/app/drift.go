package app

import (
	"context"

	"github.com/hibiken/asynq"

	"github.com/dirsync/dirsync/internal/drift"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/worker"
)

// Drift is the drift detector (internal/drift) on the app's connections.
func (a *App) Drift() (*drift.Detector, error) {
	r, err := provision.New(provision.Config{Ent: a.Ent, Tenants: a.Tenants, Publisher: a.Publisher, Logger: a.Log,
		Deployment: a.Cfg.DeploymentID})
	if err != nil {
		return nil, err
	}
	return drift.New(drift.Config{Ent: a.Ent, Tenants: a.Tenants, Reconciler: r, Publisher: a.Publisher, Logger: a.Log})
}

// driftTasks serves drift rounds and, unless DIRSYNC_DRIFT_INTERVAL is 0,
// schedules one per authorized integration and interval (docs/drift.md).
// Every worker schedules; the task ids make each round run once.
func (a *App) driftTasks(cfg *worker.Config) error {
	if a.Tenants == nil {
		return nil
	}
	d, err := a.Drift()
	if err != nil {
		return err
	}
	if cfg.Tasks == nil {
		cfg.Tasks = map[string]worker.TaskFunc{}
	}
	cfg.Tasks[drift.KindRound] = d.HandleTask
	if every := a.Cfg.DriftInterval; every > 0 {
		cfg.Background = append(cfg.Background, func(ctx context.Context, client *asynq.Client, queue string) {
			s := &drift.Scheduler{Ent: a.Ent, Client: client, Every: every, Queue: queue, Logger: a.Log.With("component", "drift")}
			s.Run(ctx)
		})
	}
	return nil
}

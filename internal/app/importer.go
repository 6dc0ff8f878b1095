package app

import (
	"context"

	"github.com/hibiken/asynq"

	"github.com/dirsync/dirsync/internal/importer"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/worker"
)

// tasks are the worker's handlers besides reconcile: imports (M2).
func (a *App) tasks() map[string]worker.TaskFunc {
	if a.Tenants == nil {
		return nil
	}
	h, err := importer.NewHandler(importer.HandlerConfig{Ent: a.Ent, Tenants: a.Tenants, Publisher: a.Publisher, Logger: a.Log})
	if err != nil {
		return nil
	}
	return map[string]worker.TaskFunc{jobs.KindImportUsers: ImportTask(h)}
}

// ImportTask adapts the import handler to the worker: a payload it cannot read
// is not retried.
func ImportTask(h *importer.Handler) worker.TaskFunc {
	return func(ctx context.Context, payload []byte, final bool) error {
		err := h.HandleTask(ctx, payload, final)
		if err != nil && importer.IsPermanent(err) {
			return asynq.SkipRetry
		}
		return err
	}
}

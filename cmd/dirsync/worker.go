package main

import (
	"context"
	"flag"

	"github.com/dirsync/dirsync/internal/app"
)

// runWorker runs the asynq server (reconcile tasks) and the outbox relay.
func runWorker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	concurrency := fs.Int("concurrency", 0, "tasks run in parallel by this process (default DIRSYNC_WORKER_CONCURRENCY, else 48)")
	noRelay := fs.Bool("no-relay", false, "do not relay the outbox (another process does)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := open(ctx, true)
	if err != nil {
		return err
	}
	defer a.Close()
	w, err := a.NewWorker(app.WorkerOptions{Concurrency: *concurrency, NoRelay: *noRelay})
	if err != nil {
		return err
	}
	return a.RunWorker(ctx, w, !*noRelay)
}

package app

import (
	"errors"
	"time"

	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/guard"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/worker"
)

// Reconciler is the reconcile handler (internal/provision) on the app's
// connections, and its Retry-After extractor for the worker's retry delays.
func (a *App) Reconciler() (worker.Handler, func(error) time.Duration, error) {
	if a.Tenants == nil {
		return nil, nil, errors.New("app: the worker needs DIRSYNC_SECRET_KEY to open integrations' client secrets")
	}
	r, err := provision.New(provision.Config{Ent: a.Ent, Tenants: a.Tenants, Publisher: a.Publisher, Logger: a.Log,
		Guard: guard.New(a.Log), Deployment: a.Cfg.DeploymentID})
	if err != nil {
		return nil, nil, err
	}
	return r, provision.RetryAfter, nil
}

// GroupReconciler is the security-group reconcile handler (internal/groupsync)
// on the app's connections.
func (a *App) GroupReconciler() (*groupsync.Reconciler, error) {
	return groupsync.New(groupsync.Config{Ent: a.Ent, Tenants: a.Tenants, Publisher: a.Publisher, Logger: a.Log,
		Deployment: a.Cfg.DeploymentID})
}

// Package jobs is the contract between the API and the worker: the typed task
// payloads, their stable kind strings, and Start, which records a user-visible
// Job (J1–J2) with one item per (user, integration) and the outbox rows that will
// run them — all on the caller's transaction, so work and state commit together.
package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/outbox"
)

// Task kinds: asynq task type names, stored in outbox rows. Never rename one that
// may sit in a queue; add a new version instead.
const (
	// KindReconcileUser converges one user in one integration (payload ReconcileUser).
	KindReconcileUser = "reconcile:user:v1"
	// KindReconcileGroup converges one user group's remote security group in
	// one integration (payload ReconcileGroup; G1–G4).
	KindReconcileGroup = "reconcile:group:v1"
	// KindImportUsers imports remote users into the directory (payload ImportUsers).
	KindImportUsers = "import:users:v1"
)

// Job kinds (Job.kind), what caused the work.
const (
	JobBindUsers         = "BIND_USERS"
	JobUnbindUsers       = "UNBIND_USERS"
	JobBindGroups        = "BIND_USER_GROUPS"
	JobUnbindGroups      = "UNBIND_USER_GROUPS"
	JobUserChange        = "USER_CHANGE"
	JobUserSuspend       = "USER_SUSPEND"
	JobUserActivate      = "USER_ACTIVATE"
	JobUserDelete        = "USER_DELETE"
	JobGroupMembers      = "GROUP_MEMBERSHIP"
	JobGroupDelete       = "USER_GROUP_DELETE"
	JobIntegrationChange = "INTEGRATION_CHANGE"
	// JobIntegrationAuthorize reconciles the users an integration already had
	// (bindings kept across a credential change) once it is authorized again.
	JobIntegrationAuthorize = "INTEGRATION_AUTHORIZE"
	// JobRetry re-runs the failed items of another job (Job.retry_of_id).
	JobRetry = "RETRY"
	// JobResyncUsers and JobResyncIntegration force a reconcile that re-reads
	// the remote accounts (ReconcileUser.Force).
	JobResyncUsers       = "RESYNC_USERS"
	JobResyncIntegration = "RESYNC_INTEGRATION"
	// JobGroupChange: a user group's name or description changed (G3 renames).
	JobGroupChange = "USER_GROUP_CHANGE"
	// JobImportUsers imports remote users of an integration (M2).
	JobImportUsers = "IMPORT_USERS"
	// JobDriftCorrection re-applies what a drift round found edited in the
	// tenant (forced reconciles; docs/drift.md).
	JobDriftCorrection = "DRIFT_CORRECTION"
)

// ImportUsers asks the worker to import remote users into the organization:
// the listed ones, or every active one (All). Where a run stopped is kept on
// the job (its checkpoint), not here, so a retried or continued task resumes.
type ImportUsers struct {
	OrgID         pulid.ID `json:"org"`
	IntegrationID pulid.ID `json:"integration"`
	JobID         pulid.ID `json:"job"`
	All           bool     `json:"all,omitempty"`
	RemoteIDs     []string `json:"remoteIds,omitempty"`
}

// ReconcileUser asks the worker to converge one user in one integration. It
// carries ids only: the handler reads the current state when it runs, so a late,
// repeated or reordered task is harmless. LinkID is set when the user is gone
// (X3) and only the link knows the remote object.
type ReconcileUser struct {
	OrgID         pulid.ID `json:"org"`
	IntegrationID pulid.ID `json:"integration"`
	UserID        pulid.ID `json:"user,omitempty"`
	LinkID        pulid.ID `json:"link,omitempty"`
	JobID         pulid.ID `json:"job,omitempty"`
	ItemID        pulid.ID `json:"item,omitempty"`
	// Force: read the remote account even when the applied hash says nothing
	// changed, and re-apply what drifted (resync, retry).
	Force bool `json:"force,omitempty"`
	// ForceTakeover: take over an account another integration or dirsync
	// deployment marked as its own (bind with force: true; docs/ownership.md).
	ForceTakeover bool `json:"forceTakeover,omitempty"`
	// ReleaseOwnership: when this reconcile stops managing the account,
	// remove our ownership marker (unbind with releaseOwnership: true).
	ReleaseOwnership bool `json:"releaseOwnership,omitempty"`
}

// ReconcileGroup asks the worker to converge one user group's remote security
// group in one integration (G1–G4). Ids only, like ReconcileUser. LinkID is
// set when the group may be gone (G4) and only the link knows the remote
// group. ItemID is empty for follow-up passes that a member's new user link
// asked for: they belong to the job that caused them but count no item.
type ReconcileGroup struct {
	OrgID         pulid.ID `json:"org"`
	IntegrationID pulid.ID `json:"integration"`
	GroupID       pulid.ID `json:"group,omitempty"`
	LinkID        pulid.ID `json:"link,omitempty"`
	JobID         pulid.ID `json:"job,omitempty"`
	ItemID        pulid.ID `json:"item,omitempty"`
	// Force: resolve the remote group again even when a drift round marked
	// it deleted in the tenant (REMOTE_DELETED); resyncs set it.
	Force bool `json:"force,omitempty"`
	// ForceTakeover and ReleaseOwnership: as for ReconcileUser.
	ForceTakeover    bool `json:"forceTakeover,omitempty"`
	ReleaseOwnership bool `json:"releaseOwnership,omitempty"`
}

// Target is one (user, integration) a job must reconcile, or with Group set
// one (group, integration).
type Target struct {
	IntegrationID pulid.ID
	UserID        pulid.ID
	LinkID        pulid.ID
	Force         bool
	GroupID       pulid.ID
	Group         bool
	// ForceTakeover and ReleaseOwnership: see ReconcileUser.
	ForceTakeover    bool
	ReleaseOwnership bool
}

// bulkChunk bounds the rows of one INSERT: PostgreSQL accepts at most 65,535
// parameters per statement, and a job over a large bound group has thousands
// of items of about ten columns each.
const bulkChunk = 1000

// Start records a job of kind with one item and one outbox row per distinct
// target, on c (the caller's transactional client), and wakes the relay at
// commit. No targets: no job, nil.
func Start(ctx context.Context, c *ent.Client, orgID pulid.ID, kind string, integrationID pulid.ID, targets []Target, opts ...Option) (*ent.Job, error) {
	targets = dedupe(targets)
	if len(targets) == 0 {
		return nil, nil
	}
	jc := c.Job.Create().SetOrganizationID(orgID).SetKind(kind).SetTotal(len(targets))
	if integrationID != "" {
		jc.SetIntegrationID(integrationID)
	}
	for _, o := range opts {
		o(jc)
	}
	job, err := jc.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: create job: %w", err)
	}
	items := make([]*ent.JobItemCreate, len(targets))
	for i, t := range targets {
		ic := c.JobItem.Create().SetOrganizationID(orgID).SetJobID(job.ID).SetIntegrationID(t.IntegrationID)
		if t.UserID != "" {
			ic.SetUserID(t.UserID)
		}
		if t.LinkID != "" {
			ic.SetLinkID(t.LinkID)
		}
		if t.GroupID != "" {
			ic.SetGroupID(t.GroupID)
		}
		items[i] = ic
	}
	created := make([]*ent.JobItem, 0, len(items))
	for chunk := range slices.Chunk(items, bulkChunk) {
		saved, err := c.JobItem.CreateBulk(chunk...).Save(ctx)
		if err != nil {
			return nil, fmt.Errorf("jobs: create items: %w", err)
		}
		created = append(created, saved...)
	}
	rows := make([]*ent.OutboxCreate, len(targets))
	for i, t := range targets {
		kind, task := KindReconcileUser, any(ReconcileUser{
			OrgID: orgID, IntegrationID: t.IntegrationID, UserID: t.UserID, LinkID: t.LinkID,
			JobID: job.ID, ItemID: created[i].ID, Force: t.Force,
			ForceTakeover: t.ForceTakeover, ReleaseOwnership: t.ReleaseOwnership,
		})
		if t.Group {
			kind, task = KindReconcileGroup, ReconcileGroup{OrgID: orgID, IntegrationID: t.IntegrationID,
				GroupID: t.GroupID, LinkID: t.LinkID, JobID: job.ID, ItemID: created[i].ID, Force: t.Force,
				ForceTakeover: t.ForceTakeover, ReleaseOwnership: t.ReleaseOwnership}
		}
		payload, err := json.Marshal(task)
		if err != nil {
			return nil, err
		}
		rows[i] = c.Outbox.Create().SetOrganizationID(orgID).SetKind(kind).SetPayload(payload).
			SetJobItemID(created[i].ID) // how the sweeper finds the item's task
	}
	for chunk := range slices.Chunk(rows, bulkChunk) {
		if err := c.Outbox.CreateBulk(chunk...).Exec(ctx); err != nil {
			return nil, fmt.Errorf("jobs: write outbox: %w", err)
		}
	}
	// Delivered at commit, not before: the relay never sees rows that may roll back.
	if _, err := c.ExecContext(ctx, "SELECT pg_notify($1, '')", outbox.Channel); err != nil {
		return nil, fmt.Errorf("jobs: notify relay: %w", err)
	}
	return job, nil
}

// Option adjusts the job Start records.
type Option func(*ent.JobCreate)

// RetryOf records that the job re-runs the failed items of job id.
func RetryOf(id pulid.ID) Option {
	return func(jc *ent.JobCreate) { jc.SetRetryOfID(id) }
}

func dedupe(ts []Target) []Target {
	seen := make(map[Target]bool, len(ts))
	out := ts[:0:0]
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// List returns the jobs as a slice for GraphQL payloads: never nil.
func List(js ...*ent.Job) []*ent.Job {
	out := make([]*ent.Job, 0, len(js))
	for _, j := range js {
		if j != nil {
			out = append(out, j)
		}
	}
	return out
}

// Enqueue writes outbox rows for tasks that belong to no job item (follow-up
// passes), on c, and wakes the relay at commit.
func Enqueue(ctx context.Context, c *ent.Client, orgID pulid.ID, kind string, tasks ...any) error {
	if len(tasks) == 0 {
		return nil
	}
	rows := make([]*ent.OutboxCreate, len(tasks))
	for i, t := range tasks {
		payload, err := json.Marshal(t)
		if err != nil {
			return err
		}
		rows[i] = c.Outbox.Create().SetOrganizationID(orgID).SetKind(kind).SetPayload(payload)
	}
	if err := c.Outbox.CreateBulk(rows...).Exec(ctx); err != nil {
		return fmt.Errorf("jobs: write outbox: %w", err)
	}
	if _, err := c.ExecContext(ctx, "SELECT pg_notify($1, '')", outbox.Channel); err != nil {
		return fmt.Errorf("jobs: notify relay: %w", err)
	}
	return nil
}

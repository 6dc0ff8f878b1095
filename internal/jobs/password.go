package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/outbox"
)

// Password task and job kinds (W1, X5, X6).
const (
	// KindPushPassword writes one user's password to one integration (payload
	// PushPassword). The only task that carries data: the password, sealed.
	KindPushPassword = "push:password:v1"
	// KindSweepPasswords finds expired and locked-out users (X5, X6) and
	// starts the reconciles that suspend or re-enable them; no payload.
	KindSweepPasswords = "sweep:passwords:v1"

	JobPasswordSet    = "PASSWORD_SET"
	JobPasswordLogin  = "PASSWORD_LOGIN"
	JobPasswordPolicy = "PASSWORD_POLICY"
)

// PushPassword asks the worker to write a password to one user's account in
// one integration. Sealed is the password sealed with the server's key and
// bound (associated data, PushAAD) to organization, user, integration and
// version, so it opens for this push only; the handler erases it from the
// outbox row once the push succeeded or finally failed (W2). Version is the
// user's password version the push carries: an older one than the user's
// current is superseded and not sent (W3).
type PushPassword struct {
	OrgID         pulid.ID `json:"org"`
	IntegrationID pulid.ID `json:"integration"`
	UserID        pulid.ID `json:"user"`
	JobID         pulid.ID `json:"job,omitempty"`
	ItemID        pulid.ID `json:"item,omitempty"`
	Version       int      `json:"version"`
	ForceChange   bool     `json:"forceChange,omitempty"`
	Sealed        string   `json:"sealed,omitempty"`
}

// PushAAD is the associated data a pushed password is sealed with.
func PushAAD(orgID, userID, integrationID pulid.ID, version int) []byte {
	return fmt.Appendf(nil, "dirsync:password-push:v1:%s:%s:%s:%d", orgID, userID, integrationID, version)
}

// StartPush records a job of kind with one item and one push task per
// integration, on c (the caller's transaction). seal returns the sealed
// password for one integration. No integrations: no job, nil.
func StartPush(ctx context.Context, c *ent.Client, orgID, userID pulid.ID, kind string, integrationIDs []pulid.ID,
	version int, forceChange bool, seal func(integrationID pulid.ID) (string, error)) (*ent.Job, error) {
	targets := make([]Target, 0, len(integrationIDs))
	for _, id := range integrationIDs {
		targets = append(targets, Target{IntegrationID: id, UserID: userID})
	}
	targets = dedupe(targets)
	if len(targets) == 0 {
		return nil, nil
	}
	job, err := c.Job.Create().SetOrganizationID(orgID).SetKind(kind).SetTotal(len(targets)).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: create job: %w", err)
	}
	for _, t := range targets {
		item, err := c.JobItem.Create().SetOrganizationID(orgID).SetJobID(job.ID).
			SetIntegrationID(t.IntegrationID).SetUserID(userID).Save(ctx)
		if err != nil {
			return nil, fmt.Errorf("jobs: create item: %w", err)
		}
		sealed, err := seal(t.IntegrationID)
		if err != nil {
			return nil, err
		}
		payload, err := json.Marshal(PushPassword{OrgID: orgID, IntegrationID: t.IntegrationID, UserID: userID,
			JobID: job.ID, ItemID: item.ID, Version: version, ForceChange: forceChange, Sealed: sealed})
		if err != nil {
			return nil, err
		}
		if err := c.Outbox.Create().SetOrganizationID(orgID).SetKind(KindPushPassword).SetPayload(payload).
			SetJobItemID(item.ID).Exec(ctx); err != nil {
			return nil, fmt.Errorf("jobs: write outbox: %w", err)
		}
	}
	if _, err := c.ExecContext(ctx, "SELECT pg_notify($1, '')", outbox.Channel); err != nil {
		return nil, fmt.Errorf("jobs: notify relay: %w", err)
	}
	return job, nil
}

// Erased is the payload a push's outbox row keeps once the push is over: the
// ids without the sealed password (W2).
func (p PushPassword) Erased() []byte {
	p.Sealed = ""
	b, _ := json.Marshal(p)
	return b
}

// Package guard is the mass-deprovision guard (issue 14): when the disables
// one job would cause in one integration, added to those other jobs were
// admitted to cause there in the last 10 minutes, exceed the integration's
// threshold, the job's disables wait (job and items AWAITING_APPROVAL) until
// an administrator approves or cancels them. Everything else of the job —
// creates, updates, enables — goes on.
//
// The decision is made once per (job, integration), by the first item of the
// job that would disable an account, on that reconcile's transaction and
// under a per-integration advisory lock, and recorded as a DeprovisionBatch
// row: the count lives in PostgreSQL, so it holds across any number of
// workers. The job's planned disables are counted with provision.PlanStored,
// the same planning the reconcile runs, so what is counted is what would run.
package guard

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/deprovisionbatch"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/provision"
)

// Defaults of the threshold: the larger of DefaultMin users and
// DefaultPercent % of the integration's linked users.
const (
	DefaultMin     = 25
	DefaultPercent = 10
	// Window is the rolling period whose admitted disables count together.
	Window = 10 * time.Minute
)

// Event types and the notification kind the guard records (J3).
const (
	EventAwaitingApproval = "deprovision_awaiting_approval"
	EventApproved         = "deprovision_approved"
	EventCancelled        = "deprovision_cancelled"
	NotificationApproval  = "deprovision_approval_needed"
)

// Threshold is an integration's guard setting as it applies now.
type Threshold struct {
	// Off: the guard is disabled for the integration.
	Off bool
	// Limit is the most disables allowed without approval (when !Off).
	Limit int
	// Default: Limit is the default formula, not a configured number.
	Default bool
}

// ThresholdOf reads the integration's threshold; the default counts its
// linked users (links that name a remote account) with c.
func ThresholdOf(ctx context.Context, c *ent.Client, in *ent.Integration) (Threshold, error) {
	if in.DeprovisionGuardOff {
		return Threshold{Off: true}, nil
	}
	if in.DeprovisionThreshold != nil {
		return Threshold{Limit: *in.DeprovisionThreshold}, nil
	}
	linked, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID),
		remotelink.KindEQ(remotelink.KindUSER), remotelink.RemoteIDNEQ("")).Count(ctx)
	if err != nil {
		return Threshold{}, fmt.Errorf("guard: count linked users: %w", err)
	}
	return Threshold{Limit: DefaultLimit(linked), Default: true}, nil
}

// DefaultLimit is the default threshold for an integration with linked users:
// 25, or 10 % of them (rounded down) when that is larger.
func DefaultLimit(linked int) int {
	return max(DefaultMin, linked*DefaultPercent/100)
}

// Exceeds reports whether planned disables, on top of window disables already
// admitted in the rolling period, go beyond the limit.
func (t Threshold) Exceeds(planned, window int) bool {
	return !t.Off && planned+window > t.Limit
}

// Guard implements provision.Guard for the worker.
type Guard struct {
	Logger *slog.Logger
	Now    func() time.Time
}

// New returns a Guard with defaults filled.
func New(logger *slog.Logger) *Guard {
	if logger == nil {
		logger = slog.Default()
	}
	return &Guard{Logger: logger.With("component", "guard"), Now: time.Now}
}

var _ provision.Guard = (*Guard)(nil)

// Admit decides whether the item t, about to disable an account in in, may
// do so. Hold: the item and its job are AWAITING_APPROVAL now (on c). c must
// be the reconcile's transaction: the decision commits with it.
func (g *Guard) Admit(ctx context.Context, c *ent.Client, in *ent.Integration, t provision.GuardTask) (provision.Verdict, error) {
	b, err := batchOf(ctx, c, t.JobID, in.ID)
	if err != nil {
		return 0, err
	}
	if b == nil {
		// First disable of the job here: decide under the integration's lock,
		// so two jobs' decisions see each other's rows (rolling window).
		if err := lockIntegration(ctx, c, in.ID); err != nil {
			return 0, err
		}
		if b, err = batchOf(ctx, c, t.JobID, in.ID); err != nil {
			return 0, err
		}
	}
	if b == nil {
		if b, err = g.decide(ctx, c, in, t); err != nil {
			return 0, err
		}
		if b == nil {
			return provision.Proceed, nil // guard off
		}
	}
	switch b.Status {
	case deprovisionbatch.StatusAWAITING_APPROVAL:
		return provision.Hold, g.hold(ctx, c, t)
	case deprovisionbatch.StatusCANCELLED:
		return provision.Drop, nil
	}
	return provision.Proceed, nil
}

// batchOf reads the job's decision FOR SHARE: until the reconcile commits,
// approveJob and cancelJob (which lock it FOR UPDATE first) wait, so an item
// that read AWAITING_APPROVAL is held before the approval looks for held
// items, never after it.
func batchOf(ctx context.Context, c *ent.Client, jobID, integrationID pulid.ID) (*ent.DeprovisionBatch, error) {
	b, err := c.DeprovisionBatch.Query().Where(deprovisionbatch.JobID(jobID), deprovisionbatch.IntegrationID(integrationID)).
		ForShare().Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("guard: read decision: %w", err)
	}
	return b, nil
}

// lockIntegration takes the transaction-scoped advisory lock that serialises
// the guard's decisions of one integration.
func lockIntegration(ctx context.Context, c *ent.Client, id pulid.ID) error {
	h := fnv.New64a()
	_, _ = h.Write([]byte("dirsync:guard:" + string(id)))
	if _, err := c.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("guard: lock integration %s: %w", id, err)
	}
	return nil
}

// decide records the job's decision for the integration; nil when the guard
// is off (nothing recorded, nothing counted).
func (g *Guard) decide(ctx context.Context, c *ent.Client, in *ent.Integration, t provision.GuardTask) (*ent.DeprovisionBatch, error) {
	th, err := ThresholdOf(ctx, c, in)
	if err != nil || th.Off {
		return nil, err
	}
	now := g.Now()
	planned, err := PlannedDisables(ctx, c, in, t.JobID, now)
	if err != nil {
		return nil, err
	}
	window, err := WindowDisables(ctx, c, in.ID, now)
	if err != nil {
		return nil, err
	}
	status := deprovisionbatch.StatusADMITTED
	if th.Exceeds(planned, window) {
		status = deprovisionbatch.StatusAWAITING_APPROVAL
	}
	b, err := c.DeprovisionBatch.Create().SetOrganizationID(t.OrgID).SetIntegrationID(in.ID).SetJobID(t.JobID).
		SetPlanned(planned).SetThreshold(th.Limit).SetWindowPlanned(window).SetStatus(status).
		SetCreatedAt(now).SetUpdatedAt(now).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("guard: record decision: %w", err)
	}
	g.Logger.Info("guard: decided", "job", string(t.JobID), "integration", string(in.ID),
		"planned", planned, "window", window, "threshold", th.Limit, "status", status)
	if status != deprovisionbatch.StatusAWAITING_APPROVAL {
		return b, nil
	}
	detail := fmt.Sprintf("job %s would disable %d remote accounts in integration %q", t.JobID, planned, in.Name)
	if window > 0 {
		detail += fmt.Sprintf(" after %d admitted in the last %s", window, Window)
	}
	detail += fmt.Sprintf(", more than its mass-deprovision threshold of %d: the disables wait for approveJob or cancelJob", th.Limit)
	if err := c.Event.Create().SetOrganizationID(t.OrgID).SetType(EventAwaitingApproval).SetIntegrationID(in.ID).
		SetJobID(t.JobID).SetDetail(detail).Exec(ctx); err != nil {
		return nil, fmt.Errorf("guard: record event: %w", err)
	}
	if err := c.Notification.Create().SetOrganizationID(t.OrgID).SetKind(NotificationApproval).SetJobID(t.JobID).
		SetMessage(detail).Exec(ctx); err != nil {
		return nil, fmt.Errorf("guard: record notification: %w", err)
	}
	return b, nil
}

// hold parks the item and marks its job.
func (g *Guard) hold(ctx context.Context, c *ent.Client, t provision.GuardTask) error {
	now := g.Now()
	if _, err := c.ExecContext(ctx, `UPDATE job_items SET status = 'AWAITING_APPROVAL', result = '', updated_at = $4
		WHERE id = $1 AND organization_id = $2 AND job_id = $3 AND status = 'PENDING'`,
		t.ItemID, t.OrgID, t.JobID, now); err != nil {
		return fmt.Errorf("guard: hold item %s: %w", t.ItemID, err)
	}
	if _, err := c.ExecContext(ctx, `UPDATE jobs SET status = 'AWAITING_APPROVAL', updated_at = $3,
		started_at = COALESCE(started_at, $3)
		WHERE id = $1 AND organization_id = $2 AND status IN ('QUEUED', 'RUNNING')`,
		t.JobID, t.OrgID, now); err != nil {
		return fmt.Errorf("guard: hold job %s: %w", t.JobID, err)
	}
	return nil
}

// WindowDisables is the disables admitted (without approval) in the
// integration during the rolling window before now. Approved batches do not
// count: an administrator agreed to them explicitly.
func WindowDisables(ctx context.Context, c *ent.Client, integrationID pulid.ID, now time.Time) (int, error) {
	var rows []struct {
		Sum int `json:"sum"`
	}
	err := c.DeprovisionBatch.Query().Where(deprovisionbatch.IntegrationID(integrationID),
		deprovisionbatch.StatusEQ(deprovisionbatch.StatusADMITTED),
		deprovisionbatch.CreatedAtGT(now.Add(-Window))).
		Aggregate(ent.Sum(deprovisionbatch.FieldPlanned)).Scan(ctx, &rows)
	if err != nil {
		return 0, fmt.Errorf("guard: window: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	return rows[0].Sum, nil
}

// PlannedDisables counts the job's PENDING user items in the integration
// whose reconcile would disable an account now.
func PlannedDisables(ctx context.Context, c *ent.Client, in *ent.Integration, jobID pulid.ID, now time.Time) (int, error) {
	items, err := c.JobItem.Query().Where(jobitem.JobID(jobID), jobitem.IntegrationID(in.ID),
		jobitem.StatusEQ(jobitem.StatusPENDING), jobitem.GroupIDIsNil()).All(ctx)
	if err != nil {
		return 0, fmt.Errorf("guard: read items: %w", err)
	}
	return CountDisables(ctx, c, in, items, now)
}

// CountDisables plans each (user or orphan link) of items in in and counts
// the disables.
func CountDisables(ctx context.Context, c *ent.Client, in *ent.Integration, items []*ent.JobItem, now time.Time) (int, error) {
	var userIDs, linkIDs []pulid.ID
	for _, it := range items {
		if it.UserID != nil {
			userIDs = append(userIDs, *it.UserID)
		}
		if it.LinkID != nil {
			linkIDs = append(linkIDs, *it.LinkID)
		}
	}
	users, err := c.User.Query().Where(user.IDIn(userIDs...)).All(ctx)
	if err != nil {
		return 0, fmt.Errorf("guard: read users: %w", err)
	}
	byUser := make(map[pulid.ID]*ent.User, len(users))
	for _, u := range users {
		byUser[u.ID] = u
	}
	links, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.KindEQ(remotelink.KindUSER),
		remotelink.Or(remotelink.UserIDIn(userIDs...), remotelink.IDIn(linkIDs...))).All(ctx)
	if err != nil {
		return 0, fmt.Errorf("guard: read links: %w", err)
	}
	linkOfUser := make(map[pulid.ID]*ent.RemoteLink, len(links))
	linkByID := make(map[pulid.ID]*ent.RemoteLink, len(links))
	for _, l := range links {
		linkByID[l.ID] = l
		if l.UserID != nil {
			linkOfUser[*l.UserID] = l
		}
	}
	n := 0
	for _, it := range items {
		var u *ent.User
		var l *ent.RemoteLink
		if it.UserID != nil {
			u = byUser[*it.UserID]
		}
		switch {
		case u != nil:
			l = linkOfUser[u.ID]
		case it.LinkID != nil:
			l = linkByID[*it.LinkID]
		}
		if u == nil && l == nil {
			continue
		}
		s, err := provision.PlanStored(ctx, c, in, u, l, now)
		if err != nil {
			return 0, err
		}
		if provision.IsDisable(s.Plan, s.Link) {
			n++
		}
	}
	return n, nil
}

package provision

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/throttle"
)

// Event types (SPEC P6, J3). Failures are ours; the source records successes only.
const (
	EventUserCreate        = "user_create_provision"
	EventUserUpdate        = "user_update_provision"
	EventUserDeprovision   = "user_deprovision"
	EventProvisionFailed   = "user_provision_failed"
	EventDeprovisionFailed = "user_deprovision_failed"
)

// Error codes of our own, next to Graph's on links and items.
const (
	CodeRemoteUserLinked    = "REMOTE_USER_LINKED"
	CodeTransient           = "TRANSIENT"
	CodeIntegrationSettings = "INTEGRATION_CONFIG"
)

// replicationWindow is how long after our create a 404 about the object is
// Graph's replication delay rather than a deletion (msgraph uses the same).
const replicationWindow = 2 * time.Minute

// Config configures a Reconciler.
type Config struct {
	Ent       *ent.Client
	Tenants   *tenant.Connector // Graph clients per integration (shared Redis throttle budget inside)
	Publisher *pubsub.Publisher // nil = don't publish
	Logger    *slog.Logger
	Now       func() time.Time
	// Guard holds a job's disables beyond the mass-deprovision threshold
	// (internal/guard); nil = no guard.
	Guard Guard
	// Deployment names this dirsync deployment in the ownership marker
	// (DIRSYNC_DEPLOYMENT_ID); empty writes and checks no marker.
	Deployment string
}

// Reconciler converges one (user, integration) per task.
type Reconciler struct {
	cfg     Config
	log     *slog.Logger
	lookups *lookups // batched UPN lookups of concurrent reconciles
	started jobs.Started
}

// New validates cfg and fills defaults.
func New(cfg Config) (*Reconciler, error) {
	var errs []error
	if cfg.Ent == nil {
		errs = append(errs, errors.New("provision: Ent required"))
	}
	if cfg.Tenants == nil {
		errs = append(errs, errors.New("provision: Tenants required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger.With("component", "provision"), lookups: newLookups()}, nil
}

// RetryAfter is the delay Graph asked for in an error Handle returned (429/503
// Retry-After), or the one our write budget named when it would have kept the
// worker too long (throttle.BusyError); 0 if none.
func RetryAfter(err error) time.Duration {
	var e *msgraph.Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	// Our own budget would have held the worker too long: come back later,
	// leaving the slot to other tenants (fair share, issue 12).
	var busy *throttle.BusyError
	if errors.As(err, &busy) {
		return busy.RetryAfter
	}
	return 0
}

// errInvisible: Graph refused a create because the UPN is taken, yet the lookup
// cannot see the holder — our own earlier POST whose answer was lost, still
// replicating. Retrying later finds it and takes it over, never a duplicate.
var errInvisible = errors.New("provision: userPrincipalName is taken but its holder is not visible yet (replication)")

// errOrphanHolder: the remote user is still linked to a deleted user whose
// deprovisioning has not run yet; after it ran the link is gone.
var errOrphanHolder = errors.New("provision: the remote user is still linked to a deleted user being deprovisioned")

// Handle runs one reconcile task and records its outcome (link, job item, job,
// events, publish).
// nil: finished — success, out of scope, or a permanent failure recorded as such
// (never retried). non-nil: transient, asynq should retry; final=true means this
// is the last attempt, so Handle records the failure (item FAILED, link ERROR,
// failure event) before returning the error.
func (r *Reconciler) Handle(ctx context.Context, t jobs.ReconcileUser, final bool) error {
	ctx = auth.SystemContext(ctx)
	log := r.log.With("org", string(t.OrgID), "integration", string(t.IntegrationID),
		"user", string(t.UserID), "link", string(t.LinkID), "job", string(t.JobID))
	if t.OrgID == "" || t.IntegrationID == "" || (t.UserID == "" && t.LinkID == "") {
		// Retrying a malformed payload cannot help; still settle its item so
		// the job does not stay RUNNING for ever.
		log.Error("provision: malformed reconcile task dropped")
		return r.failMalformed(ctx, t)
	}
	if t.JobID != "" {
		changed, err := r.started.MarkRunning(ctx, r.cfg.Ent, t.OrgID, t.JobID, r.cfg.Now())
		if err != nil {
			return err
		}
		if changed {
			r.publishJob(ctx, log, t.OrgID, t.JobID)
		}
	}
	tx, err := r.cfg.Ent.Tx(ctx)
	if err != nil {
		return fmt.Errorf("provision: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	c := tx.Client()

	st, err := r.lockAndLoad(ctx, c, t)
	if err != nil {
		return err
	}
	var o outcome
	if st.in == nil || st.in.Status != integration.StatusAUTHORIZED {
		// Gone or de-authorized (I5, I6): nothing may be sent to it.
		o = outcome{result: jobs.ResultSkipped, skipLink: true}
	} else {
		o, err = r.reconcile(ctx, c, st, log)
		if err != nil {
			return err
		}
	}
	if o.held {
		// The guard moved the item (and its job) to AWAITING_APPROVAL on this
		// transaction; approveJob sends the task again.
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("provision: commit: %w", err)
		}
		log.Info("provision: disable held for approval (mass-deprovision guard)")
		r.publishJob(ctx, log, t.OrgID, t.JobID)
		return nil
	}
	// A throttled attempt (Graph's Retry-After) is never final: the worker does
	// not count it against the retries (worker.IsFailure), so asynq runs it
	// again, and recording it as failed would leave a later success uncounted.
	if o.transient != nil && (!final || RetryAfter(o.transient) > 0) {
		// Keep what was learned (a remote id found or created) and the error, so
		// the next try starts from there; the item stays PENDING.
		o.link.Status = StatusPending
		if err := r.saveLink(ctx, c, st, o); err != nil {
			return err
		}
		if err := r.groupsFollow(ctx, c, st, o); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("provision: commit: %w", err)
		}
		log.Warn("provision: transient failure, will retry", "err", o.transient)
		return o.transient
	}
	if o.transient != nil {
		o.fail(o.transient)
	}
	if !o.skipLink {
		if err := r.saveLink(ctx, c, st, o); err != nil {
			return err
		}
		if err := r.groupsFollow(ctx, c, st, o); err != nil {
			return err
		}
	}
	var ev *ent.Event
	if o.event != "" {
		ec := c.Event.Create().SetOrganizationID(t.OrgID).SetType(o.event).
			SetIntegrationID(t.IntegrationID).SetDetail(jobs.Truncate(o.detail, 4000))
		if st.userID != "" {
			ec.SetUserID(st.userID)
		}
		if t.JobID != "" {
			ec.SetJobID(t.JobID)
		}
		if ev, err = ec.Save(ctx); err != nil {
			return fmt.Errorf("provision: record event: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("provision: commit: %w", err)
	}
	// The item is completed after the reconcile committed, in a statement of
	// its own: completing locks the job row, which every item of the job
	// needs, and inside the transaction that lock lasted until the commit's
	// round trip, so a large bind's items queued behind one another (issue
	// 12). Between the two, nothing is lost: the item is still PENDING, this
	// task is not done, and its next attempt converges to the same state and
	// completes it. The completion does not wait for the disk
	// (CompleteItemNoWait says why and what a crash can cost).
	var j *ent.Job
	if t.JobID != "" && t.ItemID != "" {
		j, err = jobs.CompleteItemNoWait(ctx, r.cfg.Ent, t.OrgID, t.JobID, t.ItemID, jobs.ItemOutcome{
			Failed: o.failed, Result: o.result, ErrorCode: o.code, ErrorMessage: o.message,
		}, r.cfg.Now())
		if err != nil {
			return err
		}
	}
	log.Info("provision: reconciled", "result", o.result, "failed", o.failed, "code", o.code)
	if j != nil {
		// As the completion left it: no second read of the job.
		if err := jobs.PublishState(ctx, r.cfg.Publisher, j); err != nil {
			log.Warn("provision: publish job", "err", err)
		}
	}
	if ev != nil {
		r.publishEvent(ctx, log, ev)
	}
	return o.transient
}

func (r *Reconciler) failMalformed(ctx context.Context, t jobs.ReconcileUser) error {
	if t.OrgID == "" || t.JobID == "" || t.ItemID == "" {
		return nil
	}
	tx, err := r.cfg.Ent.Tx(ctx)
	if err != nil {
		return fmt.Errorf("provision: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	j, err := jobs.CompleteItem(ctx, tx.Client(), t.OrgID, t.JobID, t.ItemID, jobs.ItemOutcome{
		Failed: true, Result: jobs.ResultError, ErrorCode: "MALFORMED_TASK",
		ErrorMessage: "the task names neither a user nor a link"}, r.cfg.Now())
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("provision: commit: %w", err)
	}
	if j != nil {
		r.publishJob(ctx, r.log, t.OrgID, t.JobID)
	}
	return nil
}

// state is what one reconcile read, under its locks.
type state struct {
	t      jobs.ReconcileUser
	in     *ent.Integration
	u      *ent.User       // nil: deleted (X3) or unknown
	userID pulid.ID        // the task's user, even when deleted
	link   *ent.RemoteLink // nil: never linked
	// connected is connect.Integrations of the user, read with in; nil when
	// not read (no user).
	connected []*ent.Integration
}

// lockAndLoad serializes reconciles of one pair with transaction-scoped
// advisory locks, then reads the current state. Two keys, always taken in the
// same order (user, then link): the user key covers creating the link, the link
// key covers a deleted user's orphan link, which tasks reach by link id only.
// Everything afterwards runs on this one transaction, so a reconcile needs one
// connection at a time and lock holders can never starve on the pool.
func (r *Reconciler) lockAndLoad(ctx context.Context, c *ent.Client, t jobs.ReconcileUser) (*state, error) {
	st := &state{t: t, userID: t.UserID}
	if st.userID == "" {
		l, err := r.linkByID(ctx, c, t, t.LinkID)
		if err != nil {
			return nil, err
		}
		if l != nil && l.UserID != nil {
			st.userID = *l.UserID
		}
	}
	if st.userID != "" {
		if err := advisoryLock(ctx, c, t.IntegrationID, "user", st.userID); err != nil {
			return nil, err
		}
	}
	var err error
	if st.userID != "" {
		// The integration and those the user is connected to (I4), read
		// together: DesiredOf needs both.
		in, connected, err := connect.IntegrationAndConnected(ctx, c, t.OrgID, t.IntegrationID, st.userID)
		if err != nil {
			return nil, fmt.Errorf("provision: load integration: %w", err)
		}
		st.in, st.connected = in, connected
	} else {
		in, err := c.Integration.Query().
			Where(integration.ID(t.IntegrationID), integration.OrganizationID(t.OrgID)).Only(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return nil, fmt.Errorf("provision: load integration: %w", err)
		}
		st.in = in
	}
	if st.userID != "" {
		// FOR KEY SHARE until commit: DeleteUser (FOR UPDATE) waits for this
		// reconcile, so it sees the link a create in flight records and its job
		// disables the account (X3). Without it the deletion could commit first
		// with no link to deprovision, the link insert would then fail on the
		// foreign key, and the account would stay enabled with nothing pointing
		// at it. Attribute and state changes lock FOR NO KEY UPDATE, which does
		// not conflict: they never wait on Graph calls.
		//
		// By primary key alone, the organization checked below: on tables
		// not analysed yet (a new deployment's first onboarding) PostgreSQL
		// plans "id and organization" on the (organization, username) index
		// and reads every user of the organization (docs/scaling.md).
		u, err := c.User.Query().Where(user.ID(st.userID)).
			Modify(func(s *entsql.Selector) { s.For(entsql.LockKeyShare) }).Only(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return nil, fmt.Errorf("provision: load user: %w", err)
		}
		if u != nil && u.OrganizationID != t.OrgID {
			u = nil
		}
		st.u = u
	}
	var link *ent.RemoteLink
	if st.u != nil {
		// The user's links (one per integration at most), picked here: by
		// user_id alone the query has one index to use, where "integration
		// and user" let PostgreSQL choose the (integration, group) index on
		// unanalysed tables and read every link of the integration
		// (docs/scaling.md).
		links, err := c.RemoteLink.Query().Where(remotelink.UserID(st.u.ID)).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("provision: load link: %w", err)
		}
		for _, l := range links {
			if l.IntegrationID == t.IntegrationID && l.OrganizationID == t.OrgID && l.Kind == remotelink.KindUSER {
				link = l
			}
		}
	} else if t.LinkID != "" {
		if link, err = r.linkByID(ctx, c, t, t.LinkID); err != nil {
			return nil, err
		}
	}
	if link != nil {
		if err := advisoryLock(ctx, c, t.IntegrationID, "link", link.ID); err != nil {
			return nil, err
		}
		// Re-read: a task holding only the link key may have changed it meanwhile.
		if link, err = r.linkByID(ctx, c, t, link.ID); err != nil {
			return nil, err
		}
	}
	st.link = link
	return st, nil
}

func (r *Reconciler) linkByID(ctx context.Context, c *ent.Client, t jobs.ReconcileUser, id pulid.ID) (*ent.RemoteLink, error) {
	if id == "" {
		return nil, nil
	}
	l, err := c.RemoteLink.Query().Where(remotelink.ID(id), remotelink.OrganizationID(t.OrgID),
		remotelink.IntegrationID(t.IntegrationID)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provision: load link %s: %w", id, err)
	}
	return l, nil
}

// advisoryLock takes a transaction-scoped PostgreSQL advisory lock on
// (integration, kind, id); it is released at commit or rollback, even if the
// worker dies.
func advisoryLock(ctx context.Context, c *ent.Client, integrationID pulid.ID, kind string, id pulid.ID) error {
	h := fnv.New64a()
	_, _ = h.Write([]byte("dirsync:reconcile:" + string(integrationID) + ":" + kind + ":" + string(id)))
	if _, err := c.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("provision: lock %s %s: %w", kind, id, err)
	}
	return nil
}

// desired reads the directory side (SPEC B1, I4, D1–D5, A1–A2): DesiredOf,
// the one reading the preview and the guard share.
func (r *Reconciler) desired(ctx context.Context, c *ent.Client, st *state) (d Desired, resolveErr error, dropped []string, err error) {
	return desiredOf(ctx, c, st.in, st.u, st.connected, r.cfg.Now())
}

// reconcile decides and applies. The error is for the database only; remote
// failures are in the outcome.
func (r *Reconciler) reconcile(ctx context.Context, c *ent.Client, st *state, log *slog.Logger) (outcome, error) {
	d, resolveErr, dropped, err := r.desired(ctx, c, st)
	if err != nil {
		return outcome{}, err
	}
	if len(dropped) > 0 {
		log.Debug("provision: exported properties the Graph client cannot send yet", "properties", dropped)
	}
	o := outcome{link: linkStateOf(st.link)}
	if st.link == nil && st.u == nil {
		// Deleted user without a known link: nothing remote is ours.
		return outcome{result: jobs.ResultUnchanged, skipLink: true}, nil
	}
	if remoteDeleted(st, &o) {
		return o, nil
	}
	p := Decide(d, o.link.plan())
	a := &applier{r: r, st: st, d: d, resolveErr: resolveErr, o: &o, now: r.cfg.Now()}
	if st.t.Force {
		if a.reread(ctx, p) {
			return o, nil
		}
		p = Decide(d, o.link.plan())
	}
	if r.cfg.Guard != nil && st.t.JobID != "" && st.t.ItemID != "" && IsDisable(p, o.link.plan()) {
		v, err := r.cfg.Guard.Admit(ctx, c, st.in, GuardTask{OrgID: st.t.OrgID, JobID: st.t.JobID, ItemID: st.t.ItemID})
		if err != nil {
			return outcome{}, err
		}
		switch v {
		case Hold:
			return outcome{held: true}, nil
		case Drop:
			return outcome{result: jobs.ResultSkipped, skipLink: true, message: ReasonDisableCancelled}, nil
		}
	}
	if err := a.apply(ctx, c, p); err != nil {
		return outcome{}, err
	}
	a.ownership(ctx)
	return o, nil
}

// groupsFollow asks the managed security groups holding the user for another
// membership pass when the user's remote account became, or stopped being, a
// member candidate (G3: a member whose provisioning was pending is added as
// soon as its link exists). Ordering across jobs, not a wait.
func (r *Reconciler) groupsFollow(ctx context.Context, c *ent.Client, st *state, o outcome) error {
	if st.u == nil {
		return nil
	}
	before := st.link != nil && st.link.RemoteID != "" && st.link.Status != remotelink.StatusOUT_OF_SCOPE
	after := !o.dropLink && o.link.RemoteID != "" && o.link.Status != StatusOutOfScope
	if before == after {
		return nil
	}
	return groupsync.MarkDirty(ctx, c, st.t.OrgID, st.t.IntegrationID, st.u.ID, st.t.JobID)
}

package groupsync

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/tenant"
)

// Event types (J3). Failures are ours; the source records successes only.
const (
	EventGroupCreate     = "group_create_provision"
	EventGroupTakeover   = "group_takeover"
	EventGroupUpdate     = "group_update_provision"
	EventGroupMembership = "group_membership_provision"
	EventGroupFailed     = "group_provision_failed"
)

// Link status reasons when a group stops being managed (G1, G4).
const (
	ReasonManagementOff = "group management is off for this integration: the remote group is left as it is"
	ReasonUnbound       = "the group is no longer bound to this integration: the remote group is left as it is"
	ReasonDeleted       = "the group was deleted: the remote group is left as it is"
)

// Our own error codes, next to Graph's.
const (
	CodeTransient       = "TRANSIENT"
	CodeIntegrationConf = "INTEGRATION_CONFIG"
	CodeMemberNotFound  = "MEMBER_NOT_FOUND"
)

// createGuard: after a create whose answer was lost (5xx, transport error),
// the group may exist without showing in lists yet (replication). Within
// this time a retry that cannot find it waits instead of creating again.
const createGuard = 30 * time.Second

// Config configures a Reconciler.
type Config struct {
	Ent       *ent.Client
	Tenants   *tenant.Connector
	Publisher *pubsub.Publisher // nil = don't publish
	Logger    *slog.Logger
	Now       func() time.Time
	// Deployment names this dirsync deployment in the ownership marker of
	// the groups (DIRSYNC_DEPLOYMENT_ID); empty writes and checks none.
	Deployment string
}

// Reconciler converges one (group, integration) per task.
type Reconciler struct {
	cfg Config
	log *slog.Logger
}

// New validates cfg and fills defaults.
func New(cfg Config) (*Reconciler, error) {
	var errs []error
	if cfg.Ent == nil {
		errs = append(errs, errors.New("groupsync: Ent required"))
	}
	if cfg.Tenants == nil {
		errs = append(errs, errors.New("groupsync: Tenants required"))
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
	return &Reconciler{cfg: cfg, log: cfg.Logger.With("component", "groupsync")}, nil
}

// outcome is what one reconcile did.
type outcome struct {
	l         linkRow
	result    string
	failed    bool
	code, msg string
	notes     []string
	events    []event
	transient error
	skipLink  bool
	dropLink  bool
	groupID   pulid.ID
	itemDone  bool
	saved     []*ent.Event
}

type event struct{ typ, detail string }

// linkRow is the link as the reconcile leaves it.
type linkRow struct {
	RemoteID, DisplayName, Hash, Status, Reason string
	TakenOver                                   bool
	CreatedAt                                   *time.Time
	InSync, Pending, Foreign                    int
	MemberIDs                                   []string
	ErrCode, ErrMsg, ErrReq                     string
	OwnerMarked                                 bool
}

func (o *outcome) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

func (o *outcome) emit(typ, format string, args ...any) {
	o.events = append(o.events, event{typ, fmt.Sprintf(format, args...)})
}

func (o *outcome) fail(err error) {
	code, msg, req := CodeTransient, err.Error(), ""
	var ge *msgraph.Error
	var ae *msgraph.AuthError
	switch {
	case errors.As(err, &ge):
		code, msg, req = ge.Code, ge.Message, ge.RequestID
		if code == "" {
			code = fmt.Sprintf("HTTP_%d", ge.Status)
		}
	case errors.As(err, &ae):
		code, msg = "AUTH_"+strings.ToUpper(ae.Reason()), ae.Error()
	}
	o.failWith(code, msg, req)
}

func (o *outcome) failWith(code, msg, req string) {
	o.failed, o.result, o.code, o.msg = true, jobs.ResultError, code, msg
	o.l.Status, o.l.ErrCode, o.l.ErrMsg, o.l.ErrReq = string(remotelink.StatusERROR), code, msg, req
	d := code + ": " + msg
	if req != "" {
		d += " (request-id " + req + ")"
	}
	o.emit(EventGroupFailed, "%s", d)
}

func (o *outcome) remoteErr(err error) {
	if permanent(err) {
		o.fail(err)
		return
	}
	o.transient = err
	var ge *msgraph.Error
	if errors.As(err, &ge) {
		o.l.ErrCode, o.l.ErrMsg, o.l.ErrReq = ge.Code, ge.Message, ge.RequestID
	} else {
		o.l.ErrCode, o.l.ErrMsg, o.l.ErrReq = CodeTransient, err.Error(), ""
	}
}

func permanent(err error) bool {
	if msgraph.IsPermanent(err) {
		return true
	}
	if ae, ok := msgraph.IsAuthError(err); ok {
		return ae.Reason() != "unavailable"
	}
	return false
}

// retryAfter is Graph's Retry-After carried by err, 0 if none.
func retryAfter(err error) time.Duration {
	var e *msgraph.Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Handle runs one group reconcile task and records its outcome (link, job
// item, job, events, publish). nil: finished (also a permanent failure,
// recorded). non-nil: transient, retry; final=true records it as failed
// first (unless Graph asked to wait: a throttled attempt is never final).
func (r *Reconciler) Handle(ctx context.Context, t jobs.ReconcileGroup, final bool) error {
	ctx = auth.SystemContext(ctx)
	log := r.log.With("org", string(t.OrgID), "integration", string(t.IntegrationID),
		"group", string(t.GroupID), "link", string(t.LinkID), "job", string(t.JobID))
	if t.OrgID == "" || t.IntegrationID == "" || (t.GroupID == "" && t.LinkID == "") {
		log.Error("groupsync: malformed task dropped")
		return r.complete(ctx, log, t, nil, &outcome{failed: true, result: jobs.ResultError, code: "MALFORMED_TASK",
			msg: "the task names neither a group nor a link", skipLink: true})
	}
	if t.JobID != "" && t.ItemID != "" {
		changed, err := jobs.MarkRunning(ctx, r.cfg.Ent, t.OrgID, t.JobID, r.cfg.Now())
		if err != nil {
			return err
		}
		if changed {
			r.publishJob(ctx, log, t.OrgID, t.JobID)
		}
	}
	// Committed on its own, before the members are read: a user link that
	// appears after this point marks the link dirty again and queues another
	// pass (MarkDirty), so no member is missed and no row lock is held
	// across Graph calls.
	if _, err := r.cfg.Ent.ExecContext(ctx,
		`UPDATE remote_links SET members_dirty = false
		 WHERE organization_id = $1 AND integration_id = $2 AND kind = 'GROUP' AND members_dirty
		   AND (id = $3 OR group_id = $4)`, t.OrgID, t.IntegrationID, t.LinkID, t.GroupID); err != nil {
		return fmt.Errorf("groupsync: clear dirty: %w", err)
	}

	tx, err := r.cfg.Ent.Tx(ctx)
	if err != nil {
		return fmt.Errorf("groupsync: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	c := tx.Client()
	st, err := r.load(ctx, c, t)
	if err != nil {
		return err
	}
	o := &outcome{l: rowOf(st.link), groupID: st.groupID}
	switch {
	case st.in == nil || st.in.Status != integration.StatusAUTHORIZED:
		// Gone or de-authorized (I5, I6): nothing may be sent to it.
		o.result, o.skipLink = jobs.ResultSkipped, true
	case !st.managed:
		r.release(st, o)
		r.releaseMarker(ctx, st, o)
	case remoteDeleted(st, o):
	default:
		if err := r.reconcile(ctx, c, st, o, log); err != nil {
			return err
		}
	}
	if o.transient != nil && (!final || retryAfter(o.transient) > 0) {
		o.l.Status = string(remotelink.StatusPENDING)
		if err := r.saveLink(ctx, c, st, o); err != nil {
			return err
		}
		// What was already done (a create, some members) is recorded now: the
		// next try starts from the saved link and will not do it again.
		if err := r.record(ctx, t, c, o); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("groupsync: commit: %w", err)
		}
		r.published(ctx, log, t, o)
		log.Warn("groupsync: transient failure, will retry", "err", o.transient)
		return fmt.Errorf("groupsync: group %s in integration %s: %w", st.groupID, t.IntegrationID, o.transient)
	}
	if o.transient != nil {
		o.fail(o.transient)
	}
	if err := r.saveLink(ctx, c, st, o); err != nil {
		return err
	}
	if err := r.complete(ctx, log, t, c, o); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("groupsync: commit: %w", err)
	}
	r.published(ctx, log, t, o)
	log.Info("groupsync: reconciled", "result", o.result, "failed", o.failed, "code", o.code)
	return o.transient
}

// state is what one reconcile read, under its lock.
type state struct {
	t       jobs.ReconcileGroup
	in      *ent.Integration
	g       *ent.UserGroup
	groupID pulid.ID
	link    *ent.RemoteLink
	bound   bool
	managed bool
}

func (r *Reconciler) load(ctx context.Context, c *ent.Client, t jobs.ReconcileGroup) (*state, error) {
	st := &state{t: t, groupID: t.GroupID}
	if st.groupID == "" && t.LinkID != "" {
		l, err := c.RemoteLink.Query().Where(remotelink.ID(t.LinkID), remotelink.OrganizationID(t.OrgID)).Only(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return nil, fmt.Errorf("groupsync: load link: %w", err)
		}
		if l != nil && l.GroupID != nil {
			st.groupID = *l.GroupID
		}
	}
	key := st.groupID
	if key == "" {
		key = t.LinkID
	}
	if err := advisoryLock(ctx, c, t.IntegrationID, key); err != nil {
		return nil, err
	}
	in, err := c.Integration.Query().Where(integration.ID(t.IntegrationID), integration.OrganizationID(t.OrgID)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, fmt.Errorf("groupsync: load integration: %w", err)
	}
	st.in = in
	if st.groupID != "" {
		g, err := c.UserGroup.Query().Where(usergroup.ID(st.groupID), usergroup.OrganizationID(t.OrgID)).Only(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return nil, fmt.Errorf("groupsync: load group: %w", err)
		}
		st.g = g
	}
	lq := c.RemoteLink.Query().Where(remotelink.OrganizationID(t.OrgID), remotelink.IntegrationID(t.IntegrationID),
		remotelink.KindEQ(remotelink.KindGROUP))
	if t.LinkID != "" {
		// The link id survives the group's deletion (group_id is nulled).
		lq = lq.Where(remotelink.ID(t.LinkID))
	} else {
		lq = lq.Where(remotelink.GroupID(st.groupID))
	}
	if st.link, err = lq.Only(ctx); err != nil && !ent.IsNotFound(err) {
		return nil, fmt.Errorf("groupsync: load link: %w", err)
	}
	if st.g != nil && in != nil {
		if st.bound, err = c.GroupBinding.Query().Where(groupbinding.IntegrationID(in.ID), groupbinding.GroupID(st.g.ID)).Exist(ctx); err != nil {
			return nil, fmt.Errorf("groupsync: binding: %w", err)
		}
	}
	st.managed = st.g != nil && in != nil && st.bound && in.GroupManagement
	if st.managed && st.link == nil {
		// Targets creates it with the binding; a task that got here without
		// one (e.g. queued by an older version) creates it now.
		if st.link, err = c.RemoteLink.Create().SetOrganizationID(t.OrgID).SetIntegrationID(in.ID).
			SetGroupID(st.g.ID).SetKind(remotelink.KindGROUP).Save(ctx); err != nil {
			return nil, fmt.Errorf("groupsync: create link: %w", err)
		}
	}
	return st, nil
}

func advisoryLock(ctx context.Context, c *ent.Client, integrationID, id pulid.ID) error {
	h := fnv.New64a()
	_, _ = h.Write([]byte("dirsync:reconcile:" + string(integrationID) + ":group:" + string(id)))
	if _, err := c.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("groupsync: lock group %s: %w", id, err)
	}
	return nil
}

func rowOf(l *ent.RemoteLink) linkRow {
	if l == nil {
		return linkRow{Status: string(remotelink.StatusPENDING)}
	}
	return linkRow{RemoteID: l.RemoteID, DisplayName: l.DisplayName, Hash: l.AppliedHash, Status: string(l.Status),
		Reason: l.StatusReason, TakenOver: l.TakenOver, CreatedAt: l.RemoteCreatedAt, InSync: l.MembersInSync,
		Pending: l.MembersPending, Foreign: l.ForeignMembers, MemberIDs: l.MemberIds,
		ErrCode: l.LastErrorCode, ErrMsg: l.LastErrorMessage, ErrReq: l.LastErrorRequestID, OwnerMarked: l.OwnerMarked}
}

// release stops managing (G1 management off, G4 unbound or deleted): the
// remote group is left exactly as it is and the link stays as history, so
// managing it again resumes on the same remote group.
func (r *Reconciler) release(st *state, o *outcome) {
	if st.link == nil {
		o.result, o.skipLink = jobs.ResultUnchanged, true
		return
	}
	reason := ReasonUnbound
	switch {
	case st.g == nil:
		reason = ReasonDeleted
	case st.bound && !st.in.GroupManagement:
		reason = ReasonManagementOff
	}
	if st.g == nil && st.link.RemoteID == "" {
		// Deleted before anything remote existed: nothing to remember.
		o.dropLink = true
	}
	o.l.Status, o.l.Reason = string(remotelink.StatusOUT_OF_SCOPE), reason
	o.l.ErrCode, o.l.ErrMsg, o.l.ErrReq = "", "", ""
	o.result = jobs.ResultOutOfScope
}

// member is one desired member: a directory member with a live user link.
type member struct {
	remoteID  string
	createdAt *time.Time
}

// desiredMembers reads the group's directory members provisioned in the
// integration (a user link with a remote id that is not released) and
// counts those that are not (yet).
func desiredMembers(ctx context.Context, c *ent.Client, groupID, integrationID pulid.ID) ([]member, int, error) {
	rows, err := c.QueryContext(ctx,
		`SELECT l.remote_id, l.remote_created_at
		 FROM user_group_members m
		 LEFT JOIN remote_links l ON l.user_id = m.user_id AND l.integration_id = $2 AND l.kind = 'USER'
		   AND l.remote_id IS NOT NULL AND l.remote_id <> '' AND l.status NOT IN ('OUT_OF_SCOPE', 'REMOTE_DELETED')
		 WHERE m.user_group_id = $1`, groupID, integrationID)
	if err != nil {
		return nil, 0, fmt.Errorf("groupsync: members: %w", err)
	}
	defer rows.Close()
	var out []member
	pending := 0
	for rows.Next() {
		var id *string
		var created *time.Time
		if err := rows.Scan(&id, &created); err != nil {
			return nil, 0, err
		}
		if id == nil {
			pending++
			continue
		}
		out = append(out, member{remoteID: strings.ToLower(*id), createdAt: created})
	}
	return out, pending, rows.Err()
}

// linkedUsers returns which of the remote ids belong to user links of ours in
// the integration.
func linkedUsers(ctx context.Context, c *ent.Client, integrationID pulid.ID, remoteIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(remoteIDs) == 0 {
		return out, nil
	}
	rows, err := c.QueryContext(ctx,
		`SELECT lower(remote_id) FROM remote_links
		 WHERE integration_id = $1 AND kind = 'USER' AND lower(remote_id) = ANY($2)`, integrationID, pq.Array(remoteIDs))
	if err != nil {
		return nil, fmt.Errorf("groupsync: linked users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

func (r *Reconciler) reconcile(ctx context.Context, c *ent.Client, st *state, o *outcome, log *slog.Logger) error {
	gc, err := r.cfg.Tenants.Client(st.in)
	if err != nil {
		o.failWith(CodeIntegrationConf, err.Error(), "")
		return nil
	}
	now := r.cfg.Now()
	name, desc := st.g.Name, st.g.Description
	want := Hash(name, desc)
	o.result = jobs.ResultUnchanged
	o.l.Reason = ""
	resolved := false
	if o.l.RemoteID == "" {
		if err := r.resolve(ctx, c, gc, st, o, now); err != nil || o.transient != nil || o.failed {
			return err
		}
		resolved = true
	}
	fresh := ctx
	if o.l.CreatedAt != nil && now.Sub(*o.l.CreatedAt) < 2*time.Minute {
		fresh = msgraph.WithRetryNotFound(ctx)
	}
	// G3 renames and description changes; mailNickname stays.
	if o.l.Hash != want {
		f := msgraph.GroupFields{DisplayName: msgraph.Ptr(name)}
		if desc != "" {
			f.Description = msgraph.Ptr(desc)
		} else {
			f.Null = []string{"description"}
		}
		err := gc.UpdateGroup(fresh, o.l.RemoteID, f)
		if msgraph.IsNotFound(err) && !resolved && !recent(o.l.CreatedAt, now) {
			return r.lost(ctx, c, gc, st, o, now, log)
		}
		if err != nil {
			o.remoteErr(err)
			return nil
		}
		if o.l.DisplayName != "" && o.l.DisplayName != name {
			o.emit(EventGroupUpdate, "renamed remote group %s from %q to %q", o.l.RemoteID, o.l.DisplayName, name)
		} else if !resolved || o.result == jobs.ResultTakenOver {
			o.emit(EventGroupUpdate, "updated remote group %s (%s)", o.l.RemoteID, name)
		}
		o.l.Hash, o.l.DisplayName = want, name
		if o.result == jobs.ResultUnchanged {
			o.result = jobs.ResultUpdated
		}
	}
	if err := r.members(ctx, c, gc, fresh, st, o, now, resolved, log); err != nil {
		return err
	}
	r.ensureMarked(fresh, gc, st, o)
	return nil
}

func recent(t *time.Time, now time.Time) bool { return t != nil && now.Sub(*t) < 2*time.Minute }

// lost: the remote group we managed is gone (deleted in Entra). Forget it and
// resolve again in this pass (look up by name, take over or create).
func (r *Reconciler) lost(ctx context.Context, c *ent.Client, gc *msgraph.Client, st *state, o *outcome, now time.Time, log *slog.Logger) error {
	o.note("the remote group %s no longer exists", o.l.RemoteID)
	o.l.RemoteID, o.l.Hash, o.l.TakenOver, o.l.CreatedAt, o.l.MemberIDs, o.l.InSync = "", "", false, nil, nil, 0
	o.l.OwnerMarked = false
	return r.reconcile(ctx, c, st, o, log)
}

// resolve is G2: find the remote group by exact display name; take over the
// only security group of that name, else create one. A group carrying our
// mailNickname is ours already (an earlier create whose answer was lost).
func (r *Reconciler) resolve(ctx context.Context, c *ent.Client, gc *msgraph.Client, st *state, o *outcome, now time.Time) error {
	name := st.g.Name
	nick := MailNickname(name, string(st.link.ID))
	found, err := gc.ListGroups(msgraph.ListOptions{
		Filter: msgraph.Eq("displayName", name) + " or " + msgraph.Eq("mailNickname", nick),
		Select: []string{"id", "displayName", "description", "mailNickname", "mailEnabled", "securityEnabled", "groupTypes"},
		Top:    999,
	}).Collect(ctx)
	if err != nil {
		o.remoteErr(err)
		return nil
	}
	var security []msgraph.Group
	others := 0
	for _, g := range found {
		if strings.EqualFold(g.MailNickname, nick) && IsSecurityGroup(g) {
			o.l.RemoteID, o.l.DisplayName, o.l.TakenOver = g.ID, g.DisplayName, false
			o.l.Hash = Hash(g.DisplayName, g.Description)
			if o.l.CreatedAt == nil {
				o.l.CreatedAt = &now
			}
			o.result = jobs.ResultCreated
			o.emit(EventGroupCreate, "created remote security group %s (%s, mailNickname %s)", g.ID, name, nick)
			return nil
		}
		if g.DisplayName != name {
			continue // $filter compares case-insensitively; takeover needs the exact name
		}
		if !IsSecurityGroup(g) {
			others++
			continue
		}
		security = append(security, g)
	}
	if len(security) == 1 {
		g := security[0]
		holder, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(st.in.ID), remotelink.RemoteID(g.ID),
			remotelink.IDNEQ(st.link.ID)).First(ctx)
		if err != nil && !ent.IsNotFound(err) {
			return fmt.Errorf("groupsync: link holder: %w", err)
		}
		switch {
		case holder == nil:
		case holder.Kind == remotelink.KindGROUP && holder.GroupID == nil:
			// History of a deleted group: the remote group is free again.
			if err := c.RemoteLink.DeleteOneID(holder.ID).Exec(ctx); err != nil {
				return fmt.Errorf("groupsync: release old link: %w", err)
			}
			holder = nil
		default:
			o.note("the only security group named %q (%s) is already linked to another directory group: created a new one", name, g.ID)
			security = nil
		}
		if holder == nil && security != nil {
			if r.claim(ctx, gc, st, o, g.ID) {
				return nil
			}
			o.l.RemoteID, o.l.DisplayName, o.l.TakenOver, o.l.CreatedAt = g.ID, g.DisplayName, true, nil
			o.l.Hash = Hash(g.DisplayName, g.Description)
			o.result = jobs.ResultTakenOver
			o.emit(EventGroupTakeover, "took over existing remote security group %s (%s)", g.ID, name)
			return nil
		}
	}
	if len(security) > 1 {
		o.note("%d security groups named %q exist in the tenant: created a new one", len(security), name)
	}
	if others > 0 && len(security) == 0 {
		o.note("%d mail-enabled or Microsoft 365 group(s) named %q left alone: only security groups are managed", others, name)
	}
	if o.l.CreatedAt != nil && now.Sub(*o.l.CreatedAt) < createGuard {
		// An earlier create may have succeeded without our hearing the answer;
		// wait for it to show rather than risk a second group.
		o.remoteErr(errors.New("groupsync: an earlier create may still be replicating; looking again later"))
		return nil
	}
	created, err := gc.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: name, MailNickname: nick, Description: st.g.Description})
	if err != nil {
		if !msgraph.IsThrottled(err) && !permanent(err) {
			o.l.CreatedAt = &now // the answer may be lost: remember we tried
		}
		o.remoteErr(err)
		return nil
	}
	o.l.RemoteID, o.l.DisplayName, o.l.TakenOver, o.l.CreatedAt = created.ID, name, false, &now
	o.l.OwnerMarked = false
	o.l.Hash = Hash(name, st.g.Description)
	o.result = jobs.ResultCreated
	o.emit(EventGroupCreate, "created remote security group %s (%s, mailNickname %s)", created.ID, name, nick)
	return nil
}

// members is G3: the remote group's members become the directory members
// provisioned in the integration. Only the difference is written: adds in
// members@odata.bind batches of 20, removals one $ref DELETE each. Remote
// members that are not ours are left alone.
func (r *Reconciler) members(ctx context.Context, c *ent.Client, gc *msgraph.Client, fresh context.Context, st *state, o *outcome, now time.Time, resolved bool, log *slog.Logger) error {
	want, pending, err := desiredMembers(ctx, c, st.g.ID, st.in.ID)
	if err != nil {
		return err
	}
	remoteObjs, err := gc.ListGroupMembers(o.l.RemoteID, msgraph.ListOptions{Select: []string{"id"}, Top: 999}).Collect(fresh)
	if msgraph.IsNotFound(err) && !resolved && !recent(o.l.CreatedAt, now) {
		return r.lost(ctx, c, gc, st, o, now, log)
	}
	if err != nil {
		o.remoteErr(err)
		return nil
	}
	remote := make([]string, len(remoteObjs))
	for i, m := range remoteObjs {
		remote[i] = strings.ToLower(m.ID)
	}
	applied := make(map[string]bool, len(o.l.MemberIDs))
	for _, id := range o.l.MemberIDs {
		applied[strings.ToLower(id)] = true
	}
	linked, err := linkedUsers(ctx, c, st.in.ID, remote)
	if err != nil {
		return err
	}
	desired := make([]string, len(want))
	freshMember := map[string]bool{}
	for i, m := range want {
		desired[i] = m.remoteID
		if recent(m.createdAt, now) {
			freshMember[m.remoteID] = true
		}
	}
	d := MembershipDiff(desired, remote, func(id string) bool { return applied[id] || linked[id] })
	if d.Foreign > 0 && (o.l.Foreign != d.Foreign || o.result == jobs.ResultTakenOver) {
		o.note("%d remote member(s) that are not ours left alone", d.Foreign)
	}
	o.l.Pending, o.l.Foreign = pending, d.Foreign
	in := make(map[string]bool, len(remote))
	for _, id := range remote {
		in[id] = true
	}
	var writeErr error
	added, removed, missing := 0, 0, 0
	if len(d.Add) > 0 {
		actx := fresh
		for _, id := range d.Add {
			if freshMember[id] {
				actx = msgraph.WithRetryNotFound(fresh)
				break
			}
		}
		err := addMembers(actx, gc, o.l.RemoteID, d.Add)
		var failed map[string]bool
		if err != nil {
			failed = map[string]bool{}
			for _, e := range unjoin(err) {
				var me *msgraph.MemberError
				if !errors.As(e, &me) {
					writeErr = err
					break
				}
				failed[strings.ToLower(me.MemberID)] = true
			}
		}
		if writeErr == nil {
			for _, id := range d.Add {
				if failed[id] {
					missing++
					continue
				}
				in[id] = true
				added++
			}
		}
	}
	if writeErr == nil {
		for _, id := range d.Remove {
			err := gc.RemoveGroupMember(fresh, o.l.RemoteID, id)
			if err != nil && !msgraph.IsMemberAbsent(err) && !msgraph.IsNotFound(err) {
				writeErr = err
				break
			}
			delete(in, id)
			removed++
		}
	}
	inSync := 0
	memberIDs := make([]string, 0, len(desired))
	for _, id := range desired {
		if in[id] {
			inSync++
			memberIDs = append(memberIDs, id)
		}
	}
	o.l.InSync, o.l.MemberIDs = inSync, memberIDs
	if added > 0 || removed > 0 {
		o.emit(EventGroupMembership, "remote group %s (%s): added %d member(s), removed %d", o.l.RemoteID, st.g.Name, added, removed)
		if o.result == jobs.ResultUnchanged {
			o.result = jobs.ResultUpdated
		}
	}
	if pending > 0 {
		o.note("%d member(s) not provisioned in this integration yet: added once their accounts exist", pending)
	}
	if writeErr != nil {
		o.remoteErr(writeErr)
		return nil
	}
	if missing > 0 {
		o.l.Status = string(remotelink.StatusERROR)
		o.l.ErrCode, o.l.ErrMsg, o.l.ErrReq = CodeMemberNotFound,
			fmt.Sprintf("%d member account(s) not found in the tenant", missing), ""
		o.note("%d member(s) could not be added: their remote accounts were not found", missing)
		return nil
	}
	o.l.Status = string(remotelink.StatusIN_SYNC)
	o.l.ErrCode, o.l.ErrMsg, o.l.ErrReq = "", "", ""
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (r *Reconciler) saveLink(ctx context.Context, c *ent.Client, st *state, o *outcome) error {
	if o.skipLink || st.link == nil {
		return nil
	}
	if o.dropLink {
		if err := c.RemoteLink.DeleteOneID(st.link.ID).Exec(ctx); err != nil && !ent.IsNotFound(err) {
			return fmt.Errorf("groupsync: drop link: %w", err)
		}
		return nil
	}
	l := o.l
	up := c.RemoteLink.UpdateOneID(st.link.ID).
		SetRemoteID(l.RemoteID).SetDisplayName(jobs.Truncate(l.DisplayName, 256)).SetAppliedHash(l.Hash).
		SetStatus(remotelink.Status(l.Status)).SetStatusReason(jobs.Truncate(l.Reason, 2000)).SetTakenOver(l.TakenOver).
		SetMembersInSync(l.InSync).SetMembersPending(l.Pending).SetForeignMembers(l.Foreign).SetMemberIds(l.MemberIDs).
		SetLastErrorCode(jobs.Truncate(l.ErrCode, 200)).SetLastErrorMessage(jobs.Truncate(l.ErrMsg, 2000)).
		SetLastErrorRequestID(jobs.Truncate(l.ErrReq, 100)).SetLastSyncedAt(r.cfg.Now()).SetOwnerMarked(l.OwnerMarked)
	if l.CreatedAt != nil {
		up.SetRemoteCreatedAt(*l.CreatedAt)
	} else {
		up.ClearRemoteCreatedAt()
	}
	if l.Status == string(remotelink.StatusIN_SYNC) && o.transient == nil && !o.failed {
		// Every pass reads the remote members and writes the difference.
		up.ClearDrift()
	}
	if err := up.Exec(ctx); err != nil {
		return fmt.Errorf("groupsync: save link: %w", err)
	}
	return nil
}

// complete settles the job item and records the events, on c (nil: its own
// transaction, for a malformed task).
func (r *Reconciler) complete(ctx context.Context, log *slog.Logger, t jobs.ReconcileGroup, c *ent.Client, o *outcome) error {
	own := c == nil
	var tx *ent.Tx
	if own {
		if t.OrgID == "" || t.JobID == "" || t.ItemID == "" {
			return nil
		}
		var err error
		if tx, err = r.cfg.Ent.Tx(ctx); err != nil {
			return fmt.Errorf("groupsync: begin: %w", err)
		}
		defer func() { _ = tx.Rollback() }()
		c = tx.Client()
	}
	if t.JobID != "" && t.ItemID != "" {
		detail := jobs.Truncate(strings.Join(o.notes, "; "), 2000)
		j, err := jobs.CompleteItem(ctx, c, t.OrgID, t.JobID, t.ItemID, jobs.ItemOutcome{
			Failed: o.failed, Result: o.result, ErrorCode: o.code, ErrorMessage: o.msg}, r.cfg.Now())
		if err != nil {
			return err
		}
		done := j != nil
		if done && detail != "" {
			if err := c.JobItem.UpdateOneID(t.ItemID).SetDetail(detail).Exec(ctx); err != nil {
				return fmt.Errorf("groupsync: item detail: %w", err)
			}
		}
		o.itemDone = done
	}
	if err := r.record(ctx, t, c, o); err != nil {
		return err
	}
	if own {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("groupsync: commit: %w", err)
		}
		r.published(ctx, log, t, o)
	}
	return nil
}

// record writes the outcome's events on c.
func (r *Reconciler) record(ctx context.Context, t jobs.ReconcileGroup, c *ent.Client, o *outcome) error {
	for _, e := range o.events {
		detail := e.detail
		if len(o.notes) > 0 && e.typ != EventGroupMembership {
			detail += "; " + strings.Join(o.notes, "; ")
		}
		ec := c.Event.Create().SetOrganizationID(t.OrgID).SetType(e.typ).SetIntegrationID(t.IntegrationID).
			SetDetail(jobs.Truncate(detail, 4000))
		if gid := groupOf(t, o); gid != "" {
			ec.SetGroupID(gid)
		}
		if t.JobID != "" {
			ec.SetJobID(t.JobID)
		}
		ev, err := ec.Save(ctx)
		if err != nil {
			return fmt.Errorf("groupsync: record event: %w", err)
		}
		o.saved = append(o.saved, ev)
	}
	o.events = nil
	return nil
}

func groupOf(t jobs.ReconcileGroup, o *outcome) pulid.ID {
	if o.groupID != "" {
		return o.groupID
	}
	return t.GroupID
}

func (r *Reconciler) published(ctx context.Context, log *slog.Logger, t jobs.ReconcileGroup, o *outcome) {
	if o.itemDone {
		r.publishJob(ctx, log, t.OrgID, t.JobID)
	}
	for _, ev := range o.saved {
		if r.cfg.Publisher == nil {
			return
		}
		m, err := jobs.EventMessage(ev)
		if err == nil {
			err = r.cfg.Publisher.Publish(ctx, m)
		}
		if err != nil {
			log.Warn("groupsync: publish event", "err", err)
		}
	}
}

func (r *Reconciler) publishJob(ctx context.Context, log *slog.Logger, orgID, jobID pulid.ID) {
	if err := jobs.PublishJob(ctx, r.cfg.Ent, r.cfg.Publisher, orgID, jobID); err != nil {
		log.Warn("groupsync: publish job", "err", err)
	}
}

// RetryAfter is Graph's Retry-After in an error Handle returned, 0 if none.
func RetryAfter(err error) time.Duration { return retryAfter(err) }

// addParallel is how many members@odata.bind PATCHes of one group are in
// flight at once. Each carries 20 members, so the write count is the same
// as sequential; a few in flight hide the round-trip time, and the shared
// throttle budget still paces them to the tenant's write quota.
const addParallel = 4

// addMembers adds ids in batches of 20 with up to addParallel PATCHes in
// flight. The result is AddGroupMembers': member errors joined, or the first
// other error.
func addMembers(ctx context.Context, gc *msgraph.Client, groupID string, ids []string) error {
	per := 20 * ((len(ids)/20 + addParallel - 1) / addParallel)
	if per < 20 {
		per = 20
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for part := range slices.Chunk(ids, per) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := gc.AddGroupMembers(ctx, groupID, part); err != nil {
				mu.Lock()
				errs = append(errs, unjoin(err)...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		var me *msgraph.MemberError
		if !errors.As(e, &me) {
			return e
		}
	}
	return errors.Join(errs...)
}

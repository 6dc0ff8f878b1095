package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/drift/driftinfo"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/tenant"
)

// EventRemoteDrift is the event a round records per drifted link (J3).
const EventRemoteDrift = "remote_drift"

// Config configures a Detector.
type Config struct {
	Ent     *ent.Client
	Tenants *tenant.Connector
	// Reconciler plans what a reconcile would write now (provision.Expect).
	Reconciler *provision.Reconciler
	Publisher  *pubsub.Publisher // nil: don't publish
	Logger     *slog.Logger
	Now        func() time.Time
}

// Detector runs drift rounds.
type Detector struct {
	cfg Config
	log *slog.Logger
}

// New validates cfg and fills defaults.
func New(cfg Config) (*Detector, error) {
	var errs []error
	if cfg.Ent == nil {
		errs = append(errs, errors.New("drift: Ent required"))
	}
	if cfg.Tenants == nil {
		errs = append(errs, errors.New("drift: Tenants required"))
	}
	if cfg.Reconciler == nil {
		errs = append(errs, errors.New("drift: Reconciler required"))
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
	return &Detector{cfg: cfg, log: cfg.Logger.With("component", "drift")}, nil
}

// Result is what one round did.
type Result struct {
	// Skipped: the integration is gone or not authorized; nothing was read.
	Skipped bool
	// FullUsers/FullGroups: the round read everything (first round, a
	// changed $select, or Graph refused the stored token: 410 / syncStateNotFound).
	FullUsers, FullGroups bool
	// Changed is how many changed or removed objects Graph reported.
	Changed int
	// Drifted lists the links found drifted (deleted ones included).
	Drifted []pulid.ID
	Deleted int
	// Job is the correcting job (driftAction CORRECT), nil if none.
	Job *ent.Job
}

// finding is one drifted link.
type finding struct {
	link    *ent.RemoteLink
	props   []string
	deleted bool
	detail  string
}

// Round runs one drift round of the integration: reads the delta of users
// (and of groups when group management is on) since the stored deltaLinks,
// compares, records, and stores the new deltaLinks — all in one transaction,
// so a round that fails stores nothing and the next one reads the same
// changes again.
func (d *Detector) Round(ctx context.Context, orgID, integrationID pulid.ID) (*Result, error) {
	ctx = auth.SystemContext(ctx)
	in, err := d.cfg.Ent.Integration.Query().
		Where(integration.ID(integrationID), integration.OrganizationID(orgID)).Only(ctx)
	if ent.IsNotFound(err) {
		return &Result{Skipped: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("drift: load integration: %w", err)
	}
	if in.Status != integration.StatusAUTHORIZED {
		return &Result{Skipped: true}, nil // I5: nothing is read from or sent to it
	}
	gc, err := d.cfg.Tenants.Client(in)
	if err != nil {
		return nil, fmt.Errorf("drift: graph client: %w", err)
	}
	res := &Result{}
	users, usersLink, err := d.readUsers(ctx, gc, in, res)
	if err != nil {
		return nil, err
	}
	var groups roundGroups
	groupsLink := in.GroupsDeltaLink
	if in.GroupManagement {
		if groups, groupsLink, err = d.readGroups(ctx, gc, in, res); err != nil {
			return nil, err
		}
	}
	res.Changed = len(users.changed) + len(users.removed) + len(groups.changed) + len(groups.removed)

	tx, err := d.cfg.Ent.Tx(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	c := tx.Client()
	// FOR UPDATE: an overlapping round of the same integration waits here
	// and then stores its own (later) deltaLinks; settings changes wait too.
	cur, err := c.Integration.Query().Where(integration.ID(in.ID)).ForUpdate().Only(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift: lock integration: %w", err)
	}
	if cur.Status != integration.StatusAUTHORIZED || cur.UpdatedAt.After(in.UpdatedAt) {
		// Settings or credentials changed during the round: what it read may
		// belong to another tenant or $select. The next round starts afresh.
		return &Result{Skipped: true}, nil
	}
	now := d.cfg.Now()
	var found []finding
	fu, clearU, err := d.compareUsers(ctx, c, in, users)
	if err != nil {
		return nil, err
	}
	found = append(found, fu...)
	var clearG []pulid.ID
	if in.GroupManagement {
		var fg []finding
		if fg, clearG, err = d.compareGroups(ctx, c, in, groups, res.FullGroups); err != nil {
			return nil, err
		}
		found = append(found, fg...)
	}
	if cl := append(clearU, clearG...); len(cl) > 0 {
		if err := c.RemoteLink.Update().Where(remotelink.IDIn(cl...)).ClearDrift().Exec(ctx); err != nil {
			return nil, fmt.Errorf("drift: clear drift: %w", err)
		}
	}
	events, err := d.record(ctx, c, in, found, now, res)
	if err != nil {
		return nil, err
	}
	// Ent's update hooks would bump updated_at, which the Graph client cache
	// keys on; the round's own bookkeeping is not a settings change.
	if _, err := c.ExecContext(ctx,
		`UPDATE integrations SET users_delta_link = $1, groups_delta_link = $2, drift_checked_at = $3 WHERE id = $4`,
		usersLink, groupsLink, now, in.ID); err != nil {
		return nil, fmt.Errorf("drift: store delta links: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("drift: commit: %w", err)
	}
	d.publish(ctx, in.OrganizationID, events, res.Job)
	d.log.Info("drift: round", "integration", string(in.ID), "full_users", res.FullUsers, "full_groups", res.FullGroups,
		"changed", res.Changed, "drifted", len(res.Drifted), "deleted", res.Deleted)
	return res, nil
}

type roundUsers struct {
	changed []map[string]any
	removed []msgraph.RemovedObject
}

type roundGroups struct {
	changed []msgraph.Group
	removed []msgraph.RemovedObject
}

// readUsers reads the users delta from the stored link, or from scratch
// when there is none or Graph no longer accepts it.
func (d *Detector) readUsers(ctx context.Context, gc *msgraph.Client, in *ent.Integration, res *Result) (roundUsers, string, error) {
	sel := UserSelect(provision.Table(in))
	link := in.UsersDeltaLink
	res.FullUsers = link == ""
	changed, removed, next, err := gc.UsersDeltaRaw(msgraph.DeltaOptions{DeltaLink: link, Select: sel}).Collect(ctx)
	if errors.Is(err, msgraph.ErrDeltaReset) && link != "" {
		d.log.Warn("drift: users delta token refused, reading everything again", "integration", string(in.ID), "err", err)
		res.FullUsers = true
		changed, removed, next, err = gc.UsersDeltaRaw(msgraph.DeltaOptions{Select: sel}).Collect(ctx)
	}
	if err != nil {
		return roundUsers{}, "", fmt.Errorf("drift: users delta of integration %s: %w", in.ID, err)
	}
	return roundUsers{changed: changed, removed: removed}, next, nil
}

func (d *Detector) readGroups(ctx context.Context, gc *msgraph.Client, in *ent.Integration, res *Result) (roundGroups, string, error) {
	link := in.GroupsDeltaLink
	res.FullGroups = link == ""
	changed, removed, next, err := gc.GroupsDelta(msgraph.DeltaOptions{DeltaLink: link, Select: GroupSelect}).Collect(ctx)
	if errors.Is(err, msgraph.ErrDeltaReset) && link != "" {
		d.log.Warn("drift: groups delta token refused, reading everything again", "integration", string(in.ID), "err", err)
		res.FullGroups = true
		changed, removed, next, err = gc.GroupsDelta(msgraph.DeltaOptions{Select: GroupSelect}).Collect(ctx)
	}
	if err != nil {
		return roundGroups{}, "", fmt.Errorf("drift: groups delta of integration %s: %w", in.ID, err)
	}
	return roundGroups{changed: msgraph.MergeGroupDeltas(changed), removed: removed}, next, nil
}

// linksByRemoteID loads the integration's links of kind for the remote ids,
// keyed by lower-cased remote id.
func linksByRemoteID(ctx context.Context, c *ent.Client, in *ent.Integration, kind remotelink.Kind, ids []string, withUser bool) (map[string]*ent.RemoteLink, error) {
	out := map[string]*ent.RemoteLink{}
	for chunk := range slices.Chunk(ids, 1000) {
		q := c.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.KindEQ(kind), remotelink.RemoteIDIn(chunk...))
		if withUser {
			q = q.WithUser()
		} else {
			q = q.WithGroup()
		}
		ls, err := q.All(ctx)
		if err != nil {
			return nil, fmt.Errorf("drift: links: %w", err)
		}
		for _, l := range ls {
			out[strings.ToLower(l.RemoteID)] = l
		}
	}
	return out, nil
}

// settled: a link whose last reconcile finished and that dirsync still
// manages; any other is being worked on (PENDING, ERROR: a retry will write
// anyway), released (OUT_OF_SCOPE) or already known deleted.
func settled(l *ent.RemoteLink) bool {
	return l.Status == remotelink.StatusIN_SYNC && l.RemoteID != ""
}

// deletions are the findings for linked objects deleted in the tenant;
// links already released or marked deleted are not news. what names the
// object in the event's detail.
func deletions(links map[string]*ent.RemoteLink, removed []msgraph.RemovedObject, what func(*ent.RemoteLink) string) []finding {
	var out []finding
	for _, rm := range removed {
		l := links[strings.ToLower(rm.ID)]
		if l == nil || l.Status == remotelink.StatusOUT_OF_SCOPE || l.Status == remotelink.StatusREMOTE_DELETED {
			continue
		}
		out = append(out, finding{link: l, deleted: true, props: []string{"deleted"},
			detail: what(l) + " was deleted in the tenant"})
	}
	return out
}

func (d *Detector) compareUsers(ctx context.Context, c *ent.Client, in *ent.Integration, r roundUsers) ([]finding, []pulid.ID, error) {
	if len(r.changed) == 0 && len(r.removed) == 0 {
		return nil, nil, nil // a quiet round reads nothing from PostgreSQL
	}
	ids := make([]string, 0, len(r.changed)+len(r.removed))
	for _, u := range r.changed {
		if id, _ := u["id"].(string); id != "" {
			ids = append(ids, id)
		}
	}
	for _, rm := range r.removed {
		ids = append(ids, rm.ID)
	}
	links, err := linksByRemoteID(ctx, c, in, remotelink.KindUSER, ids, true)
	if err != nil {
		return nil, nil, err
	}
	out := deletions(links, r.removed, func(l *ent.RemoteLink) string {
		return fmt.Sprintf("remote user %s (%s)", l.RemoteID, l.Upn)
	})
	var clear []pulid.ID
	for _, ru := range r.changed {
		id, _ := ru["id"].(string)
		l := links[strings.ToLower(id)]
		if l == nil || !settled(l) || l.Edges.User == nil {
			continue // not ours, busy, released, or its user is deleted (deprovisioning pending)
		}
		plan, err := d.cfg.Reconciler.Expect(ctx, c, in, l.Edges.User, l)
		if err != nil {
			return nil, nil, err
		}
		props, ok := UserDrift(plan, l.AppliedHash, l.RemoteEnabled, ru)
		if !ok {
			continue
		}
		if len(props) == 0 {
			if l.Drift != nil {
				clear = append(clear, l.ID)
			}
			continue
		}
		out = append(out, finding{link: l, props: props,
			detail: fmt.Sprintf("remote user %s (%s): %s changed in the tenant", l.RemoteID, l.Upn, strings.Join(props, ", "))})
	}
	return out, clear, nil
}

func (d *Detector) compareGroups(ctx context.Context, c *ent.Client, in *ent.Integration, r roundGroups, full bool) ([]finding, []pulid.ID, error) {
	if len(r.changed) == 0 && len(r.removed) == 0 {
		return nil, nil, nil
	}
	ids := make([]string, 0, len(r.changed)+len(r.removed))
	var memberIDs []string
	for _, g := range r.changed {
		ids = append(ids, g.ID)
		for _, m := range g.MembersDelta {
			if m.Removed == nil {
				memberIDs = append(memberIDs, strings.ToLower(m.ID))
			}
		}
	}
	for _, rm := range r.removed {
		ids = append(ids, rm.ID)
	}
	links, err := linksByRemoteID(ctx, c, in, remotelink.KindGROUP, ids, false)
	if err != nil {
		return nil, nil, err
	}
	linked, err := linkedUsers(ctx, c, in, memberIDs)
	if err != nil {
		return nil, nil, err
	}
	out := deletions(links, r.removed, func(l *ent.RemoteLink) string {
		return fmt.Sprintf("remote group %s (%s)", l.RemoteID, l.DisplayName)
	})
	var clear []pulid.ID
	for _, g := range r.changed {
		l := links[strings.ToLower(g.ID)]
		if l == nil || !settled(l) || l.MembersDirty || l.Edges.Group == nil {
			continue
		}
		grp := l.Edges.Group
		props := GroupDrift(g, grp.Name, grp.Description, groupsync.Hash(grp.Name, grp.Description), l.AppliedHash,
			l.MemberIds, func(id string) bool { return linked[id] }, full)
		if len(props) == 0 {
			if l.Drift != nil {
				clear = append(clear, l.ID)
			}
			continue
		}
		out = append(out, finding{link: l, props: props,
			detail: fmt.Sprintf("remote group %s (%s): %s changed in the tenant", l.RemoteID, grp.Name, strings.Join(props, ", "))})
	}
	return out, clear, nil
}

// linkedUsers reports which remote ids are accounts dirsync manages in the
// integration (user links that are neither released nor deleted).
func linkedUsers(ctx context.Context, c *ent.Client, in *ent.Integration, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	ls, err := linksByRemoteID(ctx, c, in, remotelink.KindUSER, ids, true)
	if err != nil {
		return nil, err
	}
	for id, l := range ls {
		if l.Status != remotelink.StatusOUT_OF_SCOPE && l.Status != remotelink.StatusREMOTE_DELETED {
			out[id] = true
		}
	}
	return out, nil
}

// record writes what the round found: the drift on each link (deleted ones
// become REMOTE_DELETED), one remote_drift event each, and with driftAction
// CORRECT one job of forced reconciles that re-applies the directory's values.
func (d *Detector) record(ctx context.Context, c *ent.Client, in *ent.Integration, found []finding, now time.Time, res *Result) ([]*ent.Event, error) {
	if len(found) == 0 {
		return nil, nil
	}
	action := string(in.DriftAction)
	var targets []jobs.Target
	for _, f := range found {
		if f.deleted || action != driftinfo.ActionCorrect {
			continue
		}
		l := f.link
		if l.Kind == remotelink.KindGROUP {
			targets = append(targets, jobs.Target{IntegrationID: in.ID, GroupID: *l.GroupID, Group: true})
			continue
		}
		targets = append(targets, jobs.Target{IntegrationID: in.ID, UserID: *l.UserID, Force: true})
	}
	if len(targets) > 0 {
		job, err := jobs.Start(ctx, c, in.OrganizationID, jobs.JobDriftCorrection, in.ID, targets)
		if err != nil {
			return nil, err
		}
		res.Job = job
	}
	events := make([]*ent.Event, 0, len(found))
	for _, f := range found {
		l := f.link
		info := &driftinfo.Drift{Properties: f.props, DetectedAt: now, Deleted: f.deleted, Action: action}
		detail := f.detail
		up := c.RemoteLink.UpdateOneID(l.ID).SetDrift(info)
		switch {
		case f.deleted:
			info.Action = driftinfo.ActionReport // nothing is re-created without a resync
			up.SetStatus(remotelink.StatusREMOTE_DELETED).SetStatusReason(provision.ReasonRemoteDeleted)
			detail += "; the link is REMOTE_DELETED until a resync creates it again"
			res.Deleted++
		case res.Job != nil:
			info.JobID = res.Job.ID
			detail += "; correcting"
			if l.Kind == remotelink.KindGROUP && slices.ContainsFunc(f.props, func(p string) bool { return p != "members" }) {
				// The group pass writes the name only when the hash differs.
				up.SetAppliedHash("")
			}
		default:
			detail += "; reported only (driftAction REPORT)"
		}
		if err := up.Exec(ctx); err != nil {
			return nil, fmt.Errorf("drift: save link: %w", err)
		}
		ec := c.Event.Create().SetOrganizationID(in.OrganizationID).SetType(EventRemoteDrift).
			SetIntegrationID(in.ID).SetDetail(jobs.Truncate(detail, 4000))
		if l.UserID != nil {
			ec.SetUserID(*l.UserID)
		}
		if l.GroupID != nil {
			ec.SetGroupID(*l.GroupID)
		}
		if res.Job != nil && !f.deleted {
			ec.SetJobID(res.Job.ID)
		}
		ev, err := ec.Save(ctx)
		if err != nil {
			return nil, fmt.Errorf("drift: record event: %w", err)
		}
		events = append(events, ev)
		res.Drifted = append(res.Drifted, l.ID)
	}
	return events, nil
}

func (d *Detector) publish(ctx context.Context, orgID pulid.ID, events []*ent.Event, job *ent.Job) {
	if d.cfg.Publisher == nil {
		return
	}
	for _, ev := range events {
		m, err := jobs.EventMessage(ev)
		if err == nil {
			err = d.cfg.Publisher.Publish(ctx, m)
		}
		if err != nil {
			d.log.Warn("drift: publish event", "err", err)
		}
	}
	if job != nil {
		if err := jobs.PublishJob(ctx, d.cfg.Ent, d.cfg.Publisher, orgID, job.ID); err != nil {
			d.log.Warn("drift: publish job", "err", err)
		}
	}
}

// Package groupsync manages user groups as remote security groups (SPEC G1–G4,
// B2, X4): which (group, integration) pairs a change must reconcile
// (Targets, MarkDirty), and the convergent reconcile of one pair (Reconciler).
// See docs/groups.md.
package groupsync

import (
	"context"
	"fmt"

	"github.com/lib/pq"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
)

// Targets lists the (group, integration) pairs a change of these groups must
// reconcile, on c (the caller's transaction): every authorized integration
// with group management on that a group is bound to, and every authorized
// integration that still manages a link of the group (to release it after an
// unbind, management off or deletion). integrationID "" means all.
//
// It creates the missing link rows (PENDING) of managed pairs in the same
// transaction: a member's user reconcile marks the group link dirty to get a
// follow-up pass (MarkDirty), which only works on a row that is already
// committed when that reconcile runs. Call it before deleting the groups;
// targets carry the link id, which outlives the group.
func Targets(ctx context.Context, c *ent.Client, orgID pulid.ID, groupIDs []pulid.ID, integrationID pulid.ID) ([]jobs.Target, error) {
	if len(groupIDs) == 0 {
		return nil, nil
	}
	bq := c.GroupBinding.Query().Where(groupbinding.GroupIDIn(groupIDs...),
		groupbinding.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED), integration.GroupManagement(true)))
	if integrationID != "" {
		bq = bq.Where(groupbinding.IntegrationID(integrationID))
	}
	bindings, err := bq.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("groupsync: bindings: %w", err)
	}
	if len(bindings) > 0 {
		creates := make([]*ent.RemoteLinkCreate, len(bindings))
		for i, b := range bindings {
			creates[i] = c.RemoteLink.Create().SetOrganizationID(orgID).SetIntegrationID(b.IntegrationID).
				SetGroupID(b.GroupID).SetKind(remotelink.KindGROUP)
		}
		if err := c.RemoteLink.CreateBulk(creates...).
			OnConflictColumns(remotelink.FieldIntegrationID, remotelink.FieldGroupID).DoNothing().Exec(ctx); err != nil && !ent.IsNotFound(err) {
			return nil, fmt.Errorf("groupsync: create links: %w", err)
		}
	}
	lq := c.RemoteLink.Query().Where(remotelink.KindEQ(remotelink.KindGROUP), remotelink.GroupIDIn(groupIDs...),
		remotelink.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED)))
	if integrationID != "" {
		lq = lq.Where(remotelink.IntegrationID(integrationID))
	}
	links, err := lq.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("groupsync: links: %w", err)
	}
	managed := make(map[[2]pulid.ID]bool, len(bindings))
	for _, b := range bindings {
		managed[[2]pulid.ID{b.IntegrationID, b.GroupID}] = true
	}
	var out []jobs.Target
	for _, l := range links {
		if !managed[[2]pulid.ID{l.IntegrationID, *l.GroupID}] && l.Status == remotelink.StatusOUT_OF_SCOPE {
			continue // already released: nothing to stop
		}
		out = append(out, jobs.Target{IntegrationID: l.IntegrationID, GroupID: *l.GroupID, LinkID: l.ID, Group: true})
	}
	return out, nil
}

// UserGroupTargets is Targets for every group these users are members of:
// what a change of their membership-relevant state (deletion) must reconcile.
func UserGroupTargets(ctx context.Context, c *ent.Client, orgID pulid.ID, userIDs []pulid.ID) ([]jobs.Target, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	rows, err := c.QueryContext(ctx,
		`SELECT DISTINCT m.user_group_id FROM user_group_members m
		 JOIN remote_links l ON l.group_id = m.user_group_id AND l.kind = 'GROUP'
		 WHERE m.user_id = ANY($1)`, pq.Array(ids(userIDs)))
	if err != nil {
		return nil, fmt.Errorf("groupsync: groups of users: %w", err)
	}
	defer rows.Close()
	var groups []pulid.ID
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		groups = append(groups, pulid.ID(g))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return Targets(ctx, c, orgID, groups, "")
}

// MarkDirty asks for a follow-up pass of every managed group link of the
// integration whose group holds the user, because the user's remote account
// started or stopped being a member candidate (a link appeared, was lost or
// released). Only links not yet dirty get a task, so a burst of user
// reconciles over one big group queues one pass at a time, not one per user.
// The group reconcile clears the flag in its own short transaction before it
// reads the members, so a link that appears later flips it again. A group
// whose remote group could not be found or created (ERROR, no remote id) is
// not retried by every member's provisioning: the next change of the group,
// its bindings or the integration tries again.
func MarkDirty(ctx context.Context, c *ent.Client, orgID, integrationID, userID, jobID pulid.ID) error {
	// The user's groups as an array, so that the (integration, group) index
	// is searched on both columns: joined, PostgreSQL read every link of the
	// integration on unanalysed tables (docs/scaling.md).
	// Every matching link is locked until this transaction commits, dirty or
	// not: the group reconcile's clear waits for it, so its read of the
	// members that follows sees this user's link. Locked in id order so two
	// users of the same groups cannot deadlock.
	rows, err := c.QueryContext(ctx,
		`WITH old AS (
		   SELECT l.id, l.members_dirty AS was FROM remote_links l
		   WHERE l.kind = 'GROUP' AND l.organization_id = $1 AND l.integration_id = $2
		     AND l.group_id = ANY (ARRAY(SELECT m.user_group_id FROM user_group_members m WHERE m.user_id = $3))
		     AND l.status <> 'OUT_OF_SCOPE'
		     AND NOT (l.status = 'ERROR' AND coalesce(l.remote_id, '') = '')
		   ORDER BY l.id FOR UPDATE OF l)
		 UPDATE remote_links l SET members_dirty = true FROM old WHERE l.id = old.id
		 RETURNING l.id, l.group_id, old.was`, orgID, integrationID, userID)
	if err != nil {
		return fmt.Errorf("groupsync: mark dirty: %w", err)
	}
	defer rows.Close()
	var tasks []any
	for rows.Next() {
		var link, group string
		var was bool
		if err := rows.Scan(&link, &group, &was); err != nil {
			return err
		}
		if was {
			continue // a pass is queued already and has not started reading
		}
		tasks = append(tasks, jobs.ReconcileGroup{OrgID: orgID, IntegrationID: integrationID,
			GroupID: pulid.ID(group), LinkID: pulid.ID(link), JobID: jobID})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	return jobs.Enqueue(ctx, c, orgID, jobs.KindReconcileGroup, tasks...)
}

func ids(in []pulid.ID) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = string(x)
	}
	return out
}

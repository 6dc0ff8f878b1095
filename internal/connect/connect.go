// Package connect answers "which integrations is this user connected to" (B1: bound
// directly or through any bound user group) and "which (user, integration) pairs
// must be reconciled after a change" — the one place both the API (to start jobs)
// and the worker (to decide) read connections from.
package connect

import (
	"context"
	"fmt"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/userbinding"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/jobs"
)

// Integrations returns the authorized integrations the user is connected to,
// oldest first (the order I4 breaks ties in).
func Integrations(ctx context.Context, c *ent.Client, userID pulid.ID) ([]*ent.Integration, error) {
	ins, err := c.Integration.Query().
		Where(
			integration.StatusEQ(integration.StatusAUTHORIZED),
			boundTo(userID),
		).
		Order(ent.Asc(integration.FieldCreatedAt), ent.Asc(integration.FieldID)).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: integrations of %s: %w", userID, err)
	}
	return ins, nil
}

// Connected reports whether the user is connected to the integration.
func Connected(ctx context.Context, c *ent.Client, userID, integrationID pulid.ID) (bool, error) {
	return c.Integration.Query().
		Where(
			integration.ID(integrationID),
			boundTo(userID),
		).Exist(ctx)
}

// UserTargets lists every (user, integration) a change of these users can affect:
// the integrations they are connected to and those that still hold a link for
// them (to deprovision or re-scope). Integrations that are not authorized are
// left out: nothing may be sent to them (I5).
func UserTargets(ctx context.Context, c *ent.Client, userIDs []pulid.ID) ([]jobs.Target, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	var out []jobs.Target
	direct, err := c.UserBinding.Query().
		Where(userbinding.UserIDIn(userIDs...), userbinding.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED))).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: direct bindings: %w", err)
	}
	for _, b := range direct {
		out = append(out, jobs.Target{IntegrationID: b.IntegrationID, UserID: b.UserID})
	}
	groups, err := c.GroupBinding.Query().
		Where(groupbinding.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED)),
			groupbinding.HasGroupWith(usergroup.HasMembersWith(user.IDIn(userIDs...)))).
		WithGroup(func(q *ent.UserGroupQuery) {
			q.WithMembers(func(uq *ent.UserQuery) { uq.Where(user.IDIn(userIDs...)).Select(user.FieldID) })
		}).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: group bindings: %w", err)
	}
	for _, gb := range groups {
		for _, m := range gb.Edges.Group.Edges.Members {
			out = append(out, jobs.Target{IntegrationID: gb.IntegrationID, UserID: m.ID})
		}
	}
	links, err := c.RemoteLink.Query().
		Where(remotelink.UserIDIn(userIDs...), remotelink.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED))).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: links: %w", err)
	}
	for _, l := range links {
		out = append(out, jobs.Target{IntegrationID: l.IntegrationID, UserID: *l.UserID})
	}
	return out, nil
}

// GroupMemberTargets lists (member, integration) for every integration the groups
// are bound to: what binding, unbinding or deleting the groups affects (X4).
func GroupMemberTargets(ctx context.Context, c *ent.Client, groupIDs []pulid.ID, integrationID pulid.ID) ([]jobs.Target, error) {
	q := c.GroupBinding.Query().Where(groupbinding.GroupIDIn(groupIDs...),
		groupbinding.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED)))
	if integrationID != "" {
		q = q.Where(groupbinding.IntegrationID(integrationID))
	}
	bindings, err := q.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: group bindings: %w", err)
	}
	var out []jobs.Target
	for _, gb := range bindings {
		members, err := c.User.Query().Where(user.HasGroupsWith(usergroup.ID(gb.GroupID))).IDs(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect: members: %w", err)
		}
		for _, m := range members {
			out = append(out, jobs.Target{IntegrationID: gb.IntegrationID, UserID: m})
		}
	}
	return out, nil
}

// IntegrationTargets lists every user of one integration that a change of the
// integration itself (settings, re-authorization) can affect: users bound
// directly, members of bound groups, and users that still hold a managed link
// (to re-scope or deprovision them; OUT_OF_SCOPE links, e.g. released by a
// de-authorization, are not managed). Links whose user was deleted are listed
// by LinkID so their deprovisioning (X3) is not lost. The caller decides whether
// the integration may be sent anything (I5).
func IntegrationTargets(ctx context.Context, c *ent.Client, integrationID pulid.ID) ([]jobs.Target, error) {
	users, err := c.User.Query().
		Where(user.Or(
			user.HasBindingsWith(userbinding.IntegrationID(integrationID)),
			user.HasGroupsWith(usergroup.HasBindingsWith(groupbinding.IntegrationID(integrationID))),
			user.HasLinksWith(remotelink.IntegrationID(integrationID), remotelink.StatusNEQ(remotelink.StatusOUT_OF_SCOPE)),
		)).
		Order(ent.Asc(user.FieldID)).
		IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: users of integration %s: %w", integrationID, err)
	}
	out := make([]jobs.Target, 0, len(users))
	for _, id := range users {
		out = append(out, jobs.Target{IntegrationID: integrationID, UserID: id})
	}
	orphans, err := c.RemoteLink.Query().
		Where(remotelink.IntegrationID(integrationID), remotelink.UserIDIsNil(), remotelink.KindEQ(remotelink.KindUSER),
			remotelink.StatusNEQ(remotelink.StatusOUT_OF_SCOPE)).
		IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: orphan links of integration %s: %w", integrationID, err)
	}
	for _, id := range orphans {
		out = append(out, jobs.Target{IntegrationID: integrationID, LinkID: id})
	}
	return out, nil
}

// GroupIntegrations returns the authorized integrations the group is bound to.
func GroupIntegrations(ctx context.Context, c *ent.Client, groupID pulid.ID) ([]pulid.ID, error) {
	ids, err := c.GroupBinding.Query().
		Where(groupbinding.GroupID(groupID), groupbinding.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED))).
		Select(groupbinding.FieldIntegrationID).
		Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: integrations of group %s: %w", groupID, err)
	}
	out := make([]pulid.ID, len(ids))
	for i, id := range ids {
		out[i] = pulid.ID(id)
	}
	return out, nil
}

// MembershipTargets lists (user, integration) for users joining or leaving a
// group: each of them in every authorized integration the group is bound to.
// Call it before removing members, while the binding still explains why.
func MembershipTargets(ctx context.Context, c *ent.Client, groupID pulid.ID, userIDs []pulid.ID) ([]jobs.Target, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	ins, err := GroupIntegrations(ctx, c, groupID)
	if err != nil {
		return nil, err
	}
	out := make([]jobs.Target, 0, len(ins)*len(userIDs))
	for _, in := range ins {
		for _, u := range userIDs {
			out = append(out, jobs.Target{IntegrationID: in, UserID: u})
		}
	}
	return out, nil
}

// DeletionTargets lists what deleting these users must deprovision (X3): each
// live link in an authorized integration, by LinkID (the link outlives the
// user row) and UserID (for the job's history). Call it before deleting.
func DeletionTargets(ctx context.Context, c *ent.Client, userIDs []pulid.ID) ([]jobs.Target, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	links, err := c.RemoteLink.Query().
		Where(remotelink.UserIDIn(userIDs...), remotelink.HasIntegrationWith(integration.StatusEQ(integration.StatusAUTHORIZED))).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: links: %w", err)
	}
	out := make([]jobs.Target, 0, len(links))
	for _, l := range links {
		out = append(out, jobs.Target{IntegrationID: l.IntegrationID, UserID: *l.UserID, LinkID: l.ID})
	}
	return out, nil
}

// spreadChunk bounds the user ids of one UserTargets call (PostgreSQL accepts
// at most 65,535 parameters per statement; a bound group may be large).
const spreadChunk = 5000

// Spread adds, for every user named in targets, each other authorized
// integration the user is connected to or linked in. Which integration owns a
// user (I4) depends on all of them, so a change that can move ownership — a
// binding, a group membership, an integration's domain settings — must
// reconcile the user everywhere, or the result would depend on the order of
// the changes: the integration that lost the user would keep it live, or keep
// a stale error. Duplicates are left to jobs.Start.
func Spread(ctx context.Context, c *ent.Client, targets []jobs.Target) ([]jobs.Target, error) {
	seen := make(map[pulid.ID]bool, len(targets))
	var users []pulid.ID
	for _, t := range targets {
		if t.UserID != "" && !seen[t.UserID] {
			seen[t.UserID] = true
			users = append(users, t.UserID)
		}
	}
	out := targets
	for len(users) > 0 {
		n := min(len(users), spreadChunk)
		more, err := UserTargets(ctx, c, users[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
		users = users[n:]
	}
	return out, nil
}

// IntegrationAndConnected reads, in one statement, the integration of the
// organization by id (nil if there is none, whatever its status) and what
// Integrations(userID) returns: a reconcile needs both, and one round trip
// less per user counts on a large bind (issue 12).
func IntegrationAndConnected(ctx context.Context, c *ent.Client, orgID, integrationID, userID pulid.ID) (*ent.Integration, []*ent.Integration, error) {
	const bound = "dirsync_bound_to_user"
	rows, err := c.Integration.Query().
		Where(func(s *entsql.Selector) {
			s.Where(entsql.Or(
				entsql.And(entsql.EQ(s.C(integration.FieldID), integrationID), entsql.EQ(s.C(integration.FieldOrganizationID), orgID)),
				entsql.And(entsql.EQ(s.C(integration.FieldStatus), integration.StatusAUTHORIZED), boundToP(s, userID)),
			))
		}).
		Modify(func(s *entsql.Selector) {
			s.AppendSelectExprAs(boundToP(s, userID), bound)
		}).
		Order(ent.Asc(integration.FieldCreatedAt), ent.Asc(integration.FieldID)).
		All(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: integration %s and the integrations of %s: %w", integrationID, userID, err)
	}
	var in *ent.Integration
	connected := []*ent.Integration{}
	for _, x := range rows {
		if x.ID == integrationID && x.OrganizationID == orgID {
			in = x
		}
		v, err := x.Value(bound)
		if err != nil {
			return nil, nil, fmt.Errorf("connect: integrations of %s: %w", userID, err)
		}
		if b, _ := v.(bool); b && x.Status == integration.StatusAUTHORIZED {
			connected = append(connected, x)
		}
	}
	return in, connected, nil
}

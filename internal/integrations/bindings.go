package integrations

import (
	"context"
	"fmt"
	"slices"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/userbinding"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/jobs"
)

// NotificationBound is the kind of the P5 notification: the person was added
// to an integration.
const NotificationBound = "integration_bound"

// BindUsers binds users directly (B1). Users already bound are skipped, so a
// repeat changes nothing and starts nothing. One job reconciles the newly bound
// users; those not connected before (no bound group held them) are notified (P5).
func (s *Service) BindUsers(ctx context.Context, integrationID pulid.ID, userIDs []pulid.ID, opts ...BindOption) (*ent.Integration, *ent.Job, error) {
	return s.bindingChange(ctx, integrationID, userIDs, "userIDs", true, opts, func(ctx context.Context, c *ent.Client, in *ent.Integration, ids []pulid.ID) ([]pulid.ID, []jobs.Target, error) {
		if err := checkIDs(ctx, c, ids, "userIDs", "user", c.User.Query().Where(user.IDIn(ids...)).IDs); err != nil {
			return nil, nil, err
		}
		bound, err := c.UserBinding.Query().Where(userbinding.IntegrationID(in.ID), userbinding.UserIDIn(ids...)).
			Select(userbinding.FieldUserID).Strings(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading bindings: %w", err)
		}
		fresh := minus(ids, bound)
		if len(fresh) == 0 {
			return nil, nil, nil
		}
		before, err := connectedViaGroups(ctx, c, in.ID, fresh)
		if err != nil {
			return nil, nil, err
		}
		creates := make([]*ent.UserBindingCreate, len(fresh))
		for i, u := range fresh {
			creates[i] = c.UserBinding.Create().SetOrganizationID(in.OrganizationID).SetIntegrationID(in.ID).SetUserID(u)
		}
		// A concurrent identical bind may have won the race: its row is as good as ours.
		if err := c.UserBinding.CreateBulk(creates...).
			OnConflictColumns(userbinding.FieldIntegrationID, userbinding.FieldUserID).DoNothing().Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("integrations: creating bindings: %w", err)
		}
		if err := notify(ctx, c, in, minus(fresh, before)); err != nil {
			return nil, nil, err
		}
		return fresh, nil, nil
	})
}

// UnbindUsers removes direct bindings. Users no longer connected at all are
// deprovisioned by the job (X2); users still held by a bound group stay.
func (s *Service) UnbindUsers(ctx context.Context, integrationID pulid.ID, userIDs []pulid.ID, opts ...BindOption) (*ent.Integration, *ent.Job, error) {
	return s.bindingChange(ctx, integrationID, userIDs, "userIDs", false, opts, func(ctx context.Context, c *ent.Client, in *ent.Integration, ids []pulid.ID) ([]pulid.ID, []jobs.Target, error) {
		if err := checkIDs(ctx, c, ids, "userIDs", "user", c.User.Query().Where(user.IDIn(ids...)).IDs); err != nil {
			return nil, nil, err
		}
		bound, err := c.UserBinding.Query().Where(userbinding.IntegrationID(in.ID), userbinding.UserIDIn(ids...)).
			Select(userbinding.FieldUserID).Strings(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading bindings: %w", err)
		}
		if len(bound) == 0 {
			return nil, nil, nil
		}
		if _, err := c.UserBinding.Delete().Where(userbinding.IntegrationID(in.ID), userbinding.UserIDIn(ids...)).Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("integrations: removing bindings: %w", err)
		}
		return toIDs(bound), nil, nil
	})
}

// BindUserGroups binds user groups, connecting their members (B1–B2). Groups
// already bound are skipped. One job reconciles the members of the newly bound
// groups; members not connected before are notified (P5).
func (s *Service) BindUserGroups(ctx context.Context, integrationID pulid.ID, groupIDs []pulid.ID, opts ...BindOption) (*ent.Integration, *ent.Job, error) {
	return s.bindingChange(ctx, integrationID, groupIDs, "groupIDs", true, opts, func(ctx context.Context, c *ent.Client, in *ent.Integration, ids []pulid.ID) ([]pulid.ID, []jobs.Target, error) {
		if err := checkIDs(ctx, c, ids, "groupIDs", "user group", c.UserGroup.Query().Where(usergroup.IDIn(ids...)).IDs); err != nil {
			return nil, nil, err
		}
		bound, err := c.GroupBinding.Query().Where(groupbinding.IntegrationID(in.ID), groupbinding.GroupIDIn(ids...)).
			Select(groupbinding.FieldGroupID).Strings(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading bindings: %w", err)
		}
		fresh := minus(ids, bound)
		if len(fresh) == 0 {
			return nil, nil, nil
		}
		members, err := c.User.Query().Where(user.HasGroupsWith(usergroup.IDIn(fresh...))).Order(ent.Asc(user.FieldID)).IDs(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading members: %w", err)
		}
		// Who was not connected before this call (P5): neither bound directly nor
		// through a group bound earlier. One query, no id list: groups may be big.
		newly, err := c.User.Query().
			Where(user.HasGroupsWith(usergroup.IDIn(fresh...)),
				user.Not(user.HasBindingsWith(userbinding.IntegrationID(in.ID))),
				user.Not(user.HasGroupsWith(usergroup.HasBindingsWith(groupbinding.IntegrationID(in.ID))))).
			IDs(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading connections: %w", err)
		}
		creates := make([]*ent.GroupBindingCreate, len(fresh))
		for i, g := range fresh {
			creates[i] = c.GroupBinding.Create().SetOrganizationID(in.OrganizationID).SetIntegrationID(in.ID).SetGroupID(g)
		}
		if err := c.GroupBinding.CreateBulk(creates...).
			OnConflictColumns(groupbinding.FieldIntegrationID, groupbinding.FieldGroupID).DoNothing().Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("integrations: creating bindings: %w", err)
		}
		if err := notify(ctx, c, in, newly); err != nil {
			return nil, nil, err
		}
		// B2: with group management on, the groups themselves become remote
		// security groups (G2).
		groupTargets, err := groupsync.Targets(ctx, c, in.OrganizationID, fresh, in.ID)
		if err != nil {
			return nil, nil, err
		}
		return members, groupTargets, nil
	})
}

// UnbindUserGroups removes group bindings. Members no longer connected are
// deprovisioned by the job (X4). Targets are computed before the bindings go.
func (s *Service) UnbindUserGroups(ctx context.Context, integrationID pulid.ID, groupIDs []pulid.ID, opts ...BindOption) (*ent.Integration, *ent.Job, error) {
	return s.bindingChange(ctx, integrationID, groupIDs, "groupIDs", false, opts, func(ctx context.Context, c *ent.Client, in *ent.Integration, ids []pulid.ID) ([]pulid.ID, []jobs.Target, error) {
		if err := checkIDs(ctx, c, ids, "groupIDs", "user group", c.UserGroup.Query().Where(usergroup.IDIn(ids...)).IDs); err != nil {
			return nil, nil, err
		}
		bound, err := c.GroupBinding.Query().Where(groupbinding.IntegrationID(in.ID), groupbinding.GroupIDIn(ids...)).
			Select(groupbinding.FieldGroupID).Strings(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading bindings: %w", err)
		}
		if len(bound) == 0 {
			return nil, nil, nil
		}
		members, err := c.User.Query().Where(user.HasGroupsWith(usergroup.IDIn(toIDs(bound)...))).Order(ent.Asc(user.FieldID)).IDs(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading members: %w", err)
		}
		if _, err := c.GroupBinding.Delete().Where(groupbinding.IntegrationID(in.ID), groupbinding.GroupIDIn(ids...)).Exec(ctx); err != nil {
			return nil, nil, fmt.Errorf("integrations: removing bindings: %w", err)
		}
		// G4: the remote groups are no longer managed (their links are released).
		groupTargets, err := groupsync.Targets(ctx, c, in.OrganizationID, toIDs(bound), in.ID)
		if err != nil {
			return nil, nil, err
		}
		return members, groupTargets, nil
	})
}

// bindingChange is the frame of the four binding mutations: de-duplicated ids,
// the integration locked FOR SHARE (a concurrent de-authorization waits), the
// change, and one job over the users it returns, in this integration and in
// every other one they are connected to or linked in (connect.Spread). Binding needs an AUTHORIZED
// integration (I5: re-authorizing needs re-binding); unbinding works in any
// state, but only an AUTHORIZED integration gets a job (nothing may be sent to
// another; re-authorizing reconciles every linked user anyway).
func (s *Service) bindingChange(ctx context.Context, integrationID pulid.ID, ids []pulid.ID, field string, bind bool, opts []BindOption,
	change func(ctx context.Context, c *ent.Client, in *ent.Integration, ids []pulid.ID) ([]pulid.ID, []jobs.Target, error),
) (*ent.Integration, *ent.Job, error) {
	ids, err := directory.UniqueIDs(field, ids)
	if err != nil {
		return nil, nil, err
	}
	kind := map[string]map[bool]string{
		"userIDs":  {true: jobs.JobBindUsers, false: jobs.JobUnbindUsers},
		"groupIDs": {true: jobs.JobBindGroups, false: jobs.JobUnbindGroups},
	}[field][bind]
	var (
		in  *ent.Integration
		job *ent.Job
	)
	err = s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		if in, err = lock(ctx, c, integrationID, "integrationID", false); err != nil {
			return err
		}
		authorized := in.Status == integration.StatusAUTHORIZED
		if bind && !authorized {
			return gqlerr.Newf(gqlerr.FailedPrecondition, "integrationID", "integration %q is not authorized: authorize it before binding", in.Name)
		}
		if len(ids) == 0 {
			return nil
		}
		users, extra, err := change(ctx, c, in, ids)
		if err == nil && bind {
			users, extra, err = withRefusedTakeovers(ctx, c, in.ID, field, ids, users, extra, opts)
		}
		if err != nil || len(users)+len(extra) == 0 || !authorized {
			return err
		}
		// Group targets first: the relay dispatches in outbox order, so the
		// remote groups do not wait behind thousands of member reconciles
		// (members provisioned later are added by follow-up passes).
		targets := make([]jobs.Target, 0, len(users)+len(extra))
		targets = append(targets, extra...)
		for _, u := range users {
			targets = append(targets, jobs.Target{IntegrationID: in.ID, UserID: u})
		}
		// The users' other integrations too: this change may move which one
		// owns them (I4), whatever the order of the bindings was.
		if targets, err = connect.Spread(ctx, c, targets); err != nil {
			return err
		}
		withOwnership(targets, in.ID, opts)
		job, err = jobs.Start(ctx, c, in.OrganizationID, kind, in.ID, targets)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return detach(ctx, in), detachJob(ctx, job), nil
}

// checkIDs reports the first id that the caller cannot see (another
// organization's id behaves like an unknown one) as NOT_FOUND naming field.
func checkIDs(ctx context.Context, c *ent.Client, ids []pulid.ID, field, kind string, found func(context.Context) ([]pulid.ID, error)) error {
	got, err := found(ctx)
	if err != nil {
		return fmt.Errorf("integrations: reading %ss: %w", kind, err)
	}
	if len(got) == len(ids) {
		return nil
	}
	ok := make(map[pulid.ID]bool, len(got))
	for _, id := range got {
		ok[id] = true
	}
	for _, id := range ids {
		if !ok[id] {
			return gqlerr.NotFoundf(field, "%s %s not found", kind, id)
		}
	}
	return nil
}

// connectedViaGroups returns which of the users are members of a group bound
// to the integration.
func connectedViaGroups(ctx context.Context, c *ent.Client, integrationID pulid.ID, userIDs []pulid.ID) ([]pulid.ID, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	ids, err := c.User.Query().
		Where(user.IDIn(userIDs...), user.HasGroupsWith(usergroup.HasBindingsWith(groupbinding.IntegrationID(integrationID)))).
		IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("integrations: reading group connections: %w", err)
	}
	return ids, nil
}

// notify records the P5 notification for each newly connected user.
func notify(ctx context.Context, c *ent.Client, in *ent.Integration, userIDs []pulid.ID) error {
	if len(userIDs) == 0 {
		return nil
	}
	creates := make([]*ent.NotificationCreate, len(userIDs))
	for i, u := range userIDs {
		creates[i] = c.Notification.Create().SetOrganizationID(in.OrganizationID).SetUserID(u).
			SetKind(NotificationBound).
			SetMessage(fmt.Sprintf("You were added to %s: your Microsoft 365 account is being set up.", in.Name))
	}
	// A large group may connect thousands at once: stay under PostgreSQL's
	// 65,535 parameters per statement.
	for chunk := range slices.Chunk(creates, 1000) {
		if err := c.Notification.CreateBulk(chunk...).Exec(ctx); err != nil {
			return fmt.Errorf("integrations: recording notifications: %w", err)
		}
	}
	return nil
}

// minus returns the ids of a that are not in b, in a's order.
func minus[S ~string](a []pulid.ID, b []S) []pulid.ID {
	drop := make(map[pulid.ID]bool, len(b))
	for _, x := range b {
		drop[pulid.ID(x)] = true
	}
	out := make([]pulid.ID, 0, len(a))
	for _, x := range a {
		if !drop[x] {
			out = append(out, x)
		}
	}
	return out
}

func toIDs(s []string) []pulid.ID {
	out := make([]pulid.ID, len(s))
	for i, x := range s {
		out[i] = pulid.ID(x)
	}
	return out
}

package directory

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/jobs"
)

// CreateGroup creates a user group; its name is unique per organization, case-insensitively.
func (s *Service) CreateGroup(ctx context.Context, in ent.CreateUserGroupInput) (*ent.UserGroup, error) {
	var g *ent.UserGroup
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		g, err = c.UserGroup.Create().SetInput(in).Save(ctx)
		return err
	})
	return detach(ctx, g, err)
}

// UpdateGroup changes a group's name or description.
func (s *Service) UpdateGroup(ctx context.Context, id pulid.ID, in ent.UpdateUserGroupInput) (*ent.UserGroup, *ent.Job, error) {
	var (
		g   *ent.UserGroup
		job *ent.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		before, err := c.UserGroup.Query().Where(usergroup.ID(id)).ForUpdate().Only(ctx)
		if err != nil {
			return notFound(err, "id", "user group", id)
		}
		if g, err = c.UserGroup.UpdateOneID(id).SetInput(in).Save(ctx); err != nil {
			return notFound(err, "id", "user group", id)
		}
		if g.Name == before.Name && g.Description == before.Description {
			return nil
		}
		// G3: renames and description changes reach the managed remote groups.
		targets, err := groupsync.Targets(ctx, c, g.OrganizationID, []pulid.ID{id}, "")
		if err != nil {
			return err
		}
		job, err = jobs.Start(ctx, c, g.OrganizationID, jobs.JobGroupChange, "", targets)
		return err
	})
	g, err = detach(ctx, g, err)
	return g, detachJob(ctx, job), err
}

// DeleteGroup deletes a group for good (U3); its members stay, its bindings go
// with it. Members it connected to an integration are reconciled by one job
// (X4 when nothing else connects them); targets are computed before deletion.
func (s *Service) DeleteGroup(ctx context.Context, id pulid.ID) (*ent.Job, error) {
	var job *ent.Job
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		g, err := c.UserGroup.Query().Where(usergroup.ID(id)).ForUpdate().Only(ctx)
		if err != nil {
			return notFound(err, "id", "user group", id)
		}
		targets, err := connect.GroupMemberTargets(ctx, c, []pulid.ID{id}, "")
		if err != nil {
			return err
		}
		// G4: the remote groups stay as they are and are no longer managed;
		// the targets carry the link ids, which outlive the group.
		groupTargets, err := groupsync.Targets(ctx, c, g.OrganizationID, []pulid.ID{id}, "")
		if err != nil {
			return err
		}
		targets = append(targets, groupTargets...)
		if err := c.UserGroup.DeleteOneID(id).Exec(ctx); err != nil {
			return notFound(err, "id", "user group", id)
		}
		// Losing the group may hand its members to another integration (I4).
		if targets, err = connect.Spread(ctx, c, targets); err != nil {
			return err
		}
		job, err = jobs.Start(ctx, c, g.OrganizationID, jobs.JobGroupDelete, "", targets)
		return err
	})
	if err != nil {
		return nil, err
	}
	return detachJob(ctx, job), nil
}

// AddGroupMembers makes users members of a group. Users already members are
// skipped, so repeating a call changes nothing. Every id must be a user of the
// caller's organization, otherwise nothing is added. If the group is bound to
// integrations, one job reconciles the added users there (B1).
func (s *Service) AddGroupMembers(ctx context.Context, groupID pulid.ID, userIDs []pulid.ID) (*ent.UserGroup, *ent.Job, error) {
	var (
		g   *ent.UserGroup
		job *ent.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		g, userIDs, err = loadMembership(ctx, c, groupID, userIDs)
		if err != nil {
			return err
		}
		existing, err := g.QueryMembers().Where(user.IDIn(userIDs...)).IDs(ctx)
		if err != nil {
			return fmt.Errorf("directory: reading members: %w", err)
		}
		isMember := make(map[pulid.ID]bool, len(existing))
		for _, id := range existing {
			isMember[id] = true
		}
		var add []pulid.ID
		for _, id := range userIDs {
			if !isMember[id] {
				add = append(add, id)
			}
		}
		if len(add) == 0 {
			return nil
		}
		if g, err = g.Update().AddMemberIDs(add...).Save(ctx); err != nil {
			return err
		}
		job, err = startMembershipJob(ctx, c, g, add)
		return err
	})
	g, err = detach(ctx, g, err)
	return g, detachJob(ctx, job), err
}

// RemoveGroupMembers removes users from a group. Ids that are not members are
// ignored; every id must still be a user of the caller's organization. If the
// group is bound to integrations, one job reconciles the removed members there
// (X2/X4 when nothing else connects them).
func (s *Service) RemoveGroupMembers(ctx context.Context, groupID pulid.ID, userIDs []pulid.ID) (*ent.UserGroup, *ent.Job, error) {
	var (
		g   *ent.UserGroup
		job *ent.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		g, userIDs, err = loadMembership(ctx, c, groupID, userIDs)
		if err != nil || len(userIDs) == 0 {
			return err
		}
		removed, err := g.QueryMembers().Where(user.IDIn(userIDs...)).IDs(ctx)
		if err != nil || len(removed) == 0 {
			return err
		}
		if g, err = g.Update().RemoveMemberIDs(removed...).Save(ctx); err != nil {
			return err
		}
		job, err = startMembershipJob(ctx, c, g, removed)
		return err
	})
	g, err = detach(ctx, g, err)
	return g, detachJob(ctx, job), err
}

// startMembershipJob reconciles users who joined or left the group in every
// authorized integration the group is bound to, and then in their other
// integrations; group bound nowhere: no job.
func startMembershipJob(ctx context.Context, c *ent.Client, g *ent.UserGroup, userIDs []pulid.ID) (*ent.Job, error) {
	targets, err := connect.MembershipTargets(ctx, c, g.ID, userIDs)
	if err != nil {
		return nil, err
	}
	// And in the members' other integrations: joining or leaving may move
	// which one owns them (I4).
	if targets, err = connect.Spread(ctx, c, targets); err != nil {
		return nil, err
	}
	// G3: the managed remote groups follow (members already provisioned are
	// added now; the others once their user links exist).
	groupTargets, err := groupsync.Targets(ctx, c, g.OrganizationID, []pulid.ID{g.ID}, "")
	if err != nil {
		return nil, err
	}
	targets = append(targets, groupTargets...)
	return jobs.Start(ctx, c, g.OrganizationID, jobs.JobGroupMembers, "", targets)
}

// loadMembership loads the group (locked, so concurrent membership changes of
// one group serialise) and checks that every user id is visible to the caller.
// The privacy policy hides other organizations' users, so an id of another
// organization is reported exactly like one that does not exist.
func loadMembership(ctx context.Context, c *ent.Client, groupID pulid.ID, userIDs []pulid.ID) (*ent.UserGroup, []pulid.ID, error) {
	ids, err := UniqueIDs("userIDs", userIDs)
	if err != nil {
		return nil, nil, err
	}
	g, err := c.UserGroup.Query().Where(usergroup.ID(groupID)).ForUpdate().Only(ctx)
	if err != nil {
		return nil, nil, notFound(err, "groupID", "user group", groupID)
	}
	if len(ids) == 0 {
		return g, ids, nil
	}
	found, err := c.User.Query().Where(user.IDIn(ids...), user.OrganizationID(g.OrganizationID)).IDs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("directory: reading users: %w", err)
	}
	if len(found) != len(ids) {
		ok := make(map[pulid.ID]bool, len(found))
		for _, id := range found {
			ok[id] = true
		}
		for _, id := range ids {
			if !ok[id] {
				return nil, nil, gqlerr.NotFoundf("userIDs", "user %s not found", id)
			}
		}
	}
	return g, ids, nil
}

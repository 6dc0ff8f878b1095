package directory

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/gqlerr"
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
func (s *Service) UpdateGroup(ctx context.Context, id pulid.ID, in ent.UpdateUserGroupInput) (*ent.UserGroup, error) {
	var g *ent.UserGroup
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		g, err = c.UserGroup.UpdateOneID(id).SetInput(in).Save(ctx)
		return notFound(err, "id", "user group", id)
	})
	return detach(ctx, g, err)
}

// DeleteGroup deletes a group for good (U3); its members stay.
func (s *Service) DeleteGroup(ctx context.Context, id pulid.ID) error {
	return s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		return notFound(c.UserGroup.DeleteOneID(id).Exec(ctx), "id", "user group", id)
	})
}

// AddGroupMembers makes users members of a group. Users already members are
// skipped, so repeating a call changes nothing. Every id must be a user of the
// caller's organization, otherwise nothing is added.
func (s *Service) AddGroupMembers(ctx context.Context, groupID pulid.ID, userIDs []pulid.ID) (*ent.UserGroup, error) {
	var g *ent.UserGroup
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
		g, err = g.Update().AddMemberIDs(add...).Save(ctx)
		return err
	})
	return detach(ctx, g, err)
}

// RemoveGroupMembers removes users from a group. Ids that are not members are
// ignored; every id must still be a user of the caller's organization.
func (s *Service) RemoveGroupMembers(ctx context.Context, groupID pulid.ID, userIDs []pulid.ID) (*ent.UserGroup, error) {
	var g *ent.UserGroup
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		g, userIDs, err = loadMembership(ctx, c, groupID, userIDs)
		if err != nil || len(userIDs) == 0 {
			return err
		}
		g, err = g.Update().RemoveMemberIDs(userIDs...).Save(ctx)
		return err
	})
	return detach(ctx, g, err)
}

// loadMembership loads the group (locked, so concurrent membership changes of
// one group serialise) and checks that every user id is visible to the caller.
// The privacy policy hides other organizations' users, so an id of another
// organization is reported exactly like one that does not exist.
func loadMembership(ctx context.Context, c *ent.Client, groupID pulid.ID, userIDs []pulid.ID) (*ent.UserGroup, []pulid.ID, error) {
	ids, err := dedupe("userIDs", userIDs)
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

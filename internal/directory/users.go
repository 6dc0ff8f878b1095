package directory

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/organization"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth/viewer"
	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/gqlerr"
)

// CreateUser creates a user (STAGED unless the input says otherwise).
// Attribute syntax is checked by the schema validators (rules package); the
// database's unique indexes decide username and email conflicts, so two
// concurrent creates cannot both win.
func (s *Service) CreateUser(ctx context.Context, in ent.CreateUserInput) (*ent.User, error) {
	var u *ent.User
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		if err := checkUserLimit(ctx, c); err != nil {
			return err
		}
		var err error
		u, err = c.User.Create().SetInput(in).Save(ctx)
		return err
	})
	return detach(ctx, u, err)
}

// checkUserLimit refuses a new user when the organization's seat limit (O3)
// is reached. Only with a limit is the organization row locked, so concurrent
// creates count in turn; without one creates do not serialise.
func checkUserLimit(ctx context.Context, c *ent.Client) error {
	v, ok := viewer.FromContext(ctx)
	if !ok {
		return nil // system context: imports check the limit per item themselves
	}
	org, err := c.Organization.Get(ctx, v.OrgID)
	if err != nil {
		return fmt.Errorf("directory: loading organization: %w", err)
	}
	if org.UserLimit == nil {
		return nil
	}
	org, err = c.Organization.Query().Where(organization.ID(v.OrgID)).ForUpdate().Only(ctx)
	if err != nil {
		return fmt.Errorf("directory: locking organization: %w", err)
	}
	if org.UserLimit == nil {
		return nil
	}
	n, err := c.User.Query().Count(ctx)
	if err != nil {
		return fmt.Errorf("directory: counting users: %w", err)
	}
	if n >= *org.UserLimit {
		return gqlerr.Newf(gqlerr.Conflict, "", "the organization's user limit of %d is reached", *org.UserLimit)
	}
	return nil
}

// UpdateUser changes a user's attributes (not its state: see SuspendUser and
// ActivateUser).
func (s *Service) UpdateUser(ctx context.Context, id pulid.ID, in ent.UpdateUserInput) (*ent.User, error) {
	var u *ent.User
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		u, err = c.User.UpdateOneID(id).SetInput(in).Save(ctx)
		return notFound(err, "id", "user", id)
	})
	return detach(ctx, u, err)
}

// DeleteUser deletes a user for good (U3); its group memberships go with it.
func (s *Service) DeleteUser(ctx context.Context, id pulid.ID) error {
	return s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		return notFound(c.User.DeleteOneID(id).Exec(ctx), "id", "user", id)
	})
}

// SuspendUser moves a user to SUSPENDED; see SetUserState.
func (s *Service) SuspendUser(ctx context.Context, id pulid.ID) (*ent.User, error) {
	return s.SetUserState(ctx, id, user.StateSUSPENDED)
}

// ActivateUser moves a user to ACTIVE; see SetUserState.
func (s *Service) ActivateUser(ctx context.Context, id pulid.ID) (*ent.User, error) {
	return s.SetUserState(ctx, id, user.StateACTIVE)
}

// SetUserState moves a user to state if rules.CanTransition allows it. Asking
// for the state the user is already in is a no-op that succeeds. The row is
// locked while deciding, so concurrent transitions apply one after the other.
func (s *Service) SetUserState(ctx context.Context, id pulid.ID, state user.State) (*ent.User, error) {
	var u *ent.User
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		cur, err := c.User.Query().Where(user.ID(id)).ForUpdate().Only(ctx)
		if err != nil {
			return notFound(err, "id", "user", id)
		}
		if cur.State == state {
			u = cur
			return nil
		}
		if !rules.CanTransition(string(cur.State), string(state)) {
			return gqlerr.BadInput("id", "user %s cannot go from %s to %s", id, cur.State, state)
		}
		u, err = cur.Update().SetState(state).Save(ctx)
		return err
	})
	return detach(ctx, u, err)
}

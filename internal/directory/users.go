package directory

import (
	"context"
	"fmt"

	"entgo.io/ent/dialect/sql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/organization"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth/viewer"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/jobs"
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
// ActivateUser). When an attribute that can reach Microsoft 365 changed (P4),
// one job reconciles the user in every integration it is connected to or
// linked in, committed with the change; otherwise the job is nil.
func (s *Service) UpdateUser(ctx context.Context, id pulid.ID, in ent.UpdateUserInput) (*ent.User, *ent.Job, error) {
	var (
		u   *ent.User
		job *ent.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		cur, err := lockUserNoKey(ctx, c, id)
		if err != nil {
			return notFound(err, "id", "user", id)
		}
		if u, err = cur.Update().SetInput(in).Save(ctx); err != nil {
			return err
		}
		if syncedAttributes(cur) == syncedAttributes(u) {
			return nil
		}
		job, err = startUserJob(ctx, c, u.OrganizationID, jobs.JobUserChange, id)
		return err
	})
	u, err = detach(ctx, u, err)
	return u, detachJob(ctx, job), err
}

// syncedAttributes lists what a user change can send to Microsoft 365: every
// attribute a mapping table may export, and the emails the UPN comes from
// (D1). Username and password data are not among them.
func syncedAttributes(u *ent.User) [21]string {
	return [...]string{
		u.Email, u.AlternateEmail, u.FirstName, u.LastName, u.DisplayName, u.JobTitle,
		u.Department, u.CompanyName, u.EmployeeID, u.EmployeeType, u.CostCenter,
		u.BusinessPhone, u.MobilePhone, u.OfficeLocation, u.StreetAddress, u.City,
		u.AddressState, u.PostalCode, u.Country, u.UsageLocation, string(u.State),
	}
}

// startUserJob starts one job reconciling the user wherever it is connected
// or linked (connect.UserTargets); none: no job.
func startUserJob(ctx context.Context, c *ent.Client, orgID pulid.ID, kind string, userID pulid.ID) (*ent.Job, error) {
	targets, err := connect.UserTargets(ctx, c, []pulid.ID{userID})
	if err != nil {
		return nil, err
	}
	return jobs.Start(ctx, c, orgID, kind, "", targets)
}

// DeleteUser deletes a user for good (U3); its group memberships and bindings
// go with it. Its links stay, with the user nulled, so the job started here
// can still disable the remote accounts (X3); the targets name the links and
// are computed before the row goes. The row lock (FOR UPDATE) waits for a
// reconcile of the user in flight (it holds the row FOR KEY SHARE), so a link
// that reconcile is creating is committed first and among the targets.
func (s *Service) DeleteUser(ctx context.Context, id pulid.ID) (*ent.Job, error) {
	var job *ent.Job
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		u, err := c.User.Query().Where(user.ID(id)).ForUpdate().Only(ctx)
		if err != nil {
			return notFound(err, "id", "user", id)
		}
		targets, err := connect.DeletionTargets(ctx, c, []pulid.ID{id})
		if err != nil {
			return err
		}
		// G3: the user leaves the managed remote groups it was a member of.
		groupTargets, err := groupsync.UserGroupTargets(ctx, c, u.OrganizationID, []pulid.ID{id})
		if err != nil {
			return err
		}
		targets = append(targets, groupTargets...)
		if err := c.User.DeleteOneID(id).Exec(ctx); err != nil {
			return notFound(err, "id", "user", id)
		}
		job, err = jobs.Start(ctx, c, u.OrganizationID, jobs.JobUserDelete, "", targets)
		return err
	})
	if err != nil {
		return nil, err
	}
	return detachJob(ctx, job), nil
}

// lockUserNoKey locks a user row for a change that keeps its key: FOR NO KEY
// UPDATE conflicts with other changes and with deletion, but not with the FOR
// KEY SHARE a reconcile holds across its Graph calls (provision), so
// attribute and state changes never wait on Microsoft Graph. DeleteUser locks
// FOR UPDATE and so waits for in-flight reconciles to record their links.
func lockUserNoKey(ctx context.Context, c *ent.Client, id pulid.ID) (*ent.User, error) {
	return c.User.Query().Where(user.ID(id)).
		Modify(func(s *sql.Selector) { s.For(sql.LockNoKeyUpdate) }).Only(ctx)
}

// SuspendUser moves a user to SUSPENDED; see SetUserState.
func (s *Service) SuspendUser(ctx context.Context, id pulid.ID) (*ent.User, *ent.Job, error) {
	return s.SetUserState(ctx, id, user.StateSUSPENDED)
}

// ActivateUser moves a user to ACTIVE; see SetUserState.
func (s *Service) ActivateUser(ctx context.Context, id pulid.ID) (*ent.User, *ent.Job, error) {
	return s.SetUserState(ctx, id, user.StateACTIVE)
}

// SetUserState moves a user to state if rules.CanTransition allows it. Asking
// for the state the user is already in is a no-op that succeeds. The row is
// locked while deciding, so concurrent transitions apply one after the other.
// A real transition starts one job reconciling the user wherever it is
// connected or linked: suspension disables the remote accounts (X1),
// activation enables them again.
func (s *Service) SetUserState(ctx context.Context, id pulid.ID, state user.State) (*ent.User, *ent.Job, error) {
	var (
		u   *ent.User
		job *ent.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		cur, err := lockUserNoKey(ctx, c, id)
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
		if u, err = cur.Update().SetState(state).Save(ctx); err != nil {
			return err
		}
		kind := jobs.JobUserActivate
		if state == user.StateSUSPENDED {
			kind = jobs.JobUserSuspend
		}
		job, err = startUserJob(ctx, c, u.OrganizationID, kind, id)
		return err
	})
	u, err = detach(ctx, u, err)
	return u, detachJob(ctx, job), err
}

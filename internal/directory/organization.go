package directory

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/organization"
	"github.com/dirsync/dirsync/internal/auth/viewer"
	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/gqlerr"
)

// UpdateOrganization changes the settings (O3) of the viewer's organization.
func (s *Service) UpdateOrganization(ctx context.Context, in ent.UpdateOrganizationInput) (*ent.Organization, error) {
	v, ok := viewer.FromContext(ctx)
	if !ok {
		return nil, gqlerr.Newf(gqlerr.Unauthenticated, "", "authentication required")
	}
	var o *ent.Organization
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		if o, err = c.Organization.UpdateOneID(v.OrgID).SetInput(in).Save(ctx); err != nil {
			return err
		}
		if in.PasswordMaxAgeDays != nil || in.ClearPasswordMaxAgeDays {
			// X5: expiry follows the maximum age in force; the password sweep
			// then suspends or re-enables whoever that changed.
			_, err = c.ExecContext(ctx, `UPDATE users SET password_expires_at = CASE WHEN $2::int IS NULL THEN NULL
				ELSE password_set_at + make_interval(days => $2::int) END
				WHERE organization_id = $1 AND password_set_at IS NOT NULL`, v.OrgID, o.PasswordMaxAgeDays)
		}
		return err
	})
	return detach(ctx, o, err)
}

// CreateOrganization creates an organization. Only the system context may
// (CLI `org create`, `dev`); the privacy policy refuses everyone else. The
// name is stored trimmed; a name already taken is CONFLICT naming it.
func (s *Service) CreateOrganization(ctx context.Context, name string) (*ent.Organization, error) {
	var o *ent.Organization
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		var err error
		o, err = c.Organization.Create().SetName(name).Save(ctx)
		if e := gqlerr.Translate(err); e != nil && e.Code == gqlerr.Conflict {
			return &gqlerr.Error{Code: gqlerr.Conflict, Field: "name",
				Message: fmt.Sprintf("an organization named %q already exists", rules.Trim(name))}
		}
		return err
	})
	return detach(ctx, o, err)
}

// OrganizationByName returns the organization with that exact name, as the
// viewer may see it (the system context sees all).
func (s *Service) OrganizationByName(ctx context.Context, name string) (*ent.Organization, error) {
	name = rules.Trim(name)
	o, err := s.client.Organization.Query().Where(organization.Name(name)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, gqlerr.NotFoundf("name", "organization %q not found", name)
	}
	return o, err
}

package schema

import (
	"context"
	"fmt"

	"entgo.io/ent"
	"entgo.io/ent/entql"

	"github.com/dirsync/dirsync/ent/privacy"
	"github.com/dirsync/dirsync/internal/auth/viewer"
)

// Privacy is default-deny: a context without a viewer reads and writes nothing,
// except the system context (viewer.SystemContext), which every policy allows
// before any rule runs.

// Policy implements ent.Mixin: every organization-owned row is visible and
// writable only within the viewer's organization; another organization's row
// behaves as absent (not found), never as forbidden, so ids do not leak.
func (OrgMixin) Policy() ent.Policy {
	return privacy.Policy{
		Query:    privacy.QueryPolicy{portalSelfOnly(), filterByOrg("organization_id")},
		Mutation: privacy.MutationPolicy{denyReadOnly(), filterByOrg("organization_id")},
	}
}

// Policy implements ent.Schema: a viewer sees its own organization only and an
// admin may update it; creating and deleting organizations is for the system.
func (Organization) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{denyPortal(), filterByOrg("id")},
		Mutation: privacy.MutationPolicy{
			denyReadOnly(),
			privacy.OnMutationOperation(allowOwnOrg(), ent.OpUpdateOne),
			privacy.AlwaysDenyRule(),
		},
	}
}

// portalSelfOnly lets a portal session (O2) see exactly one row: its own
// user. Every organization-owned entity has a prefixed id (US…, JB…, IN…), so
// "id = the session's user id" matches that user row and nothing of any other
// entity. Writes are denied by denyReadOnly (a session cannot write).
func portalSelfOnly() privacy.QueryRule {
	return privacy.FilterFunc(func(ctx context.Context, f privacy.Filter) error {
		v, ok := viewer.FromContext(ctx)
		if !ok || !v.IsPortal() {
			return privacy.Skip
		}
		if v.UserID == "" {
			return fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrPortal)
		}
		f.Where(entql.FieldEQ("id", string(v.UserID)))
		return privacy.Skip
	})
}

// denyPortal refuses a portal session outright.
func denyPortal() privacy.QueryRule {
	return privacy.QueryRuleFunc(func(ctx context.Context, _ ent.Query) error {
		if v, ok := viewer.FromContext(ctx); ok && v.IsPortal() {
			return fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrPortal)
		}
		return privacy.Skip
	})
}

// filterByOrg restricts queries and update/delete mutations to rows whose
// column equals the viewer's organization.
func filterByOrg(column string) privacy.QueryMutationRule {
	return privacy.FilterFunc(func(ctx context.Context, f privacy.Filter) error {
		v, ok := viewer.FromContext(ctx)
		if !ok {
			return fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrNoViewer)
		}
		f.Where(entql.FieldEQ(column, string(v.OrgID)))
		return privacy.Skip
	})
}

// allowOwnOrg allows a write restricted to the viewer's own organization row.
func allowOwnOrg() privacy.MutationRule {
	return privacy.FilterFunc(func(ctx context.Context, f privacy.Filter) error {
		v, ok := viewer.FromContext(ctx)
		if !ok {
			return fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrNoViewer)
		}
		f.Where(entql.FieldEQ("id", string(v.OrgID)))
		return privacy.Allow
	})
}

// denyReadOnly refuses every write of a viewer that may not write.
func denyReadOnly() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, _ ent.Mutation) error {
		v, ok := viewer.FromContext(ctx)
		if !ok {
			return fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrNoViewer)
		}
		if !v.CanWrite() {
			return fmt.Errorf("%w: %w", privacy.Deny, viewer.ErrReadOnly)
		}
		return privacy.Skip
	})
}

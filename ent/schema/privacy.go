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
		Query:    privacy.QueryPolicy{filterByOrg("organization_id")},
		Mutation: privacy.MutationPolicy{denyReadOnly(), filterByOrg("organization_id")},
	}
}

// Policy implements ent.Schema: a viewer sees its own organization only and an
// admin may update it; creating and deleting organizations is for the system.
func (Organization) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{filterByOrg("id")},
		Mutation: privacy.MutationPolicy{
			denyReadOnly(),
			privacy.OnMutationOperation(allowOwnOrg(), ent.OpUpdateOne),
			privacy.AlwaysDenyRule(),
		},
	}
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

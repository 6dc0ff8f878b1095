package schema

import (
	"context"
	"errors"
	"fmt"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth/viewer"
)

// TimeMixin records creation and last update times.
type TimeMixin struct{ mixin.Schema }

// Fields implements ent.Mixin.
func (TimeMixin) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").
			Default(time.Now).
			Immutable().
			Annotations(
				entgql.OrderField("CREATED_AT"),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		field.Time("updated_at").
			Default(time.Now).
			UpdateDefault(time.Now).
			Annotations(
				entgql.OrderField("UPDATED_AT"),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
	}
}

// OrgMixin makes an entity belong to exactly one organization (O1). It is the
// only place tenancy is declared: the organization_id column and edge, a hook
// that takes the organization from the viewer on create, and (privacy.go) the
// policy that filters every query and mutation by the viewer's organization.
// Every organization-owned entity, present and future, embeds it.
type OrgMixin struct{ mixin.Schema }

// Fields implements ent.Mixin.
func (OrgMixin) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").
			GoType(pulid.ID("")).
			Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

// Edges implements ent.Mixin.
func (OrgMixin) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("organization", Organization.Type).
			Field("organization_id").
			Unique().
			Required().
			Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

// errOtherOrg is returned when a write names an organization other than the viewer's.
var errOtherOrg = errors.New("organization does not match the viewer")

// orgMutation is implemented by the mutation of every entity using OrgMixin.
type orgMutation interface {
	OrganizationID() (pulid.ID, bool)
	SetOrganizationID(pulid.ID)
}

// Hooks implements ent.Mixin.
func (OrgMixin) Hooks() []ent.Hook {
	return []ent.Hook{setOrganizationHook}
}

// setOrganizationHook fills organization_id from the viewer on create and
// refuses a create for another organization. The system context must name the
// organization explicitly; nothing else may.
func setOrganizationHook(next ent.Mutator) ent.Mutator {
	return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
		if !m.Op().Is(ent.OpCreate) {
			return next.Mutate(ctx, m)
		}
		om, ok := m.(orgMutation)
		if !ok {
			return nil, fmt.Errorf("schema: %T does not carry an organization", m)
		}
		set, hasSet := om.OrganizationID()
		v, hasViewer := viewer.FromContext(ctx)
		switch {
		case hasViewer && !hasSet:
			om.SetOrganizationID(v.OrgID)
		case hasViewer && set != v.OrgID:
			return nil, fmt.Errorf("schema: %s of another organization: %w", m.Type(), errOtherOrg)
		case !hasViewer && !hasSet:
			return nil, fmt.Errorf("schema: %s created without an organization", m.Type())
		}
		return next.Mutate(ctx, m)
	})
}

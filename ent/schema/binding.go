package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/dirsync/dirsync/ent/schema/pulid"
)

// UserBinding connects one user directly to one integration (B1).
type UserBinding struct{ ent.Schema }

// Mixin implements ent.Schema.
func (UserBinding) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("UB"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (UserBinding) Fields() []ent.Field {
	return []ent.Field{
		field.String("integration_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
		field.String("user_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
	}
}

// Edges implements ent.Schema.
func (UserBinding) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("integration", Integration.Type).Ref("user_bindings").Field("integration_id").
			Unique().Required().Immutable(),
		edge.From("user", User.Type).Ref("bindings").Field("user_id").
			Unique().Required().Immutable(),
	}
}

// Indexes implements ent.Schema.
func (UserBinding) Indexes() []ent.Index {
	return []ent.Index{index.Fields("integration_id", "user_id").Unique().StorageKey(UniqueUserBinding), index.Fields("user_id")}
}

// Annotations implements ent.Schema.
func (UserBinding) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll), entsql.Annotation{Table: "user_bindings"}}
}

// GroupBinding connects a user group, and so its members, to one integration
// (B1–B2). With group management on, the group is also a remote security group,
// whose link is a RemoteLink of kind GROUP.
type GroupBinding struct{ ent.Schema }

// Mixin implements ent.Schema.
func (GroupBinding) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("GB"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (GroupBinding) Fields() []ent.Field {
	return []ent.Field{
		field.String("integration_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
		field.String("group_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
	}
}

// Edges implements ent.Schema.
func (GroupBinding) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("integration", Integration.Type).Ref("group_bindings").Field("integration_id").
			Unique().Required().Immutable(),
		edge.From("group", UserGroup.Type).Ref("bindings").Field("group_id").
			Unique().Required().Immutable(),
	}
}

// Indexes implements ent.Schema.
func (GroupBinding) Indexes() []ent.Index {
	return []ent.Index{index.Fields("integration_id", "group_id").Unique().StorageKey(UniqueGroupBinding), index.Fields("group_id")}
}

// Annotations implements ent.Schema.
func (GroupBinding) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll), entsql.Annotation{Table: "group_bindings"}}
}

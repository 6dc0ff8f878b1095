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
	"github.com/dirsync/dirsync/internal/directory/rules"
)

// UserGroup is a named set of users (U2).
type UserGroup struct{ ent.Schema }

// Mixin implements ent.Schema.
func (UserGroup) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("UG"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (UserGroup) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").
			Validate(rules.Text(rules.MaxGroupName, true)).
			Annotations(entgql.OrderField("NAME")),
		field.String("name_folded").
			Annotations(hidden),
		field.String("description").
			Optional().
			Validate(rules.MultilineText(rules.MaxDescription)),
	}
}

// Edges implements ent.Schema.
func (UserGroup) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("members", User.Type).
			Annotations(
				entgql.RelayConnection(),
				// Membership changes go through addGroupMembers/removeGroupMembers,
				// which check that every id belongs to the caller's organization.
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		edge.To("bindings", GroupBinding.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		// Per-integration remote security group links (G1–G4). SET NULL: a
		// deleted group's link stays as history of the remote group left behind.
		edge.To("links", RemoteLink.Type).
			Annotations(entsql.OnDelete(entsql.SetNull),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput)),
	}
}

// Indexes implements ent.Schema.
func (UserGroup) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization_id", "name_folded").Unique().StorageKey(UniqueGroupName),
	}
}

// Hooks implements ent.Schema.
func (UserGroup) Hooks() []ent.Hook {
	// The name is trimmed before it is folded, so "Staff " is "Staff"; the
	// description is free text and keeps its layout.
	return []ent.Hook{normalizeHook(trimmed, "name"), foldHook("name", "name_folded")}
}

// Annotations implements ent.Schema.
func (UserGroup) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entgql.QueryField(),
		entgql.Mutations(entgql.MutationCreate(), entgql.MutationUpdate()),
		entsql.Annotation{Table: "user_groups"},
	}
}

package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/directory/rules"
)

// APIKey authenticates callers of the API for one organization (O2). Only the
// SHA-256 of the key is stored; the key itself is shown once at creation.
type APIKey struct{ ent.Schema }

// Mixin implements ent.Schema.
func (APIKey) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("AK"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (APIKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").
			Validate(rules.Text(rules.MaxAPIKeyName, true)),
		field.Enum("role").Values("ADMIN", "READONLY"),
		field.Bytes("key_hash").
			Comment("SHA-256 of the key.").
			Sensitive().
			Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)).
			Unique().
			MinLen(32).MaxLen(32),
		field.String("key_prefix").
			Comment("The first characters of the key, to recognise it in lists.").
			Immutable().
			MaxLen(16),
		field.Time("last_used_at").Optional().Nillable().
			Comment("Updated at most once a minute per key, so reads do not become writes."),
		field.Time("expires_at").Optional().Nillable().Immutable().
			Comment("The key is refused from this time on; null = never expires."),
		field.Time("revoked_at").Optional().Nillable().
			Comment("Set when the key is revoked; the row stays so lists show who had access."),
	}
}

// Indexes implements ent.Schema.
func (APIKey) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id")}
}

// Annotations implements ent.Schema.
func (APIKey) Annotations() []schema.Annotation {
	// Admins manage keys in GraphQL (schema/apikeys.graphqls); the CLI
	// creates the first one. No generated mutations: the secret is made here.
	return []schema.Annotation{entgql.RelayConnection(), entgql.Skip(entgql.SkipWhereInput)}
}

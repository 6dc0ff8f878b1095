package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/directory/rules"
)

// Organization is a tenant of the directory (O1) with its settings (O3).
type Organization struct{ ent.Schema }

// Mixin implements ent.Schema.
func (Organization) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("OR"), TimeMixin{}}
}

// Fields implements ent.Schema.
func (Organization) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").
			Unique().
			Validate(rules.Text(rules.MaxOrgName, true)),
		field.Enum("default_import_state").
			Comment("State of users created by an import from a directory integration (O3).").
			Values("STAGED", "ACTIVE").
			Default("STAGED"),
		field.Int("user_limit").
			Comment("Seat licence: the most users the organization may hold; null means unlimited.").
			Optional().
			Nillable().
			Validate(rules.UserLimit),
		field.Bool("password_takeover").
			Comment("Push the password to integrations when a user logs in to the portal (O3, W1).").
			Default(false),
		field.Int("password_max_age_days").
			Comment("Passwords older than this many days expire (X5); null means they never expire.").
			Optional().
			Nillable().
			Range(1, 3650),
		field.Int("lockout_threshold").
			Comment("Failed portal logins in a row that lock the account (X6).").
			Default(10).
			Range(1, 1000),
		field.Int("lockout_minutes").
			Comment("How long a lock-out lasts; 0 means until an administrator unlocks the user (X6).").
			Default(15).
			Range(0, 525600),
	}
}

// Hooks implements ent.Schema.
func (Organization) Hooks() []ent.Hook {
	return []ent.Hook{normalizeHook(trimmed, "name")}
}

// Annotations implements ent.Schema.
func (Organization) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Mutations(entgql.MutationUpdate())}
}

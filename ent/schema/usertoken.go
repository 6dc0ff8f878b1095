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

// UserToken is a bearer secret an end user holds (O2): a portal session, an
// activation token or a password-reset token. Only the SHA-256 of the token is
// stored; the token itself is shown once. Never exposed through GraphQL.
type UserToken struct{ ent.Schema }

// Mixin implements ent.Schema.
func (UserToken) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("UT"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (UserToken) Fields() []ent.Field {
	return []ent.Field{
		field.String("user_id").GoType(pulid.ID("")).Immutable(),
		field.Enum("kind").Values("SESSION", "ACTIVATION", "RESET").Immutable(),
		field.Bytes("token_hash").Sensitive().Immutable(),
		field.Time("expires_at").Immutable(),
	}
}

// Edges implements ent.Schema.
func (UserToken) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("tokens").Field("user_id").Unique().Required().Immutable(),
	}
}

// Indexes implements ent.Schema.
func (UserToken) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("token_hash").Unique().StorageKey(UniqueUserTokenHash),
		index.Fields("user_id", "kind"),
		index.Fields("expires_at"),
	}
}

// Annotations implements ent.Schema.
func (UserToken) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll), entsql.Annotation{Table: "user_tokens"}}
}

// UniqueUserTokenHash is the unique index on the token hash.
const UniqueUserTokenHash = "user_tokens_token_hash_key"

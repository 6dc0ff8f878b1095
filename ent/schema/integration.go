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
	"github.com/dirsync/dirsync/internal/mapping"
)

// Integration connects the organization to one Entra tenant through Microsoft
// Graph (I1–I8). It changes only through the integrations package (authorize,
// de-authorize, settings), never through generated mutation inputs: the client
// secret must be sealed and the domains checked against the tenant.
type Integration struct{ ent.Schema }

// Mixin implements ent.Schema.
func (Integration) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("IN"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (Integration) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").MaxLen(100).NotEmpty().Annotations(entgql.OrderField("NAME")),
		field.String("name_folded").MaxLen(400).Annotations(hidden),
		field.String("tenant_id").MaxLen(100).NotEmpty(),
		field.String("client_id").MaxLen(100).NotEmpty(),
		field.String("client_secret_sealed").
			Comment("AES-256-GCM sealed client secret (internal/secrets), bound to this row's id.").
			Sensitive().
			Annotations(hidden),
		field.String("graph_base_url").Optional().MaxLen(300),
		field.String("login_base_url").Optional().MaxLen(300),
		field.Enum("status").
			Values("UNAUTHORIZED", "AUTHORIZED").
			Default("UNAUTHORIZED").
			Annotations(entgql.OrderField("STATUS")),
		field.Time("authorized_at").Optional().Nillable(),
		field.String("last_error").Optional().MaxLen(2000),
		field.Strings("domains").Optional().Comment("Configured domains (D3/D4), lower-case."),
		field.String("default_domain").Optional().MaxLen(255),
		field.Strings("verified_domains").Optional().Comment("The tenant's verified domains, read at authorization (I2)."),
		field.Bool("tenant_password_expiry").
			Default(false).
			Comment("I7: some verified domain of the tenant expires passwords."),
		field.Enum("email_source").Values("COMPANY", "ALTERNATE").Default("COMPANY"),
		field.Bool("group_management").Default(false),
		field.Bool("suspend_on_password_expiry").Default(false),
		field.Bool("suspend_on_lockout").Default(false),
		// Drift detection (docs/drift.md): what a periodic delta round does with
		// a remote edit of something we manage, and where the rounds resume.
		field.Enum("drift_action").Values("CORRECT", "REPORT").Default("CORRECT"),
		field.String("users_delta_link").Optional().Sensitive().Annotations(hidden).
			Comment("@odata.deltaLink of the last complete /users/delta round; empty: the next round is a full one."),
		field.String("groups_delta_link").Optional().Sensitive().Annotations(hidden).
			Comment("@odata.deltaLink of the last complete /groups/delta round."),
		field.Time("drift_checked_at").Optional().Nillable().
			Comment("When the last drift round completed."),
		field.JSON("attribute_mappings", mapping.Table{}).
			Annotations(entgql.Type("[AttributeMapping!]"), entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField)),
		// The mass-deprovision guard (internal/guard, docs/safety.md). NULL
		// threshold = the default (25 or 10 % of the linked users, whichever is
		// larger); deprovision_guard_off = disabled. GraphQL exposes both as
		// one nullable deprovisionThreshold (schema/safety.graphqls).
		field.Int("deprovision_threshold").Optional().Nillable().NonNegative().Annotations(hidden),
		field.Bool("deprovision_guard_off").Default(false).Annotations(hidden),
		// The app+tenant write budget (issue 12); unset takes Graph's documented
		// quota. Exposed through the hand-written Integration.writeBudget.
		field.Int("write_budget_size").Optional().Nillable().Positive().
			Comment("Writes the tenant's bucket holds (Graph: 3,000); nil: the default.").Annotations(hidden),
		field.Float("write_budget_refill_per_second").Optional().Nillable().Positive().
			Comment("Writes per second the bucket refills (Graph: 20); nil: the default.").Annotations(hidden),
	}
}

// Edges implements ent.Schema.
func (Integration) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("user_bindings", UserBinding.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("group_bindings", GroupBinding.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("links", RemoteLink.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.RelayConnection(),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput)),
	}
}

// Indexes implements ent.Schema.
func (Integration) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization_id", "name_folded").Unique().StorageKey(UniqueIntegrationName),
	}
}

// Hooks implements ent.Schema.
func (Integration) Hooks() []ent.Hook {
	return []ent.Hook{foldHook("name", "name_folded")}
}

// Annotations implements ent.Schema.
func (Integration) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entgql.QueryField(),
		entsql.Annotation{Table: "integrations"},
	}
}

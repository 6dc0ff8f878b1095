package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/dirsync/dirsync/ent/schema/pulid"
)

// DeprovisionBatch is the mass-deprovision guard's decision about the disables
// one job causes in one integration (internal/guard): how many it plans, and
// whether they may run (ADMITTED, APPROVED) or wait for an administrator
// (AWAITING_APPROVAL) or were dropped (CANCELLED). One row per (job,
// integration), written under a per-integration advisory lock, so the rolling
// window is counted in PostgreSQL and holds across workers. Never exposed.
type DeprovisionBatch struct{ ent.Schema }

// Mixin implements ent.Schema.
func (DeprovisionBatch) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("DB"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (DeprovisionBatch) Fields() []ent.Field {
	return []ent.Field{
		field.String("integration_id").GoType(pulid.ID("")).Immutable(),
		field.String("job_id").GoType(pulid.ID("")).Immutable(),
		field.Int("planned").NonNegative().Immutable().
			Comment("Disables the job plans in the integration when the guard first looked."),
		field.Int("threshold").NonNegative().Immutable().Comment("The threshold the decision used."),
		field.Int("window_planned").NonNegative().Immutable().
			Comment("Disables other admitted jobs of the integration planned in the rolling window before."),
		field.Enum("status").Values("ADMITTED", "AWAITING_APPROVAL", "APPROVED", "CANCELLED"),
		field.Time("decided_at").Optional().Nillable().Comment("When an administrator approved or cancelled."),
	}
}

// Indexes implements ent.Schema.
func (DeprovisionBatch) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("job_id", "integration_id").Unique(),
		index.Fields("integration_id", "created_at"),
	}
}

// Annotations implements ent.Schema.
func (DeprovisionBatch) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll), entsql.Annotation{Table: "deprovision_batches"}}
}

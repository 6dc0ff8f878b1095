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

// Job is the user-visible record of remote work a mutation caused (J1–J2): one
// item per (user, integration) it touches. Its status and counters are derived
// from the items by the jobs package only.
type Job struct{ ent.Schema }

// Mixin implements ent.Schema.
func (Job) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("JB"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (Job) Fields() []ent.Field {
	return []ent.Field{
		field.String("kind").MaxLen(64).Immutable().Annotations(entgql.OrderField("KIND")),
		// AWAITING_APPROVAL: the mass-deprovision guard holds some of the
		// job's disables until approveJob or cancelJob (internal/guard).
		field.Enum("status").Values("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "PARTIAL", "AWAITING_APPROVAL").
			Default("QUEUED").Annotations(entgql.OrderField("STATUS")),
		field.Int("total").Default(0).NonNegative(),
		field.Int("done").Default(0).NonNegative(),
		field.Int("failed").Default(0).NonNegative(),
		field.String("integration_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable(),
		field.Time("started_at").Optional().Nillable(),
		field.Time("finished_at").Optional().Nillable(),
		// RetryOfID names the job whose failed items this one re-runs (retryJob):
		// the original keeps its history, the retry carries the work.
		field.String("retry_of_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable(),
		field.String("checkpoint").Optional().Annotations(hidden).
			Comment("Where a resumable job (an import) continues: the next Graph page link; empty = from the start."),
	}
}

// Edges implements ent.Schema.
func (Job) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("items", JobItem.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.RelayConnection()),
	}
}

// Indexes implements ent.Schema.
func (Job) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id", "created_at")}
}

// Annotations implements ent.Schema.
func (Job) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entgql.QueryField(),
		entsql.Annotation{Table: "jobs"},
	}
}

// JobItem is one unit of a job: reconciling one user in one integration.
type JobItem struct{ ent.Schema }

// Mixin implements ent.Schema.
func (JobItem) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("JI"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (JobItem) Fields() []ent.Field {
	return []ent.Field{
		field.String("job_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
		field.String("user_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable(),
		field.String("link_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable(),
		field.String("integration_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
		field.String("group_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable().
			Comment("Set on items that reconcile a remote security group (G2–G4)."),
		// AWAITING_APPROVAL: a disable the mass-deprovision guard holds; only
		// approveJob (back to PENDING) or cancelJob (SUCCEEDED, SKIPPED) moves it.
		field.Enum("status").Values("PENDING", "SUCCEEDED", "FAILED", "AWAITING_APPROVAL").Default("PENDING").
			Annotations(entgql.OrderField("STATUS")),
		field.String("result").Optional().MaxLen(64).Comment("What the reconcile did: CREATED, TAKEN_OVER, UPDATED, DISABLED, ENABLED, UNCHANGED, OUT_OF_SCOPE…"),
		field.String("error_code").Optional().MaxLen(200),
		field.String("error_message").Optional().MaxLen(2000),
		field.String("detail").Optional().MaxLen(2000).
			Comment("What the item wants the reader to know beyond its result (e.g. remote members left alone)."),
		// Import items (M6) name the remote user they are about; the CSV is built from them.
		field.String("remote_id").Optional().MaxLen(64).Immutable(),
		field.String("user_principal_name").Optional().MaxLen(256).Immutable(),
		field.String("email").Optional().MaxLen(256).Immutable(),
		field.String("username").Optional().MaxLen(64).Immutable(),
		field.String("note").Optional().MaxLen(2000).Immutable().
			Comment("What the item did besides its result, e.g. the username an import had to suffix."),
	}
}

// Edges implements ent.Schema.
func (JobItem) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("job", Job.Type).Ref("items").Field("job_id").Unique().Required().Immutable(),
	}
}

// Indexes implements ent.Schema.
func (JobItem) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("job_id", "status"),
		// The CSV streams a job's items in id order; one row per remote user and job.
		index.Fields("job_id", "id"),
		index.Fields("job_id", "remote_id").Unique().StorageKey("job_items_job_remote_id_key").
			Annotations(entsql.IndexWhere("remote_id IS NOT NULL")),
	}
}

// Annotations implements ent.Schema.
func (JobItem) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection(), entsql.Annotation{Table: "job_items"}}
}

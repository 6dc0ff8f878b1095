package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/dirsync/dirsync/ent/schema/pulid"
)

// Event is an audit record of a remote effect or its failure (P6, J3). It keeps
// plain ids, not edges: the history outlives the users and integrations it names.
type Event struct{ ent.Schema }

// Mixin implements ent.Schema.
func (Event) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("EV"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (Event) Fields() []ent.Field {
	return []ent.Field{
		field.String("type").MaxLen(64).Immutable().Annotations(entgql.OrderField("TYPE")),
		field.String("user_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable(),
		field.String("integration_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable(),
		field.String("job_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable(),
		field.String("detail").Optional().MaxLen(4000).Immutable(),
	}
}

// Indexes implements ent.Schema.
func (Event) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id", "created_at")}
}

// Annotations implements ent.Schema.
func (Event) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entgql.QueryField(),
		entsql.Annotation{Table: "events"},
	}
}

// Notification is a message to a person (P5, M6); stored now, delivered by a
// channel that comes later.
type Notification struct{ ent.Schema }

// Mixin implements ent.Schema.
func (Notification) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("NO"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (Notification) Fields() []ent.Field {
	return []ent.Field{
		field.String("user_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable().Immutable(),
		field.String("kind").MaxLen(64).Immutable(),
		field.String("message").MaxLen(2000).Immutable(),
		field.Time("delivered_at").Optional().Nillable(),
		field.String("secret_sealed").Optional().Sensitive().Annotations(hidden).
			Comment("A one-time token the delivery channel hands the person (activation, reset), sealed (internal/secrets) to this row's id."),
	}
}

// Annotations implements ent.Schema.
func (Notification) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entsql.Annotation{Table: "notifications"},
	}
}

// Outbox holds remote work written in the same transaction as the state change
// that caused it (DESIGN.md). The relay moves rows into asynq (task id = row id)
// and stamps dispatched_at. Never exposed.
type Outbox struct{ ent.Schema }

// Fields implements ent.Schema.
func (Outbox) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id"),
		field.String("organization_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
		field.String("kind").MaxLen(64).Immutable(),
		field.Bytes("payload").Immutable(),
		field.Time("created_at").Immutable().Default(time.Now),
		field.Time("dispatched_at").Optional().Nillable(),
	}
}

// Indexes implements ent.Schema.
func (Outbox) Indexes() []ent.Index {
	return []ent.Index{
		// The relay's scan: undispatched rows in id order.
		index.Fields("id").Annotations(entsql.IndexWhere("dispatched_at IS NULL")).StorageKey("outbox_pending"),
	}
}

// Annotations implements ent.Schema.
func (Outbox) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll), entsql.Annotation{Table: "outbox"}}
}

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
	"github.com/dirsync/dirsync/internal/drift/driftinfo"
)

// RemoteLink is what we know of one of our users (or groups) in one integration's
// tenant: the remote object id once provisioned, what we last applied, and the
// outcome of the last reconcile. It outlives the user (user_id is nulled on
// delete) so the deletion's deprovisioning (X3) still knows the remote id.
type RemoteLink struct{ ent.Schema }

// Mixin implements ent.Schema.
func (RemoteLink) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("RL"), TimeMixin{}, OrgMixin{}}
}

// Fields implements ent.Schema.
func (RemoteLink) Fields() []ent.Field {
	return []ent.Field{
		field.String("integration_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Immutable(),
		field.String("user_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable(),
		// Kind GROUP: nulled when the group is deleted, so the link stays as the
		// history of the remote group we stopped managing (G4).
		field.String("group_id").GoType(pulid.ID("")).Annotations(entgql.Type("ID")).Optional().Nillable(),
		field.Enum("kind").Values("USER", "GROUP").Default("USER").Immutable(),
		field.String("remote_id").Optional().MaxLen(64),
		field.String("upn").Optional().MaxLen(113).Comment("The userPrincipalName last sent."),
		field.Enum("status").Values("PENDING", "IN_SYNC", "OUT_OF_SCOPE", "ERROR", "REMOTE_DELETED").Default("PENDING").
			Annotations(entgql.OrderField("STATUS")),
		field.Bool("remote_enabled").Optional().Nillable().Comment("accountEnabled as we last set it."),
		field.Bool("taken_over").Default(false).Comment("P1: the remote object existed and was taken over."),
		field.Time("remote_created_at").Optional().Nillable().Comment("When we created the remote object (replication window)."),
		field.String("applied_hash").Optional().Annotations(hidden).
			Comment("Hash of the last body applied, to skip no-op writes."),
		field.String("status_reason").Optional().MaxLen(2000),
		field.Bool("owner_marked").Default(false).
			Comment("The remote object carries this integration's ownership marker (open extension com.dirsync.owner, docs/ownership.md)."),
		field.JSON("drift", &driftinfo.Drift{}).Optional().Annotations(entgql.Type("RemoteDrift")).
			Comment("What a drift round last found changed in the tenant behind our back; null: nothing (docs/drift.md)."),
		field.String("last_error_code").Optional().MaxLen(200),
		field.String("last_error_message").Optional().MaxLen(2000),
		field.String("last_error_request_id").Optional().MaxLen(100),
		field.Time("last_synced_at").Optional().Nillable(),
		// Kind GROUP only (G2–G3).
		field.String("display_name").Optional().MaxLen(256).Comment("Group: the displayName last sent or found."),
		field.Int("members_in_sync").Default(0).NonNegative().
			Comment("Group: directory members provisioned in this integration that are members of the remote group."),
		field.Int("members_pending").Default(0).NonNegative().
			Comment("Group: directory members not provisioned (yet) in this integration, so not sent."),
		field.Int("foreign_members").Default(0).NonNegative().
			Comment("Group: remote members that are not ours, left alone."),
		field.Strings("member_ids").Optional().Annotations(hidden).
			Comment("Group: remote ids of the members we put in, so only those are ever removed."),
		field.Bool("members_dirty").Default(false).Annotations(hidden).
			Comment("Group: a member's user link changed since the last reconcile began; one follow-up task is queued."),
		field.Int("password_version").Default(0).NonNegative().
			Comment("The user's password version this remote account last received (W3); 0: none of ours."),
		field.Int("password_queued_version").Default(0).NonNegative().Annotations(hidden).
			Comment("The newest password version queued for this account, so a login does not push it twice."),
		field.Time("password_pushed_at").Optional().Nillable(),
		field.String("password_error_code").Optional().MaxLen(200).
			Comment("Why the last password push failed for good (e.g. Graph's password policy); empty after a success."),
		field.String("password_error_message").Optional().MaxLen(2000),
	}
}

// Edges implements ent.Schema.
func (RemoteLink) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("integration", Integration.Type).Ref("links").Field("integration_id").
			Unique().Required().Immutable(),
		edge.From("user", User.Type).Ref("links").Field("user_id").Unique(),
		edge.From("group", UserGroup.Type).Ref("links").Field("group_id").Unique(),
	}
}

// Indexes implements ent.Schema.
func (RemoteLink) Indexes() []ent.Index {
	return []ent.Index{
		// At most one live link per (integration, user); orphans (user deleted) may pile up
		// until their deprovisioning ran.
		index.Fields("integration_id", "user_id").Unique().StorageKey(UniqueRemoteLink),
		index.Fields("integration_id", "remote_id"),
		// One remote object is linked at most once per integration (backstop of
		// the reconcile's UPN lock: two directory users never share an account).
		index.Fields("integration_id", "remote_id").Unique().StorageKey(UniqueRemoteLinkRemoteID).
			Annotations(entsql.IndexWhere("(remote_id IS NOT NULL) AND ((remote_id)::text <> ''::text)")),
		index.Fields("user_id"),
		// At most one link per (integration, group); orphans (group deleted) stay as history.
		index.Fields("integration_id", "group_id").Unique().StorageKey(UniqueRemoteLinkGroup),
	}
}

// Annotations implements ent.Schema.
func (RemoteLink) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entsql.Annotation{Table: "remote_links"},
	}
}

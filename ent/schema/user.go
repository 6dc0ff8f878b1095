package schema

import (
	"context"

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

// User is a person in the directory (U1).
type User struct{ ent.Schema }

// Mixin implements ent.Schema.
func (User) Mixin() []ent.Mixin {
	return []ent.Mixin{pulid.MixinWithPrefix("US"), TimeMixin{}, OrgMixin{}}
}

// optionalText is an optional one-line attribute with a length limit in
// characters (ent's MaxLen would count bytes).
func optionalText(name string, max int, annotations ...schema.Annotation) ent.Field {
	return field.String(name).Optional().Validate(rules.Text(max, false)).Annotations(annotations...)
}

// hidden keeps a field out of every GraphQL type and input.
var hidden = entgql.Skip(entgql.SkipAll)

// readOnly shows a field in GraphQL types but in no mutation input.
var readOnly = entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput, entgql.SkipWhereInput, entgql.SkipOrderField)

// Fields implements ent.Schema.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.String("username").
			Validate(rules.Username).
			Annotations(entgql.OrderField("USERNAME")),
		field.String("username_folded").
			Comment("Case-folded username; carries the per-organization unique index.").
			Annotations(hidden),
		field.String("email").
			Comment("Company email (unique per organization).").
			Validate(rules.Email).
			Annotations(entgql.OrderField("EMAIL")),
		field.String("email_folded").
			Comment("Case-folded company email; carries the per-organization unique index.").
			Annotations(hidden),
		field.String("alternate_email").Optional().Validate(rules.OptionalEmail),
		optionalText("first_name", rules.MaxName, entgql.OrderField("FIRST_NAME")),
		optionalText("last_name", rules.MaxName, entgql.OrderField("LAST_NAME")),
		optionalText("display_name", rules.MaxDisplayName, entgql.OrderField("DISPLAY_NAME")),
		optionalText("job_title", rules.MaxJobTitle),
		optionalText("department", rules.MaxDepartment, entgql.OrderField("DEPARTMENT")),
		optionalText("company_name", rules.MaxCompanyName),
		optionalText("employee_id", rules.MaxEmployeeID),
		optionalText("employee_type", rules.MaxEmployeeType),
		optionalText("cost_center", rules.MaxCostCenter),
		optionalText("business_phone", rules.MaxPhone),
		optionalText("mobile_phone", rules.MaxPhone),
		optionalText("office_location", rules.MaxOfficeLoc),
		optionalText("street_address", rules.MaxStreetAddress),
		optionalText("city", rules.MaxCity),
		optionalText("address_state", rules.MaxAddressState), // state or province of the postal address
		optionalText("postal_code", rules.MaxPostalCode),
		optionalText("country", rules.MaxCountry),
		field.String("usage_location").Optional().Validate(rules.UsageLocation),
		field.Enum("state").
			Values("STAGED", "ACTIVE", "SUSPENDED").
			Default("STAGED").
			Annotations(
				entgql.OrderField("STATE"),
				// Changes only through suspendUser/activateUser, which check the transition.
				entgql.Skip(entgql.SkipMutationUpdateInput),
			),
		field.String("password_hash").Comment("argon2id PHC string.").Optional().Nillable().Sensitive().Annotations(hidden),
		field.Time("password_set_at").Optional().Nillable().Annotations(readOnly),
		field.Time("password_expires_at").Optional().Nillable().
			Comment("When the password expires (X5); null: no password or no maximum age.").Annotations(readOnly),
		field.Int("password_version").Default(0).NonNegative().Annotations(hidden).
			Comment("Bumped on every password change; links remember the version they received (W3)."),
		field.Int("failed_logins").Default(0).NonNegative().Annotations(hidden),
		field.Time("locked_until").Optional().Nillable().Annotations(readOnly).
			Comment("Locked out of the portal until then (X6); far in the future when only an administrator can unlock."),
	}
}

// Edges implements ent.Schema.
func (User) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("groups", UserGroup.Type).
			Ref("members").
			Annotations(
				entgql.RelayConnection(),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		edge.To("bindings", UserBinding.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		// Portal sessions, activation and reset tokens go with their user.
		edge.To("tokens", UserToken.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		// Links outlive the user (SET NULL) so deleting a user still deprovisions (X3).
		edge.To("links", RemoteLink.Type).
			Annotations(entsql.OnDelete(entsql.SetNull),
				// A connection, so its page size is bounded and priced like every other list.
				entgql.RelayConnection(),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput)),
	}
}

// Indexes implements ent.Schema.
func (User) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization_id", "username_folded").Unique().StorageKey(UniqueUserUsername),
		index.Fields("organization_id", "email_folded").Unique().StorageKey(UniqueUserEmail),
	}
}

// Hooks implements ent.Schema.
func (User) Hooks() []ent.Hook {
	return []ent.Hook{
		// Normalise first: validators and the folded copies see the stored form.
		normalizeHook(trimmed, userTrimmedFields...),
		normalizeHook(normalizedEmail(rules.NormalizeEmail), "email"),
		normalizeHook(normalizedEmail(rules.OptionalNormalizeEmail), "alternate_email"),
		foldHook("username", "username_folded"),
		foldHook("email", "email_folded"),
	}
}

// Annotations implements ent.Schema.
func (User) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entgql.QueryField(),
		entgql.Mutations(entgql.MutationCreate(), entgql.MutationUpdate()),
		entsql.Annotation{Table: "users"},
	}
}

// Names of unique constraints; the error translator maps them to the input field.
const (
	UniqueUserUsername       = "users_org_username_key"
	UniqueUserEmail          = "users_org_email_key"
	UniqueGroupName          = "user_groups_org_name_key"
	UniqueOrgName            = "organizations_name_key"
	UniqueAPIKeyHash         = "api_keys_key_hash_key"
	UniqueIntegrationName    = "integrations_org_name_key"
	UniqueUserBinding        = "user_bindings_integration_user_key"
	UniqueGroupBinding       = "group_bindings_integration_group_key"
	UniqueRemoteLink         = "remote_links_integration_user_key"
	UniqueRemoteLinkRemoteID = "remote_links_integration_remote_id_key"
	UniqueRemoteLinkGroup    = "remote_links_integration_group_key"
)

// userTrimmedFields are the user's one-line attributes stored without
// surrounding white space (see rules.Trim); the emails trim in their own
// normalisation.
var userTrimmedFields = []string{
	"username", "first_name", "last_name", "display_name", "job_title", "department",
	"company_name", "employee_id", "employee_type", "cost_center", "business_phone",
	"mobile_phone", "office_location", "street_address", "city", "address_state",
	"postal_code", "country", "usage_location",
}

func trimmed(s string) string { return rules.Trim(s) }

// normalizedEmail stores the normalised address when there is one; an
// invalid one is left as given for the field's validator to refuse with its
// message.
func normalizedEmail(norm func(string) (string, error)) func(string) string {
	return func(s string) string {
		if n, err := norm(s); err == nil {
			return n
		}
		return s
	}
}

// normalizeHook replaces the value of each named string field a mutation
// sets with norm(value), on every write path (API, CLI, worker), before the
// field validators and the fold hooks run.
func normalizeHook(norm func(string) string, fields ...string) ent.Hook {
	return func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			for _, f := range fields {
				v, ok := m.Field(f)
				if !ok {
					continue
				}
				if s, ok := v.(string); ok {
					if n := norm(s); n != s {
						if err := m.SetField(f, n); err != nil {
							return nil, err
						}
					}
				}
			}
			return next.Mutate(ctx, m)
		})
	}
}

// foldHook keeps folded in step with field, so the unique index on the folded
// copy makes uniqueness case-insensitive.
func foldHook(fieldName, folded string) ent.Hook {
	return func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			if v, ok := m.Field(fieldName); ok {
				if s, ok := v.(string); ok {
					if err := m.SetField(folded, rules.Fold(s)); err != nil {
						return nil, err
					}
				}
			}
			return next.Mutate(ctx, m)
		})
	}
}

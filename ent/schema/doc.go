// Package schema holds the ent schemas: the single source of truth for the
// database tables, the Go entities and the GraphQL types.
//
// Adding an organization-owned entity (Integration, Job, …):
//
//   - Mixin: pulid.MixinWithPrefix("XX") (a new two-letter prefix), TimeMixin{},
//     OrgMixin{}. OrgMixin gives the organization_id column and edge, fills it
//     from the viewer on create and filters every query and write by the
//     viewer's organization (privacy.go); nothing else is needed for O1.
//   - Unique indexes start with organization_id and get a StorageKey constant
//     listed in gqlerr's uniqueFields, so a violation answers CONFLICT naming
//     the field. Case-insensitive uniqueness: a hidden folded copy (foldHook).
//   - Expose it with entgql annotations (RelayConnection, QueryField,
//     OrderField); hide internals with entgql.Skip. Edges to other entities
//     are skipped in mutation inputs and changed through internal/directory
//     (or its sibling), which checks both ends belong to the organization.
//   - Then `go generate ./ent` and `make migration NAME=add_xxx`.
//
// Syntax rules of attributes live in internal/directory/rules and run here
// as field validators, so every write path enforces them.
package schema

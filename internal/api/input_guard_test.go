package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"entgo.io/contrib/entgql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
)

// setClearPair is one `x` / `clearX` pair of an input type taken by a mutation.
type setClearPair struct {
	mutation string
	arg      string
	input    *ast.Definition
	field    *ast.FieldDefinition // x
	clear    string               // clearX
}

// setClearPairs finds, in the served schema, every mutation argument whose
// input type has both `x` and `clearX`, so a new update input is covered
// without touching this test.
func setClearPairs(s *ast.Schema) []setClearPair {
	var out []setClearPair
	for _, m := range s.Mutation.Fields {
		for _, a := range m.Arguments {
			def := s.Types[a.Type.Name()]
			if def == nil || def.Kind != ast.InputObject {
				continue
			}
			for _, f := range def.Fields {
				name, ok := strings.CutPrefix(f.Name, "clear")
				if !ok || name == "" {
					continue
				}
				if x := def.Fields.ForName(strings.ToLower(name[:1]) + name[1:]); x != nil {
					out = append(out, setClearPair{m.Name, a.Name, def, x, f.Name})
				}
			}
		}
	}
	return out
}

// sampleValue is a value of type t; the guard refuses the pair before any
// resolver looks at it, so any value of the right type does.
func sampleValue(t *testing.T, s *ast.Schema, typ *ast.Type) any {
	if typ.Elem != nil {
		return []any{sampleValue(t, s, typ.Elem)}
	}
	switch typ.NamedType {
	case "String", "ID":
		return "x"
	case "Int":
		return 1
	case "Boolean":
		return true
	}
	if def := s.Types[typ.NamedType]; def != nil && def.Kind == ast.Enum {
		return enumLit(def.EnumValues[0].Name)
	}
	t.Fatalf("no sample value for %s: extend sampleValue", typ)
	return nil
}

// Giving `x` and `clearX` in one input is BAD_USER_INPUT naming x, for every
// such pair of every mutation, and changes nothing (it used to reach
// PostgreSQL as two assignments of one column: INTERNAL).
func TestSetAndClearSameFieldRefused(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")
	u := s.createUser(org.admin, "alice")
	g := s.createGroup(org.admin, "staff")
	in := s.createIntegration(org.admin, s.input("contoso", creds, map[string]any{"domains": []string{"contoso.com"}, "defaultDomain": "contoso.com"}))
	s.must(org.admin, `mutation { updateOrganization(input: {userLimit: 5}) { organization { id } } }`, nil, nil)
	ids := map[string]string{
		"UpdateUserInput":        u.ID,
		"UpdateUserGroupInput":   g,
		"UpdateIntegrationInput": in.ID,
	}
	snapshot := func() string {
		ctx := sysCtx()
		var b bytes.Buffer
		for _, v := range []any{
			s.client.User.GetX(ctx, pulid.ID(u.ID)),
			s.client.UserGroup.GetX(ctx, pulid.ID(g)),
			s.client.Integration.GetX(ctx, pulid.ID(in.ID)),
			s.client.Organization.GetX(ctx, pulid.ID(org.id)),
		} {
			require.NoError(t, json.NewEncoder(&b).Encode(v))
		}
		return b.String()
	}
	before := snapshot()

	schema := graph.NewSchema(s.client, 100, graph.Deps{}).Schema()
	pairs := setClearPairs(schema)
	seen := map[string]bool{}
	for _, p := range pairs {
		seen[p.input.Name+"."+p.clear] = true
		t.Run(p.mutation+"/"+p.field.Name, func(t *testing.T) {
			vars := map[string]any{p.arg: map[string]any{p.field.Name: sampleValue(t, schema, p.field.Type), p.clear: true}}
			var decls, args []string
			for _, a := range schema.Mutation.Fields.ForName(p.mutation).Arguments {
				decls = append(decls, fmt.Sprintf("$%s: %s", a.Name, a.Type.String()))
				args = append(args, fmt.Sprintf("%s: $%s", a.Name, a.Name))
				if a.Name == p.arg {
					continue
				}
				require.Equal(t, "ID!", a.Type.String(), "extend this test for argument %s of %s", a.Name, p.mutation)
				id, ok := ids[p.input.Name]
				require.True(t, ok, "no object to update for %s: add one to this test", p.input.Name)
				vars[a.Name] = id
			}
			q := fmt.Sprintf("mutation(%s) { %s(%s) { __typename } }", strings.Join(decls, ", "), p.mutation, strings.Join(args, ", "))
			e := s.fails(org.admin, q, vars, "BAD_USER_INPUT", p.field.Name)
			require.Contains(t, e.Message, p.clear)

			// The same pair as literals, next to a valid mutation: the whole request changes nothing.
			lit := fmt.Sprintf(`mutation { ok: createUserGroup(input: {name: "new-%s"}) { __typename } bad: %s(%s) { __typename } }`,
				p.field.Name, p.mutation, literalArgs(vars))
			r := s.post(org.admin, lit, nil)
			require.NotEmpty(t, r.Errors)
			require.Equal(t, "BAD_USER_INPUT", r.Errors[0].code(), "%+v", r.Errors)
			require.Equal(t, p.field.Name, r.Errors[0].field())
		})
	}
	// The known pairs are among those found (the finder finds something).
	for _, k := range []string{
		"UpdateUserInput.clearFirstName", "UpdateUserInput.clearUsageLocation", "UpdateUserInput.clearAlternateEmail",
		"UpdateUserGroupInput.clearDescription", "UpdateOrganizationInput.clearUserLimit",
		"UpdateIntegrationInput.clearDefaultDomain", "UpdateIntegrationInput.clearGraphBaseURL",
	} {
		assert.True(t, seen[k], k)
	}
	require.Equal(t, before, snapshot(), "a refused input changes nothing")
	var groups struct{ UserGroups struct{ TotalCount int } }
	s.must(org.admin, `{ userGroups { totalCount } }`, nil, &groups)
	require.Equal(t, 1, groups.UserGroups.TotalCount, "the valid mutation next to a refused one was rolled back")

	// Either one alone still works, and clearX: false or x: null next to the other is no conflict.
	s.must(org.admin, `mutation($id: ID!) { updateUser(id: $id, input: {firstName: "Al", clearLastName: true, clearFirstName: false}) { user { id } } }`, map[string]any{"id": u.ID}, nil)
	s.must(org.admin, `mutation($id: ID!) { updateUser(id: $id, input: {firstName: null, clearFirstName: true}) { user { id } } }`, map[string]any{"id": u.ID}, nil)
	s.must(org.admin, `mutation { updateOrganization(input: {clearUserLimit: true}) { organization { id } } }`, nil, nil)
}

// enumLit is an enum value: a string in JSON, a bare name as a literal.
type enumLit string

// literalArgs writes vars as GraphQL literal arguments.
func literalArgs(vars map[string]any) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+literal(vars[k]))
	}
	return strings.Join(parts, ", ")
}

func literal(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "{" + literalArgs(v) + "}"
	case []any:
		var parts []string
		for _, x := range v {
			parts = append(parts, literal(x))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case enumLit:
		return string(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// A NUL character anywhere in an argument (input fields, where filters at any
// depth, ids, cursors) is BAD_USER_INPUT naming the field, before PostgreSQL
// sees it (which refused it with an INTERNAL error).
func TestNULCharacterRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	alice := e.createUser(org.admin, "alice")
	e.createGroup(org.admin, "staff")

	cursor := func(id, value string) string {
		var b bytes.Buffer
		entgql.Cursor[pulid.ID]{ID: pulid.ID(id), Value: value}.MarshalGQL(&b)
		return strings.Trim(b.String(), `"`)
	}
	for _, c := range []struct {
		name, query string
		vars        map[string]any
		field       string
	}{
		{"where literal", `{ users(where: {username: "a\u0000"}) { totalCount } }`, nil, "username"},
		{"where variable", `query($w: UserWhereInput) { users(where: $w) { totalCount } }`,
			map[string]any{"w": map[string]any{"or": []any{map[string]any{"emailContainsFold": "\x00"}}}}, "emailContainsFold"},
		{"group where", `{ userGroups(where: {not: {nameHasPrefix: "\u0000x"}}) { totalCount } }`, nil, "nameHasPrefix"},
		{"nested where", `{ users { edges { node { groups(where: {name: "s\u0000"}) { totalCount } } } } }`, nil, "name"},
		{"has-with where", `{ userGroups(where: {hasMembersWith: {usernameIn: ["alice", "b\u0000"]}}) { totalCount } }`, nil, "usernameIn"},
		{"integrations where", `{ integrations(where: {nameContains: "\u0000"}) { totalCount } }`, nil, "nameContains"},
		{"jobs where", `{ jobs(where: {kind: "\u0000"}) { totalCount } }`, nil, "kind"},
		{"node id", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": "US\x00"}, "id"},
		{"nodes ids", `{ nodes(ids: ["US\u0000"]) { id } }`, nil, "ids"},
		{"cursor id", `query($c: Cursor) { users(after: $c) { totalCount } }`, map[string]any{"c": cursor("US\x00", "")}, "after"},
		{"cursor value", `query($c: Cursor) { users(after: $c, orderBy: {field: USERNAME}) { totalCount } }`, map[string]any{"c": cursor(alice.ID, "a\x00")}, "after"},
		{"update id", `mutation { updateUser(id: "US\u0000", input: {firstName: "x"}) { user { id } } }`, nil, "id"},
		{"update input", `mutation($id: ID!) { updateUser(id: $id, input: {jobTitle: "boss\u0000"}) { user { id } } }`, map[string]any{"id": alice.ID}, "jobTitle"},
		{"create input", `mutation { createUserGroup(input: {name: "g", description: "a\u0000"}) { userGroup { id } } }`, nil, "description"},
		{"membership ids", `mutation($g: ID!) { addUserGroupMembers(groupID: $g, userIDs: ["US\u0000"]) { userGroup { id } } }`, map[string]any{"g": "UGx"}, "userIDs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := e.fails(org.admin, c.query, c.vars, "BAD_USER_INPUT", c.field)
			require.Contains(t, err.Message, "NUL")
		})
	}
	require.Equal(t, 1, e.userCount(org.admin))
	var out struct{ Node struct{ JobTitle string } }
	e.must(org.admin, `query($id: ID!) { node(id: $id) { ... on User { jobTitle } } }`, map[string]any{"id": alice.ID}, &out)
	require.Empty(t, out.Node.JobTitle)
}

// Names and other one-line text refuse every control character (C0 and C1),
// bidirectional overrides and line separators, which display one thing and
// store another.
func TestInvisibleCharactersInNamesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	u := e.createUser(org.admin, "alice")
	const upd = `mutation($id: ID!, $in: UpdateUserInput!) { updateUser(id: $id, input: $in) { user { id } } }`
	for _, c := range []struct{ field, value string }{
		{"displayName", "Alice \u202eecilA"}, // right-to-left override
		{"firstName", "Al\u0085ice"},         // C1 control (NEL)
		{"lastName", "Smi\u2028th"},          // line separator
		{"jobTitle", "Boss\u2066"},           // isolate
		{"department", "\ufeffSales"},        // byte order mark
	} {
		e.fails(org.admin, upd, map[string]any{"id": u.ID, "in": map[string]any{c.field: c.value}}, "BAD_USER_INPUT", c.field)
	}
	e.fails(org.admin, createGroup, map[string]any{"in": map[string]any{"name": "staff\u202e"}}, "BAD_USER_INPUT", "name")
	// Joiners are part of some scripts and emoji: kept.
	e.must(org.admin, upd, map[string]any{"id": u.ID, "in": map[string]any{"displayName": "می\u200cخواهم 👩\u200d💻"}}, nil)
}

// O3: userLimit is null (no limit) or 1..10,000,000; anything else is
// BAD_USER_INPUT naming it and changes nothing.
func TestUserLimitBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	const q = `mutation($n: Int) { updateOrganization(input: {userLimit: $n}) { organization { userLimit } } }`
	e.must(org.admin, q, map[string]any{"n": 10_000_000}, nil)
	for _, n := range []any{-1, 0, 10_000_001, int64(1) << 31, int64(1) << 40} {
		e.fails(org.admin, q, map[string]any{"n": n}, "BAD_USER_INPUT", "userLimit")
	}
	// Beyond 64 bits gqlgen refuses the variable before anything runs.
	e.fails(org.admin, q, map[string]any{"n": json.Number("1180591620717411303424")}, "GRAPHQL_VALIDATION_FAILED", "")
	e.fails(org.admin, `mutation { updateOrganization(input: {userLimit: 1099511627776}) { organization { userLimit } } }`, nil, "BAD_USER_INPUT", "userLimit")
	var out struct{ Organization struct{ UserLimit *int } }
	e.must(org.admin, `{ organization { userLimit } }`, nil, &out)
	require.Equal(t, 10_000_000, *out.Organization.UserLimit)
	e.must(org.admin, q, map[string]any{"n": 1}, nil)
	e.must(org.admin, q, map[string]any{"n": nil}, nil)
}

// Usernames, group names and one-line attributes are stored trimmed, and
// uniqueness is decided on the trimmed value ("ann " is "ann").
func TestNamesAreTrimmedBeforeUniqueness(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	var out struct {
		CreateUser struct {
			User struct{ Username, Email, FirstName, DisplayName, UsageLocation string }
		}
	}
	e.must(org.admin, `mutation($in: CreateUserInput!) { createUser(input: $in) { user { username email firstName displayName usageLocation } } }`,
		map[string]any{"in": map[string]any{"username": " ann ", "email": " ann@example.com\t", "firstName": " Ann", "displayName": "Ann Smith  ", "usageLocation": " DE "}}, &out)
	u := out.CreateUser.User
	require.Equal(t, "ann", u.Username)
	require.Equal(t, "ann@example.com", u.Email)
	require.Equal(t, "Ann", u.FirstName)
	require.Equal(t, "Ann Smith", u.DisplayName)
	require.Equal(t, "DE", u.UsageLocation)

	in := func(username, email string) map[string]any {
		return map[string]any{"in": map[string]any{"username": username, "email": email}}
	}
	e.fails(org.admin, createUser, in("ann ", "other@example.com"), "CONFLICT", "username")
	e.fails(org.admin, createUser, in("  ANN", "other@example.com"), "CONFLICT", "username")
	e.fails(org.admin, createUser, in("bob", " Ann@Example.com "), "CONFLICT", "email")
	require.Equal(t, 1, e.userCount(org.admin))

	e.createGroup(org.admin, "Staff")
	e.fails(org.admin, createGroup, map[string]any{"in": map[string]any{"name": "Staff "}}, "CONFLICT", "name")
	e.fails(org.admin, createGroup, map[string]any{"in": map[string]any{"name": "\tstaff"}}, "CONFLICT", "name")
	other := e.createGroup(org.admin, " Other ")
	var g struct{ Node struct{ Name string } }
	e.must(org.admin, `query($id: ID!) { node(id: $id) { ... on UserGroup { name } } }`, map[string]any{"id": other}, &g)
	require.Equal(t, "Other", g.Node.Name)
	e.fails(org.admin, `mutation($id: ID!) { updateUserGroup(id: $id, input: {name: " STAFF "}) { userGroup { id } } }`, map[string]any{"id": other}, "CONFLICT", "name")

	// Renaming to the trimmed form of itself is no conflict; the description keeps its layout.
	var upd struct {
		UpdateUserGroup struct {
			UserGroup struct{ Name, Description string }
		}
	}
	e.must(org.admin, `mutation($id: ID!) { updateUserGroup(id: $id, input: {name: "Other  ", description: "  indented\n"}) { userGroup { name description } } }`, map[string]any{"id": other}, &upd)
	require.Equal(t, "Other", upd.UpdateUserGroup.UserGroup.Name)
	require.Equal(t, "  indented\n", upd.UpdateUserGroup.UserGroup.Description)
}

// Email domains are stored in ASCII (punycode) form, so an internationalised
// domain and its punycode spelling are one address; a domain label mixing
// scripts (a look-alike) is refused.
func TestEmailDomainsNormalised(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	org := e.tenant("acme")
	var out struct {
		CreateUser struct {
			User struct{ ID, Email, AlternateEmail string }
		}
	}
	e.must(org.admin, `mutation($in: CreateUserInput!) { createUser(input: $in) { user { id email alternateEmail } } }`,
		map[string]any{"in": map[string]any{"username": "anna", "email": "Anna@Bücher.DE", "alternateEmail": "anna@ｅｘａｍｐｌｅ.org"}}, &out)
	require.Equal(t, "Anna@xn--bcher-kva.de", out.CreateUser.User.Email, "local part kept, domain in punycode")
	require.Equal(t, "anna@example.org", out.CreateUser.User.AlternateEmail)

	e.fails(org.admin, createUser, map[string]any{"in": map[string]any{"username": "anna2", "email": "anna@xn--bcher-kva.de"}}, "CONFLICT", "email")
	e.fails(org.admin, createUser, map[string]any{"in": map[string]any{"username": "anna3", "email": "anna@bücher.de"}}, "CONFLICT", "email")

	for _, c := range []struct{ field, value string }{
		{"email", "billing@p\u0430ypal.com"}, // Cyrillic а
		{"email", "billing@xn--pypal-4ve.com"},
		{"alternateEmail", "x@g\u03bfogle.com"}, // Greek ο
	} {
		in := map[string]any{"username": "mallory", "email": "mallory@example.com", c.field: c.value}
		err := e.fails(org.admin, createUser, map[string]any{"in": in}, "BAD_USER_INPUT", c.field)
		require.Contains(t, err.Message, "scripts", c.value)
	}
	e.fails(org.admin, createUser, map[string]any{"in": map[string]any{"username": "bad", "email": "bad@xn--zz.com"}}, "BAD_USER_INPUT", "email")
	const upd = `mutation($id: ID!, $in: UpdateUserInput!) { updateUser(id: $id, input: $in) { user { email } } }`
	e.fails(org.admin, upd, map[string]any{"id": out.CreateUser.User.ID, "in": map[string]any{"email": "anna@p\u0430ypal.com"}}, "BAD_USER_INPUT", "email")
	require.Equal(t, 1, e.userCount(org.admin))

	// A single-script international domain is fine, stored as punycode.
	var u2 struct {
		UpdateUser struct{ User struct{ Email string } }
	}
	e.must(org.admin, upd, map[string]any{"id": out.CreateUser.User.ID, "in": map[string]any{"email": "anna@пример.рф"}}, &u2)
	require.Equal(t, "anna@xn--e1afmkfd.xn--p1ai", u2.UpdateUser.User.Email)
}

// Integration domains use the same normal form as email domains, so a
// setting written "bücher.de" matches users stored as "xn--bcher-kva.de".
func TestIntegrationDomainsNormalised(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("buecher", "xn--bcher-kva.de")
	s.fails(org.admin, createIntegration, map[string]any{"in": s.input("bad", creds, map[string]any{"domains": []string{"p\u0430ypal.com"}})}, "BAD_USER_INPUT", "domains")
	s.fails(org.admin, createIntegration, map[string]any{"in": s.input("Contoso\u202e", creds, nil)}, "BAD_USER_INPUT", "name")
	require.Zero(t, integrationCount(s, org.admin))
	in := s.createIntegration(org.admin, s.input("buecher", creds, map[string]any{
		"domains": []string{"Bücher.de", "xn--bcher-kva.de"}, "defaultDomain": "BÜCHER.de",
	}))
	require.Equal(t, []string{"xn--bcher-kva.de"}, in.Domains)
	require.Equal(t, "xn--bcher-kva.de", *in.DefaultDomain)
	p := s.mutate(org.admin, authorizeIntegration, map[string]any{"id": in.ID})
	require.Equal(t, "AUTHORIZED", p.Integration.Status, "the tenant's verified domain matches: %s", p.Integration.lastError())
}

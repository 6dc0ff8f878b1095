package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
)

// nest is users → groups → members → groups … levels connections deep
// below users, each connection three fields (conn { edges { node }}) with
// args (e.g. "(first: 2)"), and id plus inner in the innermost node: fields
// nest 3 + 3*levels + 1 deep.
func nest(levels int, args, inner string) string {
	q := "id " + inner
	for i := levels - 1; i >= 0; i-- {
		conn := "groups"
		if i%2 == 1 {
			conn = "members"
		}
		q = conn + args + " { edges { node { id " + q + " } } }"
	}
	return "{ users" + args + " { edges { node { id " + q + " } } } }"
}

// The complexity of a list is its children times its rows, saturating: a
// 53-level query must be priced at the maximum and refused, not wrap
// around to a small number and load every row (it was priced 1 and loaded
// ~49,000 rows). Every list is priced, including the Job.items ↔ JobItem.job
// and User.links ↔ RemoteLink.user cycles.
func TestComplexityPricesEveryListAndSaturates(t *testing.T) {
	t.Parallel()
	e, logs := newServerEnv(t, api.Config{MaxDepth: -1, MaxFields: -1})
	o := e.tenant("acme")
	u := e.createUser(o.admin, "alice")
	g := e.createGroup(o.admin, "staff")
	e.must(o.admin, addMembers, map[string]any{"g": g, "u": []string{u.ID}}, nil)

	refused := map[string]string{
		"55 levels":         nest(17, "", ""),
		"jobs ↔ items":      `{ jobs { edges { node { items { edges { node { job { items { edges { node { job { id } } } } } } } } } } } }`,
		"links ↔ user":      `{ users { edges { node { links(first: 100) { edges { node { user { links { totalCount } } } } } } } } }`,
		"integration links": `{ integrations { edges { node { links { edges { node { integration { links { totalCount } } } } } } } } }`,
		"events by first": `{ a: events(first: 100) { edges { node { id } } } b: events(first: 100) { edges { node { id } } } ` +
			`d: users(last: 100) { edges { node { groups(first: 100) { edges { node { id name } } } } } } }`,
		"nodes": `query($ids: [ID!]!) { nodes(ids: $ids) { ... on User { groups { edges { node { members { totalCount } } } } } } }`,
	}
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = u.ID
	}
	e.userCount(o.readOnly) // the key's first use also records it
	for name, q := range refused {
		before := e.queries.Load()
		r := e.post(o.readOnly, q, map[string]any{"ids": ids})
		require.Len(t, r.Errors, 1, "%s: %s", name, r.Data)
		require.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", r.Errors[0].code(), "%s: %+v", name, r.Errors[0])
		require.Equal(t, 1, int(e.queries.Load()-before), "%s: only the API key was read", name)
	}

	// Priced by first/last, a small page of the same shapes is fine.
	allowed := []string{
		nest(2, "(first: 10)", ""),
		`{ jobs(first: 10) { edges { node { items(first: 10) { edges { node { job { items(first: 10) { totalCount } } } } } } } } }`,
		`{ users(first: 10) { edges { node { links { totalCount edges { node { status user { id } } } } } } } }`,
		`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
	}
	for _, q := range allowed {
		e.must(o.readOnly, q, map[string]any{"ids": ids[:1]}, nil)
	}
	logs.requireCleanLogs(t)
}

// User.links is a connection: paged, counted, bounded like the others.
func TestUserLinksIsAConnection(t *testing.T) {
	t.Parallel()
	e, _ := newServerEnv(t, api.Config{})
	o := e.tenant("acme")
	u := e.createUser(o.admin, "alice")
	var out struct {
		Node struct {
			Links struct {
				TotalCount int
				Edges      []struct{ Node struct{ ID string } }
				PageInfo   struct{ HasNextPage bool }
			}
		}
	}
	e.must(o.readOnly, `query($id: ID!) { node(id: $id) { ... on User { links(first: 5) { totalCount edges { node { id } } pageInfo { hasNextPage } } } } }`,
		map[string]any{"id": u.ID}, &out)
	require.Zero(t, out.Node.Links.TotalCount)
	e.fails(o.readOnly, `query($id: ID!) { node(id: $id) { ... on User { links(first: 101) { totalCount } } } }`,
		map[string]any{"id": u.ID}, "BAD_USER_INPUT", "first")
}

// Oversized documents are refused before validation, whose cost grows with
// the square of repeated fields: 6,000 copies of one field took 1.6 s of
// CPU, 5,000 aliases 0.8 s.
func TestDocumentLimits(t *testing.T) {
	t.Parallel()
	e, logs := newServerEnv(t, api.Config{})
	o := e.tenant("acme")

	aliases := func(n int) string {
		var b strings.Builder
		b.WriteString("{ ")
		for i := range n {
			fmt.Fprintf(&b, "a%d: organization { id } ", i)
		}
		return b.String() + "}"
	}
	fragDepth := `query { users(first: 2) { edges { node { ...G } } } }
fragment G on User { groups(first: 2) { edges { node { ...M } } } }
fragment M on UserGroup { members(first: 2) { edges { node { ...G2 } } } }
fragment G2 on User { groups(first: 2) { edges { node { id } } } }` // 3 + 3 + 3 + 4 = 13: allowed
	fragTooDeep := strings.Replace(fragDepth, "node { id }", "node { members(first: 2) { edges { node { id } } } }", 1) // 16

	refused := map[string]struct {
		q, limit string
	}{
		"6000 duplicate fields": {"{ organization { " + strings.Repeat("id ", 6000) + "} }", "tokens"},
		"600 duplicate fields":  {"{ organization { " + strings.Repeat("id ", 600) + "} }", "fields"},
		"5000 aliases":          {aliases(5000), "tokens"},
		"101 aliases":           {aliases(101), "aliases"},
		"depth 16":              {nest(4, "(first: 2)", ""), "depth"},
		"depth via fragments":   {fragTooDeep, "depth"},
		"55 levels":             {nest(17, "", ""), "depth"},
	}
	e.userCount(o.readOnly) // the key's first use also records it
	for name, c := range refused {
		before := e.queries.Load()
		r := e.post(o.readOnly, c.q, nil)
		require.Equal(t, 422, r.status, name)
		require.Len(t, r.Errors, 1, "%s: %s", name, r.Data)
		require.Equal(t, "QUERY_LIMIT_EXCEEDED", r.Errors[0].code(), "%s: %+v", name, r.Errors[0])
		require.Equal(t, c.limit, r.Errors[0].Extensions["limit"], name)
		require.Equal(t, 1, int(e.queries.Load()-before), "%s: only the API key was read", name)
	}

	e.must(o.readOnly, aliases(100), nil, nil)
	e.must(o.readOnly, fragDepth, nil, nil)
	e.must(o.readOnly, nest(3, "(first: 2)", "members(first: 2) { pageInfo { hasNextPage } }"), nil, nil) // depth 15
	e.must(o.readOnly, "{ organization { "+strings.Repeat("id ", 498)+"} }", nil, nil)
	logs.requireCleanLogs(t)
}

// The standard introspection query (GraphiQL's, with nine levels of
// ofType) passes the limits when introspection is on.
func TestIntrospectionQueryFitsTheLimits(t *testing.T) {
	t.Parallel()
	e, _ := newServerEnv(t, api.Config{Introspection: true})
	o := e.tenant("acme")
	var out struct {
		Schema struct{ Types []struct{ Name string } } `json:"__schema"`
	}
	e.must(o.readOnly, introspectionQuery, nil, &out)
	require.NotEmpty(t, out.Schema.Types)
}

// introspectionQuery is graphql-js's getIntrospectionQuery() with
// descriptions, deprecations and nine levels of ofType.
const introspectionQuery = `
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}`

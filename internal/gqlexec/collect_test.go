package gqlexec_test

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/dirsync/dirsync/internal/gqlexec"
)

// The cache answers what graphql.CollectFields answers, for each selection
// set and list of types, fragments and skipped fields included, and asks
// gqlgen once per pair.
func TestFieldsCacheAnswersAsCollectFields(t *testing.T) {
	t.Parallel()
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: `
		type Query { user: User, group: Group }
		type User { id: ID!, name: String, groups: [Group] }
		type Group { id: ID!, name: String }`})
	doc := gqlparser.MustLoadQuery(schema, `query($skip: Boolean!) {
		user { id ...u name @skip(if: $skip) groups { id name } }
		group { ...g id }
	}
	fragment u on User { name id }
	fragment g on Group { name }`)
	op := doc.Operations[0]
	oc := &graphql.OperationContext{Doc: doc, Operation: op, Variables: map[string]any{"skip": true}}
	user, group := []string{"User"}, []string{"Group"}
	userSel := op.SelectionSet[0].(*ast.Field).SelectionSet
	groupsSel := userSel[3].(*ast.Field).SelectionSet
	groupSel := op.SelectionSet[1].(*ast.Field).SelectionSet

	var cache gqlexec.FieldsCache
	for range 2 {
		for _, c := range []struct {
			sel       ast.SelectionSet
			satisfies []string
		}{{op.SelectionSet, []string{"Query"}}, {userSel, user}, {groupsSel, group}, {groupSel, group}, {userSel[:1], user}, {nil, user}, {userSel, nil}} {
			want := graphql.CollectFields(oc, c.sel, c.satisfies)
			got := cache.CollectFields(oc, c.sel, c.satisfies)
			require.Equal(t, want, got)
			if len(want) > 0 {
				assert.Same(t, &want[0], &got[0], "gqlgen's own answer")
			}
		}
	}
	names := func(fields []graphql.CollectedField) (out []string) {
		for _, f := range fields {
			out = append(out, f.Alias)
		}
		return out
	}
	assert.Equal(t, []string{"id", "name", "groups"}, names(cache.CollectFields(oc, userSel, user)), "id and name once (the skipped name is the fragment's)")
	assert.Equal(t, []string{"id"}, names(cache.CollectFields(oc, userSel[:1], user)), "a shorter selection is another key")
	assert.Equal(t, []string{"name", "id"}, names(cache.CollectFields(oc, groupSel, group)))
}

func TestFieldsCacheAllocatesNothingOnceFilled(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: `type Query { user: User } type User { id: ID! }`})
	doc := gqlparser.MustLoadQuery(schema, `{ user { id } }`)
	oc := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0]}
	sel := doc.Operations[0].SelectionSet[0].(*ast.Field).SelectionSet
	satisfies := []string{"User"}
	var cache gqlexec.FieldsCache
	cache.CollectFields(oc, sel, satisfies)
	assert.Zero(t, testing.AllocsPerRun(100, func() { cache.CollectFields(oc, sel, satisfies) }))
}

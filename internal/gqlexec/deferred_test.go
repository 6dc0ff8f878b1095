package gqlexec_test

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/dirsync/dirsync/internal/gqlexec"
)

func field(name string, deferrables ...*graphql.Deferrable) graphql.CollectedField {
	return graphql.CollectedField{Field: &ast.Field{Alias: name, Name: name}, Deferrables: deferrables}
}

// Without a deferred field the group is empty, as gqlgen's is until a
// deferred field is added to it; with one, it is gqlgen's, ready to collect.
func TestNewDeferredGroupOnlyPreparesForDeferredFields(t *testing.T) {
	t.Parallel()
	ctx, _ := requestContext()

	plain := gqlexec.NewDeferredGroup(ctx, []graphql.CollectedField{field("id"), field("name")})
	assert.Empty(t, plain.Defers)
	assert.Same(t, ctx, plain.Context)

	deferred := gqlexec.NewDeferredGroup(ctx, []graphql.CollectedField{field("id"), field("groups", &graphql.Deferrable{Label: "g"})})
	require.NotNil(t, deferred.FieldSet, "ready for ResolveConcurrently to add the deferred field")
	require.NotNil(t, deferred.Defers)
	assert.Equal(t, ast.Path{ast.PathName("groups")}, deferred.Path)
	assert.Same(t, ctx, deferred.Context)
}

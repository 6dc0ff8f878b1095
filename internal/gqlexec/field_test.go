package gqlexec_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dirsync/dirsync/internal/gqlexec"
)

type resolveFunc func(
	ctx context.Context,
	oc *graphql.OperationContext,
	field graphql.CollectedField,
	initializeFieldContext func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error),
	fieldResolver func(ctx context.Context) (any, error),
	middlewareChain func(ctx context.Context, next graphql.Resolver) graphql.Resolver,
	marshal func(ctx context.Context, sel ast.SelectionSet, v *string) graphql.Marshaler,
	recoverFromPanic bool,
	nonNull bool,
) graphql.Marshaler

// resolved resolves a plain *string field with resolve and returns what it
// wrote, the errors it reported and how often the field middleware ran.
func resolved(t *testing.T, resolve resolveFunc, value *string, fieldNonNull, nonNull bool, marshal func(v *string) graphql.Marshaler) (string, gqlerror.List, int) {
	t.Helper()
	ctx, _ := requestContext()
	middleware := 0
	oc := &graphql.OperationContext{
		RecoverFunc: quietRecover,
		ResolverMiddleware: func(ctx context.Context, next graphql.Resolver) (any, error) {
			middleware++
			return next(ctx)
		},
	}
	field := field("email")
	m := resolve(ctx, oc, field,
		func(_ context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
			return &graphql.FieldContext{Object: "User", Field: field, NonNull: fieldNonNull}, nil
		},
		func(context.Context) (any, error) { return value, nil },
		nil,
		func(_ context.Context, _ ast.SelectionSet, v *string) graphql.Marshaler { return marshal(v) },
		true, nonNull)
	var buf bytes.Buffer
	require.NotNil(t, m)
	if m != graphql.RequiredNull {
		m.MarshalGQL(&buf)
	}
	return buf.String(), graphql.GetErrors(ctx), middleware
}

// A plain struct field resolves as with gqlgen, without the field
// middleware: its value, a null, a null where the schema forbids one, a
// panic while marshalling.
func TestResolvePlainFieldAnswersAsGqlgenWithoutMiddleware(t *testing.T) {
	t.Parallel()
	ann := "ann@example.com"
	marshalString := func(v *string) graphql.Marshaler {
		if v == nil {
			return graphql.Null
		}
		return graphql.MarshalString(*v)
	}
	for name, c := range map[string]struct {
		value                 *string
		fieldNonNull, nonNull bool
		marshal               func(v *string) graphql.Marshaler
		wantJSON              string
	}{
		"value":                      {value: &ann, nonNull: true, marshal: marshalString, wantJSON: `"ann@example.com"`},
		"nullable null":              {marshal: marshalString, wantJSON: `null`},
		"null in a non-null":         {nonNull: true, fieldNonNull: true, marshal: marshalString, wantJSON: `null`},
		"null in a field's non-null": {fieldNonNull: true, marshal: marshalString, wantJSON: `null`},
		"marshaller panics":          {value: &ann, marshal: func(*string) graphql.Marshaler { panic("boom") }, wantJSON: `null`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wantJSON, wantErrs, wantMiddleware := resolved(t, graphql.ResolveField[*string], c.value, c.fieldNonNull, c.nonNull, c.marshal)
			gotJSON, gotErrs, gotMiddleware := resolved(t, gqlexec.ResolvePlainField[*string], c.value, c.fieldNonNull, c.nonNull, c.marshal)
			assert.Equal(t, c.wantJSON, wantJSON, "gqlgen")
			assert.Equal(t, wantJSON, gotJSON)
			assert.Equal(t, wantErrs, gotErrs)
			assert.Equal(t, 1, wantMiddleware, "gqlgen")
			assert.Zero(t, gotMiddleware)
		})
	}
}

func TestResolvePlainFieldRefusesDirectives(t *testing.T) {
	t.Parallel()
	ctx, _ := requestContext()
	assert.Panics(t, func() {
		gqlexec.ResolvePlainField(ctx, &graphql.OperationContext{}, field("email"),
			func(_ context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
				return &graphql.FieldContext{Object: "User", Field: field}, nil
			},
			func(context.Context) (any, error) { return "ann", nil },
			func(ctx context.Context, next graphql.Resolver) graphql.Resolver { return next },
			func(_ context.Context, _ ast.SelectionSet, v string) graphql.Marshaler {
				return graphql.MarshalString(v)
			},
			false, true)
	})
}

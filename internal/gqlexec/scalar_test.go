package gqlexec_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dirsync/dirsync/internal/gqlexec"
)

// scalarField is a plain scalar field as the executor passes it: its value or
// error from the resolver, what its marshaller does, whether its type is
// non-null.
type scalarField[T any] struct {
	value          T
	err            error
	resolverPanics bool
	marshal        func(v T) graphql.Marshaler
	nonNull        bool
}

// answer is what resolving a field leaves behind: the JSON written, whether
// it was the RequiredNull, the errors on the response, and what the recover
// function saw of the field (its path, object, name and result).
type answer struct {
	json         string
	requiredNull bool
	errs         gqlerror.List
	recovered    []string
	recoveredRes []any
}

func resolveScalar[T any](t *testing.T, gqlgen bool, f scalarField[T]) answer {
	t.Helper()
	ctx, _ := requestContext()
	var a answer
	oc := &graphql.OperationContext{
		RecoverFunc: func(ctx context.Context, r any) error {
			fc := graphql.GetFieldContext(ctx)
			a.recovered = append(a.recovered, fc.Path().String()+" "+fc.Object+"."+fc.Field.Name)
			a.recoveredRes = append(a.recoveredRes, fc.Result)
			return quietRecover(ctx, r)
		},
		ResolverMiddleware: func(ctx context.Context, next graphql.Resolver) (any, error) { return next(ctx) },
	}
	initialize := func(_ context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
		return graphql.NewScalarFieldContext("User", field, false, false, "String")
	}
	resolver := func(context.Context) (T, error) {
		if f.resolverPanics {
			panic("resolver boom")
		}
		return f.value, f.err
	}
	marshal := func(_ context.Context, _ ast.SelectionSet, v T) graphql.Marshaler { return f.marshal(v) }
	var m graphql.Marshaler
	if gqlgen {
		m = graphql.ResolveField(ctx, oc, field("email"), initialize,
			func(ctx context.Context) (any, error) { return resolver(ctx) },
			nil, marshal, true, f.nonNull)
	} else {
		m = gqlexec.PlainScalar(ctx, oc, field("email"), initialize, resolver, nil, marshal, true, f.nonNull)
	}
	require.NotNil(t, m)
	if m == graphql.RequiredNull {
		a.requiredNull = true
	} else {
		var buf bytes.Buffer
		m.MarshalGQL(&buf)
		a.json = buf.String()
	}
	a.errs = graphql.GetErrors(ctx)
	return a
}

func marshalString(v string) graphql.Marshaler { return graphql.MarshalString(v) }

func marshalStringPtr(v *string) graphql.Marshaler {
	if v == nil {
		return graphql.Null
	}
	return graphql.MarshalString(*v)
}

func marshalAny(v any) graphql.Marshaler {
	if v == nil {
		return graphql.Null
	}
	return graphql.MarshalAny(v)
}

// A plain scalar field answers as gqlgen's ResolveField does, and the recover
// function sees the same field context: a value, a nil pointer, a nil
// interface in a nullable and a non-null field, a resolver error, a panic in
// the resolver and in the marshaller.
func TestPlainScalarAnswersAsGqlgen(t *testing.T) {
	t.Parallel()
	ann := "ann@example.com"
	check := func(t *testing.T, wantJSON string, wantErrs int, gqlgen, got answer) {
		t.Helper()
		assert.Equal(t, wantJSON, gqlgen.json, "gqlgen")
		assert.Len(t, gqlgen.errs, wantErrs, "gqlgen")
		assert.Equal(t, gqlgen, got)
	}
	for name, c := range map[string]struct {
		f        scalarField[string]
		wantJSON string
		wantErrs int
	}{
		"value":             {f: scalarField[string]{value: ann, marshal: marshalString, nonNull: true}, wantJSON: `"ann@example.com"`},
		"escaped value":     {f: scalarField[string]{value: "a\"b\n", marshal: marshalString}, wantJSON: `"a\"b\n"`},
		"resolver error":    {f: scalarField[string]{err: errors.New("denied"), marshal: marshalString, nonNull: true}, wantJSON: `null`, wantErrs: 1},
		"resolver panics":   {f: scalarField[string]{resolverPanics: true, marshal: marshalString, nonNull: true}, wantJSON: `null`, wantErrs: 1},
		"marshaller panics": {f: scalarField[string]{value: ann, marshal: func(string) graphql.Marshaler { panic("boom") }}, wantJSON: `null`, wantErrs: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check(t, c.wantJSON, c.wantErrs, resolveScalar(t, true, c.f), resolveScalar(t, false, c.f))
		})
	}
	for name, c := range map[string]struct {
		f        scalarField[*string]
		wantJSON string
	}{
		"pointer":     {f: scalarField[*string]{value: &ann, marshal: marshalStringPtr}, wantJSON: `"ann@example.com"`},
		"nil pointer": {f: scalarField[*string]{marshal: marshalStringPtr}, wantJSON: `null`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check(t, c.wantJSON, 0, resolveScalar(t, true, c.f), resolveScalar(t, false, c.f))
		})
	}
	for name, c := range map[string]struct {
		f        scalarField[any]
		wantJSON string
		wantErrs int
	}{
		"interface":                 {f: scalarField[any]{value: "x", marshal: marshalAny, nonNull: true}, wantJSON: "\"x\"\n"}, // json.Encoder's newline
		"nil interface":             {f: scalarField[any]{marshal: marshalAny}, wantJSON: `null`},
		"nil interface in non-null": {f: scalarField[any]{marshal: marshalAny, nonNull: true}, wantJSON: `null`, wantErrs: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check(t, c.wantJSON, c.wantErrs, resolveScalar(t, true, c.f), resolveScalar(t, false, c.f))
		})
	}
}

// The errors are on the field's path under its parent's, as gqlgen reports
// them (the comparison above would pass with both wrong).
func TestPlainScalarReportsOnTheFieldsPath(t *testing.T) {
	t.Parallel()
	for _, f := range []scalarField[string]{
		{err: errors.New("denied"), marshal: marshalString},
		{resolverPanics: true, marshal: marshalString},
		{value: "v", marshal: func(string) graphql.Marshaler { panic("boom") }},
	} {
		got := resolveScalar(t, false, f)
		require.Len(t, got.errs, 1)
		assert.Equal(t, "groups.email", got.errs[0].Path.String())
	}
	got := resolveScalar(t, false, scalarField[string]{value: "v", marshal: func(string) graphql.Marshaler { panic("boom") }})
	assert.Equal(t, []string{"groups.email User.email"}, got.recovered)
	assert.Equal(t, []any{"v"}, got.recoveredRes, "the recover function sees the value being marshalled")
}

// Without the panic handler a panic goes up, as with gqlgen.
func TestPlainScalarLeavesPanicsWithoutHandler(t *testing.T) {
	t.Parallel()
	ctx, _ := requestContext()
	assert.PanicsWithValue(t, "boom", func() {
		gqlexec.PlainScalar(ctx, &graphql.OperationContext{}, field("email"),
			func(_ context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
				return graphql.NewScalarFieldContext("User", field, false, false, "String")
			},
			func(context.Context) (string, error) { panic("boom") },
			nil, func(_ context.Context, _ ast.SelectionSet, v string) graphql.Marshaler {
				return graphql.MarshalString(v)
			},
			false, true)
	})
}

func TestPlainScalarRefusesDirectives(t *testing.T) {
	t.Parallel()
	ctx, _ := requestContext()
	assert.Panics(t, func() {
		gqlexec.PlainScalar(ctx, &graphql.OperationContext{}, field("email"),
			func(_ context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
				return graphql.NewScalarFieldContext("User", field, false, false, "String")
			},
			func(context.Context) (string, error) { return "ann", nil },
			func(ctx context.Context, next graphql.Resolver) graphql.Resolver { return next },
			func(_ context.Context, _ ast.SelectionSet, v string) graphql.Marshaler {
				return graphql.MarshalString(v)
			},
			false, true)
	})
}

// A field that marshals allocates nothing of its own: no field context, no
// context, no boxed value; only what its marshaller allocates (nothing here).
func TestPlainScalarAllocatesNothingForAValue(t *testing.T) {
	ctx, _ := requestContext()
	oc := &graphql.OperationContext{RecoverFunc: quietRecover}
	f := field("email")
	obj := &struct {
		Name  string
		Email *string
		Tags  []string
	}{Name: "ann", Tags: []string{"a"}}
	m := graphql.MarshalString("x")
	initialize := func(_ context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
		return graphql.NewScalarFieldContext("User", field, false, false, "String")
	}
	allocs := testing.AllocsPerRun(100, func() {
		gqlexec.PlainScalar(ctx, oc, f, initialize,
			func(context.Context) (string, error) { return obj.Name, nil },
			nil, func(context.Context, ast.SelectionSet, string) graphql.Marshaler { return m }, true, true)
		gqlexec.PlainScalar(ctx, oc, f, initialize,
			func(context.Context) (*string, error) { return obj.Email, nil },
			nil, func(context.Context, ast.SelectionSet, *string) graphql.Marshaler { return m }, true, false)
		gqlexec.PlainScalar(ctx, oc, f, initialize,
			func(context.Context) ([]string, error) { return obj.Tags, nil },
			nil, func(context.Context, ast.SelectionSet, []string) graphql.Marshaler { return m }, true, false)
	})
	assert.Zero(t, allocs)
}

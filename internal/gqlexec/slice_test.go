package gqlexec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dirsync/dirsync/internal/gqlexec"
)

// requestContext is what gqlgen's executor gives a list: a response context
// collecting errors and the list field's own FieldContext.
func requestContext() (context.Context, *graphql.FieldContext) {
	ctx := graphql.WithResponseContext(context.Background(), func(ctx context.Context, err error) *gqlerror.Error {
		return graphql.DefaultErrorPresenter(ctx, err)
	}, quietRecover)
	list := &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Alias: "groups", Name: "groups"}}}
	return graphql.WithFieldContext(ctx, list), list
}

// quietRecover answers as graphql.DefaultRecover without printing the stack.
func quietRecover(context.Context, any) error { return errors.New("internal system error") }

func marshalled(t *testing.T, m graphql.Marshaler) string {
	t.Helper()
	var buf bytes.Buffer
	m.MarshalGQL(&buf)
	return buf.String()
}

func TestMarshalSliceKeepsOrderAndIndexes(t *testing.T) {
	t.Parallel()
	ctx, list := requestContext()
	var calls []int
	ret := gqlexec.MarshalSlice(ctx, 5, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
		calls = append(calls, i)
		fc := graphql.GetFieldContext(ctx)
		require.NotNil(t, fc)
		require.NotNil(t, fc.Index)
		assert.Equal(t, i, *fc.Index)
		assert.Same(t, list, fc.Parent, "an element's context is a child of the list's")
		assert.Equal(t, ast.Path{ast.PathName("groups"), ast.PathIndex(i)}, fc.Path())
		return graphql.MarshalString(fmt.Sprintf("g%d", i))
	})
	assert.Equal(t, []int{0, 1, 2, 3, 4}, calls, "one after the other, in order")
	assert.Equal(t, `["g0","g1","g2","g3","g4"]`, marshalled(t, ret))
	assert.Empty(t, graphql.GetErrors(ctx))

	assert.Equal(t, graphql.Array{}, gqlexec.MarshalSlice(ctx, 0, 0, false, func(context.Context, int) graphql.Marshaler {
		t.Fatal("no element to marshal")
		return nil
	}))
}

// A panic in one element is an error on that element's path and a null in
// its place; the other elements are kept. The generated caller then nulls
// the whole list when its elements are non-null, as it does for an element
// whose resolver failed.
func TestMarshalSliceRecoversAPanicIntoAnError(t *testing.T) {
	t.Parallel()
	ctx, _ := requestContext()
	ret := gqlexec.MarshalSlice(ctx, 3, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
		if i == 1 {
			panic("boom")
		}
		return graphql.MarshalString("ok")
	})
	assert.Equal(t, `["ok",null,"ok"]`, marshalled(t, ret))
	errs := graphql.GetErrors(ctx)
	require.Len(t, errs, 1)
	assert.Equal(t, ast.Path{ast.PathName("groups"), ast.PathIndex(1)}, errs[0].Path)
	assert.Equal(t, "internal system error", errs[0].Message)

	assert.Equal(t, graphql.Null, nonNullList(ret), "a list of non-null elements holding a null is null")
	assert.Equal(t, `["ok","ok"]`, marshalled(t, nonNullList(gqlexec.MarshalSlice(ctx, 2, 0, false, func(context.Context, int) graphql.Marshaler {
		return graphql.MarshalString("ok")
	}))))
}

// nonNullList is the check gqlgen generates after marshalling a list whose
// elements are non-null (codegen/type.gotpl).
func nonNullList(ret graphql.Array) graphql.Marshaler {
	for _, e := range ret {
		if e == graphql.Null {
			return graphql.Null
		}
	}
	return ret
}

func TestMarshalSliceWithoutPanicHandlerLetsPanicsThrough(t *testing.T) {
	t.Parallel()
	ctx, _ := requestContext()
	assert.PanicsWithValue(t, "boom", func() {
		gqlexec.MarshalSlice(ctx, 2, 0, true, func(context.Context, int) graphql.Marshaler { panic("boom") })
	})
}

// With a worker limit, as gqlgen, elements not started when the context is
// cancelled are null and the cancellation is reported once; without one,
// every element is marshalled.
func TestMarshalSliceStopsOnCancellationWithAWorkerLimit(t *testing.T) {
	t.Parallel()
	base, _ := requestContext()
	ctx, cancel := context.WithCancel(base)
	ret := gqlexec.MarshalSlice(ctx, 4, 2, false, func(_ context.Context, i int) graphql.Marshaler {
		if i == 1 {
			cancel()
		}
		return graphql.MarshalString("ok")
	})
	assert.Equal(t, `["ok","ok",null,null]`, marshalled(t, ret))
	errs := graphql.GetErrors(ctx)
	require.Len(t, errs, 1)
	assert.Equal(t, ast.Path{ast.PathName("groups"), ast.PathIndex(2)}, errs[0].Path)
	assert.Equal(t, context.Canceled.Error(), errs[0].Message)

	ret = gqlexec.MarshalSlice(ctx, 2, 0, false, func(context.Context, int) graphql.Marshaler {
		return graphql.MarshalString("ok")
	})
	assert.Equal(t, `["ok","ok"]`, marshalled(t, ret))
}

// An element's context is what graphql.WithFieldContext would make: the
// element's FieldContext for graphql.GetFieldContext (a parent for the
// element's fields), everything else from the list's context, cancellation
// included.
func TestMarshalSliceElementContextIsAFieldContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	base, list := requestContext()
	ctx, cancel := context.WithCancel(context.WithValue(base, key{}, "v"))
	gqlexec.MarshalSlice(ctx, 2, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
		fc := graphql.GetFieldContext(ctx)
		require.NotNil(t, fc)
		assert.Same(t, list, fc.Parent)
		assert.Equal(t, "v", ctx.Value(key{}))
		child := &graphql.FieldContext{Field: field("name")}
		childCtx := graphql.WithFieldContext(ctx, child)
		assert.Same(t, fc, child.Parent)
		assert.Equal(t, ast.Path{ast.PathName("groups"), ast.PathIndex(i), ast.PathName("name")}, child.Path())
		assert.Same(t, child, graphql.GetFieldContext(childCtx))
		if i == 1 {
			require.NoError(t, ctx.Err())
			cancel()
			<-ctx.Done()
			assert.ErrorIs(t, ctx.Err(), context.Canceled)
			derived, stop := context.WithCancel(ctx)
			defer stop()
			assert.ErrorIs(t, derived.Err(), context.Canceled, "a context derived from an element's is cancelled with it")
		}
		return graphql.Null
	})
}

// Package gqlexec holds what dirsync's gqlgen executor calls instead of parts
// of gqlgen's runtime. ent/entc.go rewrites the generated executor to call it.
package gqlexec

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalSlice marshals the elements of a list one after the other, in the
// calling goroutine. It takes the place of graphql.MarshalSliceConcurrently,
// with the same signature and results, because gqlgen starts a goroutine per
// element there: a page of 100 users with 10 groups each is about 1,200
// goroutines per request, each growing its stack by copying, which cost more
// CPU than everything else the request does (issue 12, docs/benchmarks.md).
// Marshalling an element is CPU work on rows already loaded (entgql
// eager-loads edges), so running elements at once bought nothing but that
// overhead. A resolver that does I/O per element now waits for the previous
// element's; none of ours batches across elements (no dataloader), so none
// depends on running at the same time as its siblings.
//
// As in gqlgen: every element gets its own FieldContext carrying its index; a
// panic while marshalling an element is recovered (unless omitPanicHandler),
// reported as an error on that element's path, and leaves Null in its place,
// so a nullable element reads null and the caller's non-null check nulls a
// list of non-null elements. With a workerLimit, gqlgen stops starting
// elements once ctx is cancelled, reporting ctx.Err() once and leaving Null in
// the rest; so does this (one element at a time never exceeds any limit).
func MarshalSlice(
	ctx context.Context,
	length int,
	workerLimit int64,
	omitPanicHandler bool,
	marshalElement func(ctx context.Context, i int) graphql.Marshaler,
) graphql.Array {
	ret := make(graphql.Array, length)
	if length == 0 {
		return ret
	}
	// One allocation for all the elements' contexts instead of three per
	// element (FieldContext, index, context.WithValue): a child field's
	// FieldContext points at its element's, so each needs its own, but they
	// live exactly as long as the request.
	elems := make([]elementContext, length)
	parent := graphql.GetFieldContext(ctx)
	for i := range length {
		e := &elems[i]
		e.Context, e.index = ctx, i
		e.fc.Index, e.fc.Parent = &e.index, parent
		childCtx := context.Context(e)
		if workerLimit > 0 {
			if err := ctx.Err(); err != nil {
				graphql.AddError(childCtx, err)
				for j := i; j < length; j++ {
					ret[j] = graphql.Null
				}
				break
			}
		}
		if omitPanicHandler {
			ret[i] = marshalElement(childCtx, i)
		} else {
			ret[i] = marshalRecovering(childCtx, i, marshalElement)
		}
	}
	return ret
}

// marshalRecovering marshals element i, turning a panic into an error on the
// element's path and a Null.
func marshalRecovering(ctx context.Context, i int, marshalElement func(ctx context.Context, i int) graphql.Marshaler) (m graphql.Marshaler) {
	defer func() {
		if r := recover(); r != nil {
			graphql.AddError(ctx, graphql.Recover(ctx, r))
			m = graphql.Null
		}
	}()
	return marshalElement(ctx, i)
}

// elementContext is a list element's context: as
// graphql.WithFieldContext(ctx, &fc) with fc.Index = &index, in one object.
type elementContext struct {
	context.Context
	fc    graphql.FieldContext
	index int
}

// Value answers graphql.GetFieldContext with the element's FieldContext, and
// every other key from the list's context.
func (c *elementContext) Value(key any) any {
	if key == fieldContextKey {
		return &c.fc
	}
	return c.Context.Value(key)
}

// fieldContextKey is the key graphql.WithFieldContext stores a FieldContext
// under (unexported), as graphql.GetFieldContext asks for it.
var fieldContextKey = func() any {
	var probe keyProbe
	graphql.GetFieldContext(&probe)
	if probe.key == nil {
		panic("gqlexec: graphql.GetFieldContext asks its context for no key")
	}
	return probe.key
}()

// keyProbe records the key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}

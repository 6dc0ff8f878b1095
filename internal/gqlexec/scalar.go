package gqlexec

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// PlainScalar takes the place of ResolvePlainField for a plain struct field
// of a scalar or enum type whose marshaller cannot fail: it answers the same
// but builds the field's context only when an error, a null or a panic needs
// it. A response is mostly such fields (listing 100 users with their groups:
// 1,300 of them); for each, gqlgen allocates a FieldContext and its Child
// closure, a context.Context holding it, and boxes the value twice (the
// resolver's `any` result and FieldContext.Result): five of the six
// allocations of a field, none of them read when the value marshals (issue 12).
//
// The arguments are ResolvePlainField's, with the resolver returning the
// value as T rather than as any. ent/entc.go rewrites a field to this only when
// what its context would be needed for cannot happen, and so must every other
// caller:
//   - initializeFieldContext cannot fail (it is graphql.NewScalarFieldContext),
//     since a failure would have answered null without resolving the field;
//   - marshal does not use its context, which is the parent field's here
//     (a marshaller that can answer null reports it on the context's path);
//   - middlewareChain is nil, as for ResolvePlainField.
//
// On the error, null and panic paths the field context is built as gqlgen
// builds it, on the same parent, so errors carry the same path and message,
// and the recover function sees the same FieldContext (with Result set when
// the panic happened while marshalling).
func PlainScalar[T any](
	ctx context.Context,
	oc *graphql.OperationContext,
	field graphql.CollectedField,
	initializeFieldContext func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error),
	fieldResolver func(ctx context.Context) (T, error),
	middlewareChain func(ctx context.Context, next graphql.Resolver) graphql.Resolver,
	marshal func(ctx context.Context, sel ast.SelectionSet, v T) graphql.Marshaler,
	recoverFromPanic bool,
	nonNull bool,
) (ret graphql.Marshaler) {
	if middlewareChain != nil {
		panic("gqlexec.PlainScalar: a field with directives")
	}
	var (
		res      T
		resolved bool
	)
	if recoverFromPanic {
		defer func() {
			if r := recover(); r != nil {
				ret = graphql.Null
				fc, fctx, ok := fieldContext(ctx, field, initializeFieldContext)
				if !ok {
					return
				}
				if resolved {
					fc.Result = res
				}
				oc.Error(fctx, oc.Recover(fctx, r))
			}
		}()
	}
	res, err := fieldResolver(ctx)
	if err != nil {
		fc, fctx, ok := fieldContext(ctx, field, initializeFieldContext)
		if !ok {
			return graphql.Null
		}
		return resolverFailed(fctx, oc, fc, err, nonNull)
	}
	if isNil(res) {
		// Only an interface-typed value can be nil here, as with gqlgen's
		// `any` result: a nil pointer or slice is a non-nil `any`.
		fc, fctx, ok := fieldContext(ctx, field, initializeFieldContext)
		if !ok {
			return graphql.Null
		}
		return resolvedNull(fctx, fc, nonNull)
	}
	resolved = true
	return marshal(ctx, field.Selections, res)
}

// fieldContext builds the field's context as graphql.ResolveField does, on
// its parent's.
func fieldContext(
	ctx context.Context,
	field graphql.CollectedField,
	initializeFieldContext func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error),
) (*graphql.FieldContext, context.Context, bool) {
	fc, err := initializeFieldContext(ctx, field)
	if err != nil {
		return nil, nil, false
	}
	return fc, graphql.WithFieldContext(ctx, fc), true
}

// isNil tells whether v, converted to any, is nil: only when T is an
// interface type and v is nil.
func isNil[T any](v T) bool {
	return any(v) == nil
}

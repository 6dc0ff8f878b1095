package gqlexec

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// ResolvePlainField takes the place of graphql.ResolveField for a plain
// struct field (the generated resolver is `return obj.Field, nil`, with no
// directive): the same field context, panic recovery, null checks and
// marshalling, but without the operation's field middleware. gqlgen calls
// that middleware for every field of every row, through closures allocated
// per call, although none of ours applies to a plain struct field (internal/api
// resolvingFields passes them straight through): a third of the fields of
// listing 100 users with their groups, and a tenth of its allocations
// (issue 12). A field middleware that must see plain struct fields cannot be
// added while ent/entc.go rewrites them to this. middlewareChain, a field's
// directives, must be nil: the rewrite leaves fields with directives to gqlgen.
func ResolvePlainField[T any](
	ctx context.Context,
	oc *graphql.OperationContext,
	field graphql.CollectedField,
	initializeFieldContext func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error),
	fieldResolver func(ctx context.Context) (any, error),
	middlewareChain func(ctx context.Context, next graphql.Resolver) graphql.Resolver,
	marshal func(ctx context.Context, sel ast.SelectionSet, v T) graphql.Marshaler,
	recoverFromPanic bool,
	nonNull bool,
) (ret graphql.Marshaler) {
	fc, err := initializeFieldContext(ctx, field)
	if err != nil {
		return graphql.Null
	}
	ctx = graphql.WithFieldContext(ctx, fc)
	if recoverFromPanic {
		defer func() {
			if r := recover(); r != nil {
				oc.Error(ctx, oc.Recover(ctx, r))
				ret = graphql.Null
			}
		}()
	}
	if middlewareChain != nil {
		// A directive's chain: ent/entc.go leaves such fields to gqlgen.
		// Not handing fieldResolver on lets it stay on the caller's stack.
		panic("gqlexec.ResolvePlainField: a field with directives")
	}
	res, err := fieldResolver(ctx)
	if err != nil {
		return resolverFailed(ctx, oc, fc, err, nonNull)
	}
	if res == nil {
		return resolvedNull(ctx, fc, nonNull)
	}
	v, ok := res.(T)
	if !ok {
		var want T
		graphql.AddErrorf(ctx, `unexpected type %T from the field, should be %T`, res, want)
		return graphql.Null
	}
	fc.Result = v
	return marshal(ctx, field.Selections, v)
}

// resolverFailed answers, as graphql.ResolveField does, for a field whose
// resolver returned err; ctx carries fc.
func resolverFailed(ctx context.Context, oc *graphql.OperationContext, fc *graphql.FieldContext, err error, nonNull bool) graphql.Marshaler {
	oc.Error(ctx, graphql.AddFieldLocationToError(ctx, err))
	return nullFor(fc, nonNull)
}

// resolvedNull answers, as graphql.ResolveField does, for a field whose
// resolver returned nil; ctx carries fc.
func resolvedNull(ctx context.Context, fc *graphql.FieldContext, nonNull bool) graphql.Marshaler {
	if nonNull || fc.NonNull {
		graphql.AddInvalidNullError(ctx, "")
	}
	return nullFor(fc, nonNull)
}

// nullFor is the null a field answers: RequiredNull when the field is
// non-null but its marshaller is not, so the parent nulls itself.
func nullFor(fc *graphql.FieldContext, nonNull bool) graphql.Marshaler {
	if fc.NonNull && !nonNull {
		return graphql.RequiredNull
	}
	return graphql.Null
}

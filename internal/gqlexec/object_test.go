package gqlexec_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dirsync/dirsync/internal/gqlexec"
)

// Object and FieldSet write what gqlgen's FieldSet writes: the fields in
// order, null where a field is null, a repeated alias once (its first value).
func TestObjectWritesWhatTheFieldSetWrites(t *testing.T) {
	t.Parallel()
	for name, fields := range map[string][]graphql.CollectedField{
		"plain":                  {field("id"), field("name"), field("groups")},
		"repeated alias":         {field("id"), field("name"), field("id")},
		"one field":              {field("id")},
		"five fields":            {field("a"), field("b"), field("c"), field("a"), field("e")},
		"repeated past the scan": append(manyFields(40), field("f1")),
		"no field":               {},
		"past the scan":          manyFields(40),
		"escaped content":        {field("q")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			values := make([]graphql.Marshaler, len(fields))
			for i := range values {
				values[i] = graphql.MarshalString(fmt.Sprintf("v%d \"quoted\"", i))
			}
			if len(values) > 2 {
				values[1] = graphql.Null
			}
			want, got, own := graphql.NewFieldSet(fields), graphql.NewFieldSet(fields), gqlexec.NewFieldSet(fields)
			copy(want.Values, values)
			copy(got.Values, values)
			require.Len(t, own.Values, len(fields))
			copy(own.Values, values)
			own.Dispatch(context.Background())
			var wantBuf, gotBuf, ownBuf bytes.Buffer
			want.MarshalGQL(&wantBuf)
			gqlexec.Object(fields, got).MarshalGQL(&gotBuf)
			own.MarshalGQL(&ownBuf)
			assert.Equal(t, wantBuf.String(), gotBuf.String())
			assert.Equal(t, wantBuf.String(), ownBuf.String(), "FieldSet")
		})
	}
}

func manyFields(n int) []graphql.CollectedField {
	fields := make([]graphql.CollectedField, n)
	for i := range fields {
		fields[i] = field(fmt.Sprintf("f%d", i%30))
	}
	return fields
}

// A FieldSet of up to four fields is one allocation.
func TestFieldSetIsOneAllocation(t *testing.T) {
	fields := []graphql.CollectedField{field("node"), field("cursor")}
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() {
		s := gqlexec.NewFieldSet(fields)
		s.Values[0], s.Values[1] = graphql.Null, graphql.Null
	}))
}

// fieldSet is what an object's marshaller needs of its field set.
type fieldSet interface {
	graphql.Marshaler
	ResolveConcurrently(oc *graphql.OperationContext, deferred *graphql.DeferredGroup, i int, recoverFromPanic, nonNull bool, resolve func(ctx context.Context) graphql.Marshaler)
	ResolveRootConcurrently(ctx context.Context, oc *graphql.OperationContext, i int, recoverFromPanic, nonNull bool, resolve func(ctx context.Context) graphql.Marshaler)
	Dispatch(ctx context.Context)
}

// A FieldSet resolves the fields scheduled on it as gqlgen's does: their
// values in place, a null in a non-null field or a panic counted invalid, a
// panic reported, a deferred field left to its group, root fields under the
// root middleware.
func TestFieldSetResolvesScheduledFieldsAsGqlgen(t *testing.T) {
	t.Parallel()
	fields := []graphql.CollectedField{field("id"), field("a"), field("b"), field("c"), field("d", &graphql.Deferrable{Label: "later"}), field("e")}
	for name, schedule := range map[string]func(ctx context.Context, oc *graphql.OperationContext, deferred *graphql.DeferredGroup, s fieldSet){
		"none": func(context.Context, *graphql.OperationContext, *graphql.DeferredGroup, fieldSet) {},
		"one value": func(_ context.Context, oc *graphql.OperationContext, deferred *graphql.DeferredGroup, s fieldSet) {
			s.ResolveConcurrently(oc, deferred, 1, true, true, func(context.Context) graphql.Marshaler { return graphql.MarshalString("A") })
		},
		"values, a null, a panic, a deferred field": func(ctx context.Context, oc *graphql.OperationContext, deferred *graphql.DeferredGroup, s fieldSet) {
			s.ResolveConcurrently(oc, deferred, 1, true, true, func(context.Context) graphql.Marshaler { return graphql.MarshalString("A") })
			s.ResolveConcurrently(oc, deferred, 2, true, false, func(context.Context) graphql.Marshaler { return graphql.Null })
			s.ResolveConcurrently(oc, deferred, 3, true, true, func(context.Context) graphql.Marshaler { panic("boom") })
			s.ResolveConcurrently(oc, deferred, 4, true, true, func(context.Context) graphql.Marshaler { return graphql.MarshalString("D") })
			s.ResolveRootConcurrently(ctx, oc, 5, true, true, func(context.Context) graphql.Marshaler { return graphql.MarshalString("E") })
		},
		"a null in a non-null field": func(_ context.Context, oc *graphql.OperationContext, deferred *graphql.DeferredGroup, s fieldSet) {
			s.ResolveConcurrently(oc, deferred, 2, true, true, func(context.Context) graphql.Marshaler { return graphql.Null })
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run := func(own bool) (string, uint32, gqlerror.List, []string) {
				ctx, _ := requestContext()
				root := 0
				oc := &graphql.OperationContext{
					RecoverFunc: quietRecover,
					RootResolverMiddleware: func(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
						root++
						return next(ctx)
					},
				}
				deferred := graphql.NewDeferredGroup(ctx)
				var s fieldSet
				var values []graphql.Marshaler
				var invalids *uint32
				if own {
					fs := gqlexec.NewFieldSet(fields)
					s, values, invalids = fs, fs.Values, &fs.Invalids
				} else {
					fs := graphql.NewFieldSet(fields)
					s, values, invalids = fs, fs.Values, &fs.Invalids
				}
				for i := range values {
					values[i] = graphql.MarshalString("plain")
				}
				schedule(ctx, oc, &deferred, s)
				s.Dispatch(ctx)
				var buf bytes.Buffer
				s.MarshalGQL(&buf)
				var labels []string
				for label := range deferred.Defers {
					labels = append(labels, label)
				}
				return fmt.Sprintf("%s root:%d", buf.String(), root), *invalids, graphql.GetErrors(ctx), labels
			}
			wantJSON, wantInvalids, wantErrs, wantLabels := run(false)
			gotJSON, gotInvalids, gotErrs, gotLabels := run(true)
			assert.Equal(t, wantJSON, gotJSON)
			assert.Equal(t, wantInvalids, gotInvalids)
			assert.Equal(t, wantErrs, gotErrs)
			assert.Equal(t, wantLabels, gotLabels)
		})
	}
}

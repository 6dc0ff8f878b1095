package gqlexec_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

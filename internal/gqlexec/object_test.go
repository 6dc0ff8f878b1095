package gqlexec_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"

	"github.com/dirsync/dirsync/internal/gqlexec"
)

// Object writes what gqlgen's FieldSet writes: the fields in order, null
// where a field is null, a repeated alias once (its first value).
func TestObjectWritesWhatTheFieldSetWrites(t *testing.T) {
	t.Parallel()
	for name, fields := range map[string][]graphql.CollectedField{
		"plain":           {field("id"), field("name"), field("groups")},
		"repeated alias":  {field("id"), field("name"), field("id")},
		"one field":       {field("id")},
		"no field":        {},
		"past the scan":   manyFields(40),
		"escaped content": {field("q")},
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
			want, got := graphql.NewFieldSet(fields), graphql.NewFieldSet(fields)
			copy(want.Values, values)
			copy(got.Values, values)
			var wantBuf, gotBuf bytes.Buffer
			want.MarshalGQL(&wantBuf)
			gqlexec.Object(fields, got).MarshalGQL(&gotBuf)
			assert.Equal(t, wantBuf.String(), gotBuf.String())
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

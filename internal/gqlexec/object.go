package gqlexec

import (
	"io"

	"github.com/99designs/gqlgen/graphql"
)

// Object is what an object's marshaller returns instead of its
// *graphql.FieldSet once every field is resolved: the same JSON, written
// without the map of aliases already written and the copy of each collected
// field that FieldSet.MarshalGQL allocates per object (a quarter of the bytes
// allocated listing 100 users with their groups, issue 12). out must hold one
// value per field of fields, as graphql.NewFieldSet(fields) made it.
func Object(fields []graphql.CollectedField, out *graphql.FieldSet) graphql.Marshaler {
	if len(fields) > maxScannedFields {
		return out
	}
	return &object{fields: fields, values: out.Values}
}

// maxScannedFields bounds the fields an Object looks through for an alias
// already written; past it, gqlgen's map is cheaper.
const maxScannedFields = 32

type object struct {
	fields []graphql.CollectedField
	values []graphql.Marshaler
}

// MarshalGQL writes the fields in order; a field whose alias was already
// written is skipped, as gqlgen does (collected fields may repeat an alias
// when fragments on different types select it).
func (o *object) MarshalGQL(w io.Writer) {
	io.WriteString(w, "{")
	written := 0
	for i := range o.fields {
		alias := o.fields[i].Alias
		if repeated(o.fields[:i], alias) {
			continue
		}
		if written > 0 {
			io.WriteString(w, ",")
		}
		written++
		// An alias is a GraphQL name ([_A-Za-z][_0-9A-Za-z]*): nothing to escape.
		io.WriteString(w, `"`)
		io.WriteString(w, alias)
		io.WriteString(w, `":`)
		o.values[i].MarshalGQL(w)
	}
	io.WriteString(w, "}")
}

func repeated(before []graphql.CollectedField, alias string) bool {
	for i := range before {
		if before[i].Alias == alias {
			return true
		}
	}
	return false
}

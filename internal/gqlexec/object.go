package gqlexec

import (
	"context"
	"io"
	"sync/atomic"

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
	writeObject(w, o.fields, o.values)
}

// writeObject writes what graphql.FieldSet.MarshalGQL writes for fields and
// their values.
func writeObject(w io.Writer, fields []graphql.CollectedField, values []graphql.Marshaler) {
	var written map[string]struct{}
	if len(fields) > maxScannedFields {
		written = make(map[string]struct{}, len(fields))
	}
	io.WriteString(w, "{")
	n := 0
	for i := range fields {
		alias := fields[i].Alias
		if written != nil {
			if _, ok := written[alias]; ok {
				continue
			}
			written[alias] = struct{}{}
		} else if repeated(fields[:i], alias) {
			continue
		}
		if n > 0 {
			io.WriteString(w, ",")
		}
		n++
		// An alias is a GraphQL name ([_A-Za-z][_0-9A-Za-z]*): nothing to escape.
		io.WriteString(w, `"`)
		io.WriteString(w, alias)
		io.WriteString(w, `":`)
		values[i].MarshalGQL(w)
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

// FieldSet takes the place of graphql.FieldSet in an object's marshaller.
// The marshaller stores each field's value, counts the invalid ones, hands
// the fields with a resolver to ResolveConcurrently (or, for Query,
// ResolveRootConcurrently), dispatches them and returns the field set. Most
// objects of a list select no field with a resolver (edges, connections, a
// group's name: 2,200 objects when listing 100 users with their groups,
// issue 12), so this field set is one allocation, its values kept inline up
// to four fields, where gqlgen's field set, its values and the Object
// wrapping them are three; and it marshals itself as an Object does. A field
// with a resolver is scheduled on a graphql.FieldSet made for the purpose and
// sharing Values, which Dispatch runs as gqlgen does, adding the invalid
// fields it counts to Invalids. ent/entc.go rewrites an object's marshaller
// to it only when the marshaller uses its field set no other way.
type FieldSet struct {
	Values   []graphql.Marshaler
	Invalids uint32
	fields   []graphql.CollectedField
	// scheduled holds the fields that resolve concurrently; nil until one
	// is scheduled.
	scheduled *graphql.FieldSet
	inline    [4]graphql.Marshaler
}

// NewFieldSet is graphql.NewFieldSet for a FieldSet.
func NewFieldSet(fields []graphql.CollectedField) *FieldSet {
	s := &FieldSet{fields: fields}
	if len(fields) <= len(s.inline) {
		s.Values = s.inline[:len(fields):len(fields)]
	} else {
		s.Values = make([]graphql.Marshaler, len(fields))
	}
	return s
}

// concurrent returns the graphql.FieldSet the fields that resolve
// concurrently are scheduled on, writing their values into s.Values.
func (s *FieldSet) concurrent() *graphql.FieldSet {
	if s.scheduled == nil {
		s.scheduled = graphql.NewFieldSet(s.fields)
		s.scheduled.Values = s.Values
	}
	return s.scheduled
}

// ResolveConcurrently is graphql.FieldSet.ResolveConcurrently.
func (s *FieldSet) ResolveConcurrently(
	oc *graphql.OperationContext,
	deferred *graphql.DeferredGroup,
	i int,
	recoverFromPanic bool,
	nonNull bool,
	resolve func(ctx context.Context) graphql.Marshaler,
) {
	s.concurrent().ResolveConcurrently(oc, deferred, i, recoverFromPanic, nonNull, resolve)
}

// ResolveRootConcurrently is graphql.FieldSet.ResolveRootConcurrently.
func (s *FieldSet) ResolveRootConcurrently(
	ctx context.Context,
	oc *graphql.OperationContext,
	i int,
	recoverFromPanic bool,
	nonNull bool,
	resolve func(ctx context.Context) graphql.Marshaler,
) {
	s.concurrent().ResolveRootConcurrently(ctx, oc, i, recoverFromPanic, nonNull, resolve)
}

// Dispatch is graphql.FieldSet.Dispatch: it resolves the fields scheduled
// and, once they are, counts those invalid in Invalids.
func (s *FieldSet) Dispatch(ctx context.Context) {
	if s.scheduled == nil {
		return
	}
	s.scheduled.Dispatch(ctx)
	atomic.AddUint32(&s.Invalids, atomic.LoadUint32(&s.scheduled.Invalids))
}

// MarshalGQL writes what graphql.FieldSet.MarshalGQL writes.
func (s *FieldSet) MarshalGQL(w io.Writer) {
	writeObject(w, s.fields, s.Values)
}

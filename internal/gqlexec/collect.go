package gqlexec

import (
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// FieldsCache remembers, for one operation, what graphql.CollectFields
// answered for a selection set and a list of types. ent/entc.go adds one to
// the executor's executionContext (one per operation) and rewrites every
// object's marshaller to collect its fields through it. gqlgen caches the
// answer on the operation too, but finding it there costs each object a
// reflect.Value of the selection set (an allocation), a hash of the type
// names and a read lock: 2,300 times when listing 100 users with their groups
// (issue 12). Here it is a map lookup keyed by the selection set's and the
// type list's addresses, the same answer (gqlgen's own, asked once per key).
// The zero FieldsCache is ready for use; it is safe for concurrent use.
type FieldsCache struct {
	mu      sync.Mutex
	entries map[fieldsKey][]graphql.CollectedField
}

// fieldsKey identifies a selection set (a slice of the parsed operation) and
// a list of type names (the executor's xxxImplementors variables) by where
// their elements are and how many there are.
type fieldsKey struct {
	sel        *ast.Selection
	selLen     int
	satisfies  *string
	satisfiesN int
}

// CollectFields answers as graphql.CollectFields(oc, sel, satisfies). oc
// must be the operation's, the same on every call.
func (c *FieldsCache) CollectFields(oc *graphql.OperationContext, sel ast.SelectionSet, satisfies []string) []graphql.CollectedField {
	if len(sel) == 0 || len(satisfies) == 0 {
		return graphql.CollectFields(oc, sel, satisfies)
	}
	key := fieldsKey{sel: &sel[0], selLen: len(sel), satisfies: &satisfies[0], satisfiesN: len(satisfies)}
	c.mu.Lock()
	fields, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return fields
	}
	fields = graphql.CollectFields(oc, sel, satisfies)
	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[fieldsKey][]graphql.CollectedField)
	}
	c.entries[key] = fields
	c.mu.Unlock()
	return fields
}

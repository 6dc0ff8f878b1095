package graph

import (
	"context"
	"encoding/json"
	"math"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/dirsync/dirsync/internal/mapping"
)

// payloadJobs bounds the jobs a mutation payload lists: a mutation starts at
// most one job per kind of work it causes.
const payloadJobs = 10

// listRows bounds lists that are not connections and not paged, by
// "Type.field". A list not named here and not in a payload costs pageSize
// rows, so a new list field is never free.
var listRows = map[string]int{
	"Integration.attributeMappings": len(mapping.DirectoryAttributes),
	// A preview's differences are exported properties plus the few the
	// planner always writes (UPN, display name, password policy, enabled).
	"PlanItem.changes": len(mapping.DirectoryAttributes) + 4,
}

// pricedSchema prices every list by the rows it may return, so the
// complexity limit bounds the rows an operation can load, not just its
// length: a field costs 1 plus its children, a list or connection 1 plus its
// children times its rows. Rows are first/last of a connection (pageSize when
// absent, which is also what the connection then returns), the ids of
// nodes(ids:), or a fixed bound for the other lists. The arithmetic
// saturates: deep nesting must price at the maximum, never wrap around to a
// small or negative number that would let the operation through.
//
// It works from the schema rather than per-field functions, so a list field
// added later is priced without anyone remembering to.
type pricedSchema struct {
	graphql.ExecutableSchema
	pageSize int
}

// Complexity implements graphql.ExecutableSchema.
func (s pricedSchema) Complexity(ctx context.Context, typeName, fieldName string, child int, args map[string]any) (int, bool) {
	def := s.Schema().Types[typeName]
	if def == nil {
		return s.ExecutableSchema.Complexity(ctx, typeName, fieldName, child, args)
	}
	f := def.Fields.ForName(fieldName)
	if f == nil {
		return s.ExecutableSchema.Complexity(ctx, typeName, fieldName, child, args)
	}
	rows, ok := s.rows(typeName, f, args)
	if !ok {
		return s.ExecutableSchema.Complexity(ctx, typeName, fieldName, child, args)
	}
	return SaturatingAdd(1, SaturatingMul(max(child, 0), max(rows, 1))), true
}

// rows is how many rows field f of typeName may return; ok is false for a
// field that is not a list.
func (s pricedSchema) rows(typeName string, f *ast.FieldDefinition, args map[string]any) (int, bool) {
	if f.Arguments.ForName("first") != nil || f.Arguments.ForName("last") != nil {
		// A negative or oversized first/last is refused before it runs;
		// price it as a full page meanwhile.
		for _, name := range []string{"first", "last"} {
			if n, ok := intArg(args[name]); ok && n >= 0 {
				return n, true
			}
		}
		return s.pageSize, true
	}
	if f.Type.Elem == nil || strings.HasSuffix(typeName, "Connection") && f.Name == "edges" {
		// The connection field itself prices its page.
		return 0, false
	}
	if ids, ok := args["ids"].([]any); ok {
		return len(ids), true
	}
	if n, ok := listRows[typeName+"."+f.Name]; ok {
		return n, true
	}
	if strings.HasSuffix(typeName, "Payload") && f.Type.Name() == "Job" {
		return payloadJobs, true
	}
	return s.pageSize, true
}

// intArg reads an Int argument as the complexity walker hands it over
// (ArgumentMap: int64 from a literal or a JSON variable already coerced).
func intArg(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(min(max(n, math.MinInt32), math.MaxInt32)), true
	case *int:
		if n != nil {
			return *n, true
		}
	case float64:
		return int(min(max(n, math.MinInt32), math.MaxInt32)), true
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return intArg(i)
		}
	}
	return 0, false
}

// SaturatingAdd is a+b for non-negative operands, or math.MaxInt when that
// would overflow.
func SaturatingAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

// SaturatingMul is a*b for non-negative operands, or math.MaxInt when that
// would overflow.
func SaturatingMul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

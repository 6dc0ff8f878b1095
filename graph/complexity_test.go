package graph_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/dirsync/dirsync/graph"
)

// Every list field of the schema, connection or plain, costs its children
// times its rows: a list added later cannot be free (issue 8).
func TestEveryListIsPriced(t *testing.T) {
	es := graph.NewSchema(nil, 100, graph.Deps{})
	ctx := context.Background()
	priced := 0
	for _, def := range es.Schema().Types {
		if def.BuiltIn || (def.Kind != ast.Object && def.Kind != ast.Interface) || strings.HasPrefix(def.Name, "__") {
			continue
		}
		for _, f := range def.Fields {
			elem := es.Schema().Types[f.Type.Name()]
			isList := f.Type.Elem != nil && elem.Kind != ast.Scalar && elem.Kind != ast.Enum &&
				!(strings.HasSuffix(def.Name, "Connection") && f.Name == "edges")
			isConn := f.Arguments.ForName("first") != nil
			if !isList && !isConn {
				continue
			}
			c, ok := es.Complexity(ctx, def.Name, f.Name, 10, map[string]any{})
			require.True(t, ok, "%s.%s is not priced", def.Name, f.Name)
			require.GreaterOrEqual(t, c, 1+10*2, "%s.%s costs %d for children of 10", def.Name, f.Name, c)
			priced++
		}
	}
	require.GreaterOrEqual(t, priced, 20)

	// Connections by first/last, else the page size; nodes by its ids.
	cost := func(typ, field string, args map[string]any) int {
		c, ok := es.Complexity(ctx, typ, field, 3, args)
		require.True(t, ok)
		return c
	}
	require.Equal(t, 1+3*100, cost("Job", "items", map[string]any{}))
	require.Equal(t, 1+3*7, cost("Job", "items", map[string]any{"first": int64(7)}))
	require.Equal(t, 1+3*5, cost("User", "links", map[string]any{"last": int64(5)}))
	require.Equal(t, 1+3*2, cost("Query", "nodes", map[string]any{"ids": []any{"a", "b"}}))
	require.Equal(t, 1+3*100, cost("Query", "events", map[string]any{"first": int64(-1)}), "refused later; priced as a page meanwhile")
}

// Costs saturate at math.MaxInt: deep nesting must never wrap around to a
// small or negative number (a 53-level query was priced 1).
func TestComplexitySaturates(t *testing.T) {
	es := graph.NewSchema(nil, 100, graph.Deps{})
	for _, child := range []int{math.MaxInt / 99, math.MaxInt / 2, math.MaxInt - 1, math.MaxInt} {
		c, ok := es.Complexity(context.Background(), "UserGroup", "members", child, map[string]any{})
		require.True(t, ok)
		require.Equal(t, math.MaxInt, c, "child %d", child)
	}
	c := 1
	for range 60 {
		c, _ = es.Complexity(context.Background(), "User", "groups", c, map[string]any{"first": int64(64)})
		require.Positive(t, c)
	}
	require.Equal(t, math.MaxInt, c)
	require.Equal(t, math.MaxInt, graph.SaturatingAdd(math.MaxInt-1, 2))
	require.Equal(t, 0, graph.SaturatingMul(0, math.MaxInt))
}

// Package inputguard refuses GraphQL argument values that no resolver should
// have to think about, in one place for every field: NUL characters and
// invalid UTF-8 in any string (PostgreSQL cannot store or compare them, so
// they used to surface as INTERNAL errors from filters and ids), and an input
// object giving both `x` and `clearX` (ent would assign the column twice).
// Rules about what a value means stay in the domain packages.
package inputguard

import (
	"context"
	"sort"
	"strings"
	"unicode/utf8"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/dirsync/dirsync/ent/schema/pulid"

	"github.com/dirsync/dirsync/internal/gqlerr"
)

// Middleware checks, at each root field, the arguments of that field and of
// every field selected below it (fragments included), before its resolver
// runs: list resolvers load nested connections eagerly, so a nested
// argument reaches the database before the nested field's own resolver
// would. A refused value is BAD_USER_INPUT naming the input field.
func Middleware(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil || !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	switch fc.Object {
	case "Query", "Mutation", "Subscription":
	default:
		return next(ctx)
	}
	vars := graphql.GetOperationContext(ctx).Variables
	if err := checkField(fc.Field.Field, vars); err != nil {
		return nil, err
	}
	if err := checkSelections(fc.Field.Field.SelectionSet, vars, map[string]bool{}); err != nil {
		return nil, err
	}
	return next(ctx)
}

// checkSelections visits every field of set; a fragment is visited once, as
// its arguments do not depend on where it is spread.
func checkSelections(set ast.SelectionSet, vars map[string]any, seen map[string]bool) error {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if err := checkField(s, vars); err != nil {
				return err
			}
			if err := checkSelections(s.SelectionSet, vars, seen); err != nil {
				return err
			}
		case *ast.InlineFragment:
			if err := checkSelections(s.SelectionSet, vars, seen); err != nil {
				return err
			}
		case *ast.FragmentSpread:
			if seen[s.Name] || s.Definition == nil {
				continue
			}
			seen[s.Name] = true
			if err := checkSelections(s.Definition.SelectionSet, vars, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkField(f *ast.Field, vars map[string]any) error {
	if len(f.Arguments) == 0 {
		return nil
	}
	args := f.ArgumentMap(vars)
	if err := Check(args); err != nil {
		return err
	}
	if f.Definition == nil {
		return nil
	}
	// A cursor is an opaque string that decodes to an id and an order value,
	// which are compared in SQL: check what it carries, too.
	for _, def := range f.Definition.Arguments {
		if s, ok := args[def.Name].(string); ok && def.Type.Name() == "Cursor" {
			var c entgql.Cursor[pulid.ID]
			if c.UnmarshalGQL(s) != nil {
				continue // malformed: refused when the argument is decoded
			}
			if err := checkString(def.Name, string(c.ID)); err != nil {
				return err
			}
			if v, ok := c.Value.(string); ok {
				if err := checkString(def.Name, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Check walks raw argument values (as GraphQL sees them: maps, lists,
// scalars) and returns the first violation. Errors name the innermost input
// field, or the argument for a top-level value.
func Check(args map[string]any) error {
	return walk("", args)
}

func walk(field string, v any) error {
	switch v := v.(type) {
	case string:
		return checkString(field, v)
	case []any:
		for _, x := range v {
			if err := walk(field, x); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys) // the same request always names the same field
		for _, k := range keys {
			if err := checkSetAndClear(v, k); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := walk(k, v[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSetAndClear refuses clearX: true next to a non-null x in one object.
// clearX: false and x: null mean "not given" and pass.
func checkSetAndClear(obj map[string]any, key string) error {
	name, ok := strings.CutPrefix(key, "clear")
	if !ok || name == "" || obj[key] != true {
		return nil
	}
	set := strings.ToLower(name[:1]) + name[1:]
	if v, given := obj[set]; given && v != nil {
		return gqlerr.BadInput(set, "give %s or %s, not both", set, key)
	}
	return nil
}

func checkString(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return gqlerr.BadInput(field, "%s must not contain NUL characters", nameOr(field))
	}
	if !utf8.ValidString(s) {
		return gqlerr.BadInput(field, "%s must be valid UTF-8", nameOr(field))
	}
	return nil
}

func nameOr(field string) string {
	if field == "" {
		return "a value"
	}
	return field
}

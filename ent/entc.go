//go:build ignore

// entc.go generates the ent code, the GraphQL schema of the ent types and then
// the gqlgen executor, in that order, so one command keeps all three in step.
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"log"
	"os"
	"slices"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"
	"golang.org/x/tools/go/ast/astutil"
)

func main() {
	// entgql's templates with its field-collection template replaced by ours
	// (template/entgql_collection.tmpl: nested connection pages ordered).
	gqlTemplates := make([]*gen.Template, 0, len(entgql.AllTemplates))
	for _, t := range entgql.AllTemplates {
		if t == entgql.CollectionTemplate {
			t = gen.MustParse(gen.NewTemplate("template/entgql_collection.tmpl").Funcs(entgql.TemplateFuncs).ParseFiles("./template/entgql_collection.tmpl"))
		}
		gqlTemplates = append(gqlTemplates, t)
	}
	ex, err := entgql.NewExtension(
		entgql.WithTemplates(gqlTemplates...),
		entgql.WithConfigPath("../gqlgen.yml"),
		entgql.WithSchemaGenerator(),
		entgql.WithSchemaPath("../schema/ent.graphqls"),
		entgql.WithWhereInputs(true),
		entgql.WithNodeDescriptor(false),
	)
	if err != nil {
		log.Fatalf("creating entgql extension: %v", err)
	}
	templates := append(gqlTemplates,
		gen.MustParse(gen.NewTemplate("pulid").Funcs(entgql.TemplateFuncs).ParseFiles("./template/pulid.tmpl")))
	err = entc.Generate("./schema", &gen.Config{
		Features: []gen.Feature{
			gen.FeaturePrivacy,
			gen.FeatureEntQL,
			gen.FeatureIntercept,
			gen.FeatureSnapshot,
			gen.FeatureVersionedMigration,
			gen.FeatureUpsert,
			gen.FeatureLock,
			gen.FeatureModifier,
			gen.FeatureExecQuery,
		},
		Templates: templates,
	}, entc.Extensions(ex))
	if err != nil {
		log.Fatalf("running ent codegen: %v", err)
	}

	// gqlgen resolves the paths in gqlgen.yml relative to the working directory.
	if err := os.Chdir(".."); err != nil {
		log.Fatal(err)
	}
	cfg, err := config.LoadConfig("gqlgen.yml")
	if err != nil {
		log.Fatalf("loading gqlgen config: %v", err)
	}
	if err := api.Generate(cfg); err != nil {
		log.Fatalf("running gqlgen: %v", err)
	}
	// gqlgen runs its plugins before it writes the executor and has no option
	// for this, so the executor is rewritten once written.
	if err := rewriteExecutor(cfg.Exec.Filename); err != nil {
		log.Fatalf("rewriting the gqlgen executor: %v", err)
	}
}

// rewriteExecutor makes the executor call internal/gqlexec where gqlgen's
// runtime costs the most on long lists (issue 12, docs/benchmarks.md):
//   - list elements marshalled one after the other (gqlexec.MarshalSlice)
//     instead of in a goroutine each (graphql.MarshalSliceConcurrently);
//   - no @defer bookkeeping for an object without a deferred field
//     (gqlexec.NewDeferredGroup, given the object's collected fields);
//   - an object's fields written without a map per object (the
//     `return out` of an object's marshaller returns gqlexec.Object);
//   - plain struct fields resolved without the field middleware
//     (gqlexec.ResolvePlainField).
//
// It fails when a call to rewrite is missing, so that a gqlgen release
// generating something else does not silently bring the cost back.
func rewriteExecutor(filename string) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, nil, parser.ParseComments)
	if err != nil {
		return err
	}
	var lists, groups, objects, plain int
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		object := slices.ContainsFunc(fn.Body.List, isFieldSetOfFields)
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if ret, ok := n.(*ast.ReturnStmt); ok && object && len(ret.Results) == 1 {
				if out, ok := ret.Results[0].(*ast.Ident); ok && out.Name == "out" {
					ret.Results[0] = &ast.CallExpr{
						Fun:  &ast.SelectorExpr{X: ast.NewIdent("gqlexec"), Sel: ast.NewIdent("Object")},
						Args: []ast.Expr{ast.NewIdent("fields"), ast.NewIdent("out")},
					}
					objects++
				}
				return true
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			pkg, name, ok := qualified(call.Fun)
			if !ok || pkg.Name != "graphql" {
				return true
			}
			switch name.Name {
			case "MarshalSliceConcurrently":
				pkg.Name, name.Name = "gqlexec", "MarshalSlice"
				lists++
			case "NewDeferredGroup":
				// Always right after `fields := graphql.CollectFields(…)`: the
				// build fails if a gqlgen release changes that.
				pkg.Name = "gqlexec"
				call.Args = append(call.Args, ast.NewIdent("fields"))
				groups++
			case "ResolveField":
				if isPlainField(call) {
					pkg.Name, name.Name = "gqlexec", "ResolvePlainField"
					plain++
				}
			}
			return true
		})
	}
	if lists == 0 || groups == 0 || objects != groups || plain == 0 {
		return fmt.Errorf("%s: %d calls of graphql.MarshalSliceConcurrently, %d of graphql.NewDeferredGroup, %d object marshallers returning their field set and %d plain fields: expected some of each, one object per group", filename, lists, groups, objects, plain)
	}
	astutil.AddImport(fset, f, "github.com/dirsync/dirsync/internal/gqlexec")
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, f); err != nil {
		return err
	}
	return os.WriteFile(filename, buf.Bytes(), 0o644)
}

// qualified splits pkg.Name.
func qualified(e ast.Expr) (pkg, name *ast.Ident, ok bool) {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return nil, nil, false
	}
	pkg, ok = sel.X.(*ast.Ident)
	return pkg, sel.Sel, ok
}

// isFieldSetOfFields tells whether stmt is `out := graphql.NewFieldSet(fields)`,
// which every object's marshaller starts with.
func isFieldSetOfFields(stmt ast.Stmt) bool {
	assign, ok := stmt.(*ast.AssignStmt)
	if !ok || len(assign.Lhs) != 1 || len(assign.Rhs) != 1 {
		return false
	}
	out, ok := assign.Lhs[0].(*ast.Ident)
	if !ok || out.Name != "out" {
		return false
	}
	call, ok := assign.Rhs[0].(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return false
	}
	pkg, name, ok := qualified(call.Fun)
	arg, isIdent := call.Args[0].(*ast.Ident)
	return ok && isIdent && pkg.Name == "graphql" && name.Name == "NewFieldSet" && arg.Name == "fields"
}

// isPlainField tells whether call is graphql.ResolveField(…) for a plain
// struct field: its resolver is `return obj.Field, nil` and it has no
// directive (the middleware chain is nil).
func isPlainField(call *ast.CallExpr) bool {
	if len(call.Args) != 9 {
		return false
	}
	if chain, ok := call.Args[5].(*ast.Ident); !ok || chain.Name != "nil" {
		return false
	}
	resolver, ok := call.Args[4].(*ast.FuncLit)
	if !ok || len(resolver.Body.List) != 1 {
		return false
	}
	ret, ok := resolver.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 2 {
		return false
	}
	obj, _, ok := qualified(ret.Results[0])
	err, isIdent := ret.Results[1].(*ast.Ident)
	return ok && obj.Name == "obj" && isIdent && err.Name == "nil"
}

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
	"reflect"
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
//   - an object's field set one allocation, written without a map per
//     object (gqlexec.NewFieldSet; a marshaller using its field set some
//     other way keeps gqlgen's, its `return out` returning gqlexec.Object);
//   - plain struct fields resolved without the field middleware
//     (gqlexec.ResolvePlainField), and those of a scalar or enum type that
//     marshals without failing also without a field context unless an error
//     needs one (gqlexec.PlainScalar);
//   - an object's fields collected through a cache of the operation's
//     executionContext (gqlexec.FieldsCache) rather than gqlgen's.
//
// It fails when a call to rewrite is missing, so that a gqlgen release
// generating something else does not silently bring the cost back.
func rewriteExecutor(filename string) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, nil, parser.ParseComments)
	if err != nil {
		return err
	}
	methods := map[string]*ast.FuncDecl{}
	for _, decl := range f.Decls {
		if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv != nil && fn.Body != nil {
			methods[fn.Name.Name] = fn
		}
	}
	var lists, groups, objects, ownFieldSets, plain, scalars, collects int
	var rewriteErr error
	caches := 0
	for _, decl := range f.Decls {
		if isExecutionContext(decl) {
			st := decl.(*ast.GenDecl).Specs[0].(*ast.TypeSpec).Type.(*ast.StructType)
			st.Fields.List = append(st.Fields.List, &ast.Field{
				Names: []*ast.Ident{ast.NewIdent("collectedFields")},
				Type:  &ast.SelectorExpr{X: ast.NewIdent("gqlexec"), Sel: ast.NewIdent("FieldsCache")},
			})
			caches++
		}
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		onExecutionContext := isExecutionContextMethod(fn)
		object := slices.ContainsFunc(fn.Body.List, isFieldSetOfFields)
		ownFieldSet := object && usesFieldSetPlainly(fn.Body)
		if ownFieldSet {
			i := slices.IndexFunc(fn.Body.List, isFieldSetOfFields)
			pkg, _, _ := qualified(fn.Body.List[i].(*ast.AssignStmt).Rhs[0].(*ast.CallExpr).Fun)
			pkg.Name = "gqlexec"
			ownFieldSets++
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if ret, ok := n.(*ast.ReturnStmt); ok && object && len(ret.Results) == 1 {
				if out, ok := ret.Results[0].(*ast.Ident); ok && out.Name == "out" {
					if !ownFieldSet {
						ret.Results[0] = &ast.CallExpr{
							Fun:  &ast.SelectorExpr{X: ast.NewIdent("gqlexec"), Sel: ast.NewIdent("Object")},
							Args: []ast.Expr{ast.NewIdent("fields"), ast.NewIdent("out")},
						}
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
			case "CollectFields":
				// ec.collectedFields.CollectFields(ec.OperationContext, …)
				if onExecutionContext && len(call.Args) == 3 && isOperationContext(call.Args[0]) {
					call.Fun = &ast.SelectorExpr{
						X:   &ast.SelectorExpr{X: ast.NewIdent("ec"), Sel: ast.NewIdent("collectedFields")},
						Sel: ast.NewIdent("CollectFields"),
					}
					collects++
				}
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
				if !isPlainField(call) {
					break
				}
				if isPlainScalar(call, methods) {
					// The resolver returns the value as the marshaller takes
					// it: no `any` to box it in.
					resolver, marshal := call.Args[4].(*ast.FuncLit), call.Args[6].(*ast.FuncLit)
					params := marshal.Type.Params.List
					typ, err := copyWithoutPositions(fset, params[len(params)-1].Type)
					if err != nil {
						rewriteErr = err
						return false
					}
					resolver.Type.Results.List[0].Type = typ
					pkg.Name, name.Name = "gqlexec", "PlainScalar"
					scalars++
				} else {
					pkg.Name, name.Name = "gqlexec", "ResolvePlainField"
				}
				plain++
			}
			return true
		})
	}
	if rewriteErr != nil {
		return rewriteErr
	}
	if lists == 0 || groups == 0 || objects != groups || plain == 0 || scalars == 0 || caches != 1 || collects < objects || ownFieldSets == 0 {
		return fmt.Errorf("%s: %d calls of graphql.MarshalSliceConcurrently, %d of graphql.NewDeferredGroup, %d object marshallers returning their field set (%d with gqlexec.FieldSet), %d plain fields, %d plain scalars, %d executionContext types and %d calls of graphql.CollectFields: expected some of each, one object per group, one executionContext and a CollectFields per object", filename, lists, groups, objects, ownFieldSets, plain, scalars, caches, collects)
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

// isExecutionContext tells whether decl is `type executionContext struct {…}`.
func isExecutionContext(decl ast.Decl) bool {
	gen, ok := decl.(*ast.GenDecl)
	if !ok || gen.Tok != token.TYPE || len(gen.Specs) != 1 {
		return false
	}
	spec, ok := gen.Specs[0].(*ast.TypeSpec)
	if !ok || spec.Name.Name != "executionContext" {
		return false
	}
	_, ok = spec.Type.(*ast.StructType)
	return ok
}

// isExecutionContextMethod tells whether fn is a method of
// `ec *executionContext`.
func isExecutionContextMethod(fn *ast.FuncDecl) bool {
	if fn.Recv == nil || len(fn.Recv.List) != 1 || len(fn.Recv.List[0].Names) != 1 || fn.Recv.List[0].Names[0].Name != "ec" {
		return false
	}
	star, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	typ, ok := star.X.(*ast.Ident)
	return ok && typ.Name == "executionContext"
}

// isOperationContext tells whether e is `ec.OperationContext`.
func isOperationContext(e ast.Expr) bool {
	ec, name, ok := qualified(e)
	return ok && ec.Name == "ec" && name.Name == "OperationContext"
}

// usesFieldSetPlainly tells whether an object's marshaller uses its field
// set `out` only as gqlexec.FieldSet allows: it is declared by
// `out := graphql.NewFieldSet(fields)`, its Values and Invalids are read and
// written, fields are scheduled on it with ResolveConcurrently or
// ResolveRootConcurrently, it is dispatched and returned; it is handed to
// nothing.
func usesFieldSetPlainly(body *ast.BlockStmt) bool {
	allowed := map[*ast.Ident]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if out, ok := n.X.(*ast.Ident); ok && out.Name == "out" {
				switch n.Sel.Name {
				case "Values", "Invalids", "Dispatch", "ResolveConcurrently", "ResolveRootConcurrently":
					allowed[out] = true
				}
			}
		case *ast.ReturnStmt:
			if len(n.Results) == 1 {
				if out, ok := n.Results[0].(*ast.Ident); ok && out.Name == "out" {
					allowed[out] = true
				}
			}
		}
		return true
	})
	for _, stmt := range body.List {
		if isFieldSetOfFields(stmt) {
			allowed[stmt.(*ast.AssignStmt).Lhs[0].(*ast.Ident)] = true
		}
	}
	plain := true
	ast.Inspect(body, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == "out" && !allowed[id] {
			plain = false
		}
		return plain
	})
	return plain
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

// isPlainScalar tells whether call, a plain field's graphql.ResolveField(…),
// meets what gqlexec.PlainScalar requires to leave out the field context when
// the value marshals: the field context is
// `return graphql.NewScalarFieldContext(…)` (cannot fail), and the marshaller
// (an executor method, `return ec.marshalX(ctx, selections, v)`) does not use
// its context but where it cannot be reached.
func isPlainScalar(call *ast.CallExpr, methods map[string]*ast.FuncDecl) bool {
	fieldContext, ok := calledMethod(call.Args[3], methods)
	if !ok || len(fieldContext.Body.List) != 1 {
		return false
	}
	ret, ok := fieldContext.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return false
	}
	newContext, ok := ret.Results[0].(*ast.CallExpr)
	if !ok {
		return false
	}
	if pkg, name, ok := qualified(newContext.Fun); !ok || pkg.Name != "graphql" || name.Name != "NewScalarFieldContext" {
		return false
	}
	marshal, ok := calledMethod(call.Args[6], methods)
	return ok && ignoresContext(marshal)
}

// calledMethod returns the executor method that e, a function literal
// `func(…) … { return ec.method(…) }`, calls.
func calledMethod(e ast.Expr, methods map[string]*ast.FuncDecl) (*ast.FuncDecl, bool) {
	lit, ok := e.(*ast.FuncLit)
	if !ok || len(lit.Body.List) != 1 {
		return nil, false
	}
	ret, ok := lit.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return nil, false
	}
	call, ok := ret.Results[0].(*ast.CallExpr)
	if !ok {
		return nil, false
	}
	recv, name, ok := qualified(call.Fun)
	if !ok || recv.Name != "ec" {
		return nil, false
	}
	fn, ok := methods[name.Name]
	return fn, ok
}

// copyWithoutPositions copies the type expression e, positions left out: the
// copy is printed where it is put, not where e was.
func copyWithoutPositions(fset *token.FileSet, e ast.Expr) (ast.Expr, error) {
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, e); err != nil {
		return nil, err
	}
	c, err := parser.ParseExpr(buf.String())
	if err != nil {
		return nil, err
	}
	pos := reflect.TypeFor[token.Pos]()
	ast.Inspect(c, func(n ast.Node) bool {
		if n != nil {
			v := reflect.ValueOf(n).Elem()
			for i := range v.NumField() {
				if f := v.Field(i); f.Type() == pos {
					f.SetInt(int64(token.NoPos))
				}
			}
		}
		return true
	})
	return c, nil
}

// neverNull are gqlgen's marshallers that never return graphql.Null.
var neverNull = map[string]bool{
	"MarshalString": true, "MarshalID": true, "MarshalBoolean": true,
	"MarshalInt": true, "MarshalInt8": true, "MarshalInt16": true, "MarshalInt32": true, "MarshalInt64": true,
	"MarshalIntID": true,
}

// ignoresContext tells whether marshal, a scalar's or enum's marshaller as
// gqlgen generates it, does not use its context parameter: it appears only
// in `_ = ctx` or in the body of `if res == graphql.Null {…}` after
// `res := graphql.MarshalX(…)` for a MarshalX of neverNull (the non-null
// check of a built-in scalar, which reports on the context's path).
func ignoresContext(marshal *ast.FuncDecl) bool {
	params := marshal.Type.Params.List
	if len(params) != 3 || len(params[0].Names) != 1 {
		return false
	}
	ctx := params[0].Names[0].Name
	if ctx == "_" {
		return true
	}
	resNeverNull := false
	for _, stmt := range marshal.Body.List {
		if assign, ok := stmt.(*ast.AssignStmt); ok && len(assign.Lhs) == 1 && len(assign.Rhs) == 1 {
			lhs, _ := assign.Lhs[0].(*ast.Ident)
			rhs, _ := assign.Rhs[0].(*ast.Ident)
			if lhs != nil && rhs != nil && lhs.Name == "_" && rhs.Name == ctx {
				continue
			}
			if lhs != nil && lhs.Name == "res" {
				resNeverNull = false
				if call, ok := assign.Rhs[0].(*ast.CallExpr); ok {
					if pkg, name, ok := qualified(call.Fun); ok && pkg.Name == "graphql" && neverNull[name.Name] {
						resNeverNull = true
					}
				}
			}
		}
		if ifStmt, ok := stmt.(*ast.IfStmt); ok && resNeverNull && ifStmt.Init == nil && ifStmt.Else == nil && isResNull(ifStmt.Cond) {
			continue
		}
		if uses(stmt, ctx) {
			return false
		}
	}
	return true
}

// isResNull tells whether cond is `res == graphql.Null`.
func isResNull(cond ast.Expr) bool {
	bin, ok := cond.(*ast.BinaryExpr)
	if !ok || bin.Op != token.EQL {
		return false
	}
	res, ok := bin.X.(*ast.Ident)
	pkg, name, isNull := qualified(bin.Y)
	return ok && res.Name == "res" && isNull && pkg.Name == "graphql" && name.Name == "Null"
}

// uses tells whether node mentions the identifier name.
func uses(node ast.Node, name string) bool {
	found := false
	ast.Inspect(node, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

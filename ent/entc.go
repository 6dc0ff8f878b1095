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
//     (gqlexec.NewDeferredGroup, given the object's collected fields).
//
// It fails when a call to rewrite is missing, so that a gqlgen release
// generating something else does not silently bring the cost back.
func rewriteExecutor(filename string) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, nil, parser.ParseComments)
	if err != nil {
		return err
	}
	var slices, groups int
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok || pkg.Name != "graphql" {
			return true
		}
		switch sel.Sel.Name {
		case "MarshalSliceConcurrently":
			pkg.Name, sel.Sel.Name = "gqlexec", "MarshalSlice"
			slices++
		case "NewDeferredGroup":
			// Always right after `fields := graphql.CollectFields(…)`: the
			// build fails if a gqlgen release changes that.
			pkg.Name = "gqlexec"
			call.Args = append(call.Args, ast.NewIdent("fields"))
			groups++
		}
		return true
	})
	if slices == 0 || groups == 0 {
		return fmt.Errorf("%s: %d calls of graphql.MarshalSliceConcurrently and %d of graphql.NewDeferredGroup, expected some of each", filename, slices, groups)
	}
	astutil.AddImport(fset, f, "github.com/dirsync/dirsync/internal/gqlexec")
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, f); err != nil {
		return err
	}
	return os.WriteFile(filename, buf.Bytes(), 0o644)
}

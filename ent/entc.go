//go:build ignore

// entc.go generates the ent code, the GraphQL schema of the ent types and then
// the gqlgen executor, in that order, so one command keeps all three in step.
package main

import (
	"log"
	"os"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"
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
}

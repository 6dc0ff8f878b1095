// Package graph holds the GraphQL resolvers. Each is one call into ent or the
// directory package; rules live there, errors are translated by gqlerr.
package graph

import (
	"github.com/99designs/gqlgen/graphql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/graph/generated"
	"github.com/dirsync/dirsync/internal/directory"
)

// Resolver is the resolver root.
type Resolver struct {
	client *ent.Client
	dir    *directory.Service
}

// NewSchema returns the executable schema served by internal/api. pageSize
// is the number of rows a connection returns when the query gives neither
// first nor last; it also prices lists for the complexity limit.
func NewSchema(client *ent.Client, pageSize int) graphql.ExecutableSchema {
	cfg := generated.Config{
		Resolvers: &Resolver{client: client, dir: directory.New(client)},
	}
	setComplexity(&cfg.Complexity, pageSize)
	return generated.NewExecutableSchema(cfg)
}

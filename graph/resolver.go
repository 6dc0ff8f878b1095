// Package graph holds the GraphQL resolvers. Each is one call into ent or the
// directory package; rules live there, errors are translated by gqlerr.
package graph

import (
	"github.com/99designs/gqlgen/graphql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/graph/generated"
	"github.com/dirsync/dirsync/internal/apikeys"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/integrations"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/tenant"
)

// Resolver is the resolver root.
type Resolver struct {
	client  *ent.Client
	dir     *directory.Service
	integ   *integrations.Service
	tenants *tenant.Connector
	hub     *pubsub.Hub
	keys    *apikeys.Service
}

// Deps are what the resolvers need beyond the ent client. Tenants builds Graph
// clients for integrations (authorize); Hub delivers live updates to
// subscriptions. Either may be nil where a test does not use them.
type Deps struct {
	Tenants *tenant.Connector
	Hub     *pubsub.Hub
	// Publisher announces revoked API keys to every API process; nil in
	// tests that do not need live revocation.
	Publisher *pubsub.Publisher
}

// NewSchema returns the executable schema served by internal/api. pageSize
// is the number of rows a connection returns when the query gives neither
// first nor last; it also prices lists for the complexity limit.
func NewSchema(client *ent.Client, pageSize int, deps Deps) graphql.ExecutableSchema {
	cfg := generated.Config{
		Resolvers: &Resolver{
			client: client, dir: directory.New(client), integ: integrations.New(client, deps.Tenants),
			tenants: deps.Tenants, hub: deps.Hub, keys: apikeys.New(client, deps.Publisher),
		},
	}
	setComplexity(&cfg.Complexity, pageSize)
	return generated.NewExecutableSchema(cfg)
}

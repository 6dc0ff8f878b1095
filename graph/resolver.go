// Package graph holds the GraphQL resolvers. Each is one call into ent or the
// directory package; rules live there, errors are translated by gqlerr.
package graph

import (
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/graph/generated"
	"github.com/dirsync/dirsync/internal/apikeys"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/guard"
	"github.com/dirsync/dirsync/internal/importer"
	"github.com/dirsync/dirsync/internal/integrations"
	"github.com/dirsync/dirsync/internal/passwords"
	"github.com/dirsync/dirsync/internal/preview"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/recovery"
	"github.com/dirsync/dirsync/internal/tenant"
)

// Resolver is the resolver root.
type Resolver struct {
	client  *ent.Client
	dir     *directory.Service
	integ   *integrations.Service
	tenants *tenant.Connector
	hub     *pubsub.Hub
	recov   *recovery.Service
	imports *importer.Service
	pw      *passwords.Service
	keys    *apikeys.Service
	preview *preview.Service
	guard   *guard.Service
}

// Deps are what the resolvers need beyond the ent client. Tenants builds Graph
// clients for integrations (authorize); Hub delivers live updates to
// subscriptions. Either may be nil where a test does not use them.
type Deps struct {
	Tenants *tenant.Connector
	Hub     *pubsub.Hub
	// ImportWait bounds how long importUsers waits to return results
	// directly; 0 = importer.DefaultWait.
	ImportWait time.Duration
	// Passwords runs admin password calls and the user portal; nil answers UNAVAILABLE.
	Passwords *passwords.Service
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
			tenants: deps.Tenants, hub: deps.Hub, recov: recovery.New(client),
			imports: importer.NewService(client, deps.Tenants),
			pw:      deps.Passwords,
			keys:    apikeys.New(client, deps.Publisher),
			preview: preview.New(client, deps.Tenants),
			guard:   guard.NewService(client, deps.Publisher, nil),
		},
	}
	cfg.Resolvers.(*Resolver).imports.Wait = deps.ImportWait
	return pricedSchema{ExecutableSchema: generated.NewExecutableSchema(cfg), pageSize: pageSize}
}

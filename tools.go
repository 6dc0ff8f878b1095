//go:build tools

// Package tools pins the code generators and libraries the project is built on,
// so `go mod tidy` keeps them while packages that use them are still being written.
package tools

import (
	_ "entgo.io/contrib/entgql"
	_ "entgo.io/ent/entc/gen"
	_ "github.com/99designs/gqlgen/api"
	_ "github.com/go-redis/redis_rate/v10"
	_ "github.com/hibiken/asynq"
	_ "github.com/lib/pq"
	_ "github.com/pressly/goose/v3"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/stretchr/testify/require"
	_ "github.com/vektah/gqlparser/v2"
	_ "go.uber.org/goleak"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/oauth2/clientcredentials"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/time/rate"
)

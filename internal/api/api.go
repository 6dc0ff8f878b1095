// Package api is the /graphql HTTP endpoint: authentication, the gqlgen
// server with its transports and limits, one transaction per mutation request
// and error presentation. internal/server mounts it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/dirsync/dirsync/ent"
	_ "github.com/dirsync/dirsync/ent/runtime" // registers schema hooks and privacy policies
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/inputguard"
	"github.com/dirsync/dirsync/internal/live"
	"github.com/dirsync/dirsync/internal/metrics"
)

// Config holds the limits of the GraphQL endpoint.
type Config struct {
	// Introspection enables __schema/__type queries (development only).
	Introspection bool
	// ComplexityLimit bounds the computed complexity of an operation, where a
	// list costs its fields times its rows; 0 means DefaultComplexityLimit.
	ComplexityLimit int
	// MaxPageSize bounds first/last of every connection and the ids of
	// nodes(ids:); a connection without first/last returns this many rows.
	// 0 means DefaultMaxPageSize.
	MaxPageSize int
	// MaxBodyBytes bounds a request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Document limits, checked before validation (which is what a hostile
	// document makes expensive): lexical tokens, field nesting depth
	// (through fragments), aliases, and fields spelled out in the document.
	// 0 means the Default…, < 0 no limit.
	MaxTokens, MaxDepth, MaxAliases, MaxFields int
	// Deps are handed to the resolvers (Graph clients, live-update hub).
	Deps graph.Deps

	// AllowedOrigins lists the browser origins that may open a websocket
	// besides the server's own host ("https://admin.example.com"; path.Match
	// globs allowed). Requests without Origin (non-browser clients) are
	// always allowed; there is no allow-all.
	AllowedOrigins []string
	// PingInterval is the graphql-transport-ws keepalive: a ping this often,
	// and a socket that has not answered within twice that is closed.
	// 0 means DefaultPingInterval.
	PingInterval time.Duration
	// MaxConnectionsPerKey caps concurrent websocket and SSE connections of
	// one API key; 0 means DefaultMaxConnectionsPerKey, -1 no cap. The
	// subscriptions per key are capped by the Hub (pubsub.HubConfig.MaxPerKey).
	MaxConnectionsPerKey int
	// Metrics records operation names, error codes and resolver latency; nil = none.
	Metrics *metrics.Metrics
	// KeyRecheck is how often an open websocket or SSE stream re-reads its
	// API key besides revocation announcements; 0 means DefaultKeyRecheck.
	KeyRecheck time.Duration
}

// Defaults for Config.
const (
	DefaultComplexityLimit = 25000
	DefaultMaxPageSize     = 100
	DefaultMaxBodyBytes    = 1 << 20
)

func (c Config) withDefaults() Config {
	if c.ComplexityLimit <= 0 {
		c.ComplexityLimit = DefaultComplexityLimit
	}
	if c.MaxPageSize <= 0 {
		c.MaxPageSize = DefaultMaxPageSize
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	for _, l := range []struct {
		v   *int
		def int
	}{{&c.MaxTokens, DefaultMaxTokens}, {&c.MaxDepth, DefaultMaxDepth}, {&c.MaxAliases, DefaultMaxAliases}, {&c.MaxFields, DefaultMaxFields}} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.KeyRecheck <= 0 {
		c.KeyRecheck = DefaultKeyRecheck
	}
	if c.MaxConnectionsPerKey == 0 {
		c.MaxConnectionsPerKey = DefaultMaxConnectionsPerKey
	}
	return c
}

// NewHandler returns the /graphql handler. Every request needs
// `Authorization: Bearer <API key>`; without a valid key it answers 401 with a
// GraphQL-shaped error body. Websockets (graphql-transport-ws, and legacy
// graphql-ws, which costs nothing) send the key in connection_init instead;
// subscriptions also run over SSE (graphql-sse, distinct connections). See
// docs/subscriptions.md.
func NewHandler(cfg Config, client *ent.Client, logger *slog.Logger) http.Handler {
	cfg = cfg.withDefaults()
	conns := newConnLimiter(cfg.MaxConnectionsPerKey)
	srv := handler.New(graph.NewSchema(client, cfg.MaxPageSize, cfg.Deps))
	guard := keyGuard{client: client, hub: cfg.Deps.Hub, logger: logger, recheck: cfg.KeyRecheck}
	srv.AddTransport(transport.Websocket{
		// The implementation also runs the graphql-transport-ws ping/pong
		// keepalive every cfg.PingInterval, on a timer instead of the
		// goroutine per connection gqlgen's PingPongInterval would start.
		Implementation: websocketImplementation(cfg),
		InitFunc:       wsInit(client, logger, conns, guard),
		InitTimeout:    initTimeout,
		// Only for legacy graphql-ws clients, which expect "ka" messages.
		KeepAlivePingInterval: cfg.PingInterval,
	})
	// Before POST: an SSE request is a JSON POST too.
	srv.AddTransport(transport.SSE{KeepAlivePingInterval: cfg.PingInterval})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	// gqlgen's POST, writing answers without re-encoding them (post.go).
	srv.AddTransport(postTransport{})
	queryCache := lru.New[*ast.QueryDocument](1000)
	srv.SetQueryCache(queryCache)
	srv.SetParserTokenLimit(max(cfg.MaxTokens, 0))
	srv.SetValidationRulesFn(validationRules(cfg.Introspection))
	srv.SetDisableSuggestion(!cfg.Introspection)
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	// After APQ, which may fill in the query.
	srv.Use(queryLimits{maxTokens: cfg.MaxTokens, maxDepth: cfg.MaxDepth, maxAliases: cfg.MaxAliases, maxFields: cfg.MaxFields, cache: queryCache})
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(operationGate{introspection: cfg.Introspection, logger: logger})
	srv.Use(extension.FixedComplexityLimit(cfg.ComplexityLimit))
	srv.Use(transactioner{entgql.Transactioner{TxOpener: client}})
	srv.Use(live.Errors{})
	if cfg.Metrics != nil {
		srv.Use(cfg.Metrics.GraphQL())
	}
	srv.SetErrorPresenter(gqlerr.Presenter(logger))
	srv.SetRecoverFunc(gqlerr.RecoverFunc(logger))
	// Field middlewares run outermost first: translation sees the errors of the guards too.
	srv.AroundOperations(trackFailures)
	var fieldMiddlewares []graphql.FieldMiddleware
	if cfg.Metrics != nil {
		// Outermost: the resolver's time includes the guards'.
		fieldMiddlewares = append(fieldMiddlewares, cfg.Metrics.GraphQL().TimeResolvers)
	}
	srv.AroundFields(resolvingFields(append(fieldMiddlewares,
		gqlerr.FieldMiddleware(logger),
		scope,
		requireWriter,
		skipAfterFailure,
		inputguard.Middleware,
		limitPageSize(cfg.MaxPageSize),
	)...))

	limited := http.MaxBytesHandler(httpGate(cfg.MaxTokens, srv), cfg.MaxBodyBytes)
	h := liveHandler(cfg, conns, authenticate(client, logger, cfg.MaxBodyBytes, limitSSE(guard, limited)), limited)
	// Subscription streams outlive their resolver call; they log through the request's context.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(live.WithLogger(r.Context(), logger)))
	})
}

// resolvingFields chains the field middlewares, outermost first, and runs
// them only for fields that resolve something (a resolver or a method, such
// as an edge loader). A plain struct field (id, username…) cannot fail, take
// arguments or be a root field, so every one of them would pass it through;
// gqlgen calls the field middleware for each field of each row, and listing
// 100 users with 10 groups each is about 3,300 such calls per request, each
// through six layers (issue 12: see docs/benchmarks.md). The executor now
// resolves most plain struct fields without calling the field middleware at
// all (internal/gqlexec.ResolvePlainField and PlainScalar, rewritten in by
// ent/entc.go); a middleware that must see them cannot be added here.
func resolvingFields(mws ...graphql.FieldMiddleware) graphql.FieldMiddleware {
	chain := func(ctx context.Context, next graphql.Resolver) (any, error) {
		var call func(i int, ctx context.Context) (any, error)
		call = func(i int, ctx context.Context) (any, error) {
			if i == len(mws) {
				return next(ctx)
			}
			return mws[i](ctx, func(ctx context.Context) (any, error) { return call(i+1, ctx) })
		}
		return call(0, ctx)
	}
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		if fc := graphql.GetFieldContext(ctx); fc != nil && !fc.IsResolver && !fc.IsMethod {
			return next(ctx)
		}
		return chain(ctx, next)
	}
}

// requireWriter refuses every mutation of a read-only key before it runs, so
// even a mutation that would change nothing answers FORBIDDEN. The privacy
// policy enforces the same rule on every write underneath.
func requireWriter(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc != nil && fc.Object == "Mutation" && fc.IsResolver && !portalOrPublic(fc) {
		if v, ok := auth.ViewerFrom(ctx); !ok || !v.CanWrite() {
			return nil, gqlerr.Newf(gqlerr.Forbidden, "", "the API key is read-only")
		}
	}
	return next(ctx)
}

type failedKey struct{}

// trackFailures gives each operation a flag that skipAfterFailure sets.
func trackFailures(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, failedKey{}, new(atomic.Bool)))
}

// skipAfterFailure does not run the mutations that follow a failed one: the
// request's transaction is rolled back anyway, and after a database error
// PostgreSQL would refuse every further statement with an unhelpful error.
// gqlgen runs root mutation fields one after the other, so the order is the
// order of the request.
func skipAfterFailure(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	failed, _ := ctx.Value(failedKey{}).(*atomic.Bool)
	if fc == nil || failed == nil || fc.Object != "Mutation" || !fc.IsResolver {
		return next(ctx)
	}
	if failed.Load() {
		return nil, gqlerr.Newf(gqlerr.Aborted, "", "not run: an earlier mutation of this request failed, so the request changed nothing")
	}
	res, err := next(ctx)
	if err != nil {
		failed.Store(true)
	}
	return res, err
}

// limitPageSize refuses first/last outside 0..max on any connection field and
// more than max ids in nodes(ids:). A connection asked for neither first nor
// last gets first: max, since entgql would otherwise return every row.
func limitPageSize(max int) graphql.FieldMiddleware {
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || !fc.IsResolver && !fc.IsMethod {
			return next(ctx)
		}
		first, hasFirst := fc.Args["first"].(*int)
		last, hasLast := fc.Args["last"].(*int)
		for arg, n := range map[string]*int{"first": first, "last": last} {
			if n != nil && (*n < 0 || *n > max) {
				return nil, gqlerr.BadInput(arg, "%s must be between 0 and %d", arg, max)
			}
		}
		if hasFirst && hasLast && first == nil && last == nil {
			def := max
			fc.Args["first"] = &def
		}
		if ids, ok := fc.Args["ids"].([]pulid.ID); ok && len(ids) > max {
			return nil, gqlerr.BadInput("ids", "at most %d ids", max)
		}
		return next(ctx)
	}
}

// authenticate resolves the bearer key or portal session to a viewer or
// answers 401. Without any Authorization header only a request that is
// nothing but public portal mutations (publicOperation) passes, viewerless.
func authenticate(client *ent.Client, logger *slog.Logger, maxBody int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		r = r.WithContext(auth.WithClientIP(r.Context(), clientIP(r)))
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			if r.Header.Get("Authorization") == "" && publicOperation(r, maxBody) {
				next.ServeHTTP(w, r)
				return
			}
			unauthorized(w, "missing API key: send Authorization: Bearer <key>")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		var (
			v   auth.Viewer
			err error
		)
		if auth.IsSessionToken(token) {
			v, err = auth.AuthenticateSession(ctx, client, token, time.Now())
		} else {
			v, err = auth.Authenticate(ctx, client, token)
		}
		cancel()
		if errors.Is(err, auth.ErrInvalidSession) {
			unauthorized(w, "invalid or expired portal session")
			return
		}
		if errors.Is(err, auth.ErrInvalidKey) {
			unauthorized(w, "invalid API key")
			return
		}
		if err != nil {
			logger.ErrorContext(r.Context(), "authenticating API key", "err", err)
			writeError(w, http.StatusServiceUnavailable, gqlerr.Internal, "authentication is unavailable, retry later")
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithViewer(r.Context(), v)))
	})
}

func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="dirsync"`)
	writeError(w, http.StatusUnauthorized, gqlerr.Unauthenticated, msg)
}

// writeError answers a GraphQL-shaped error body outside of gqlgen.
func writeError(w http.ResponseWriter, status int, code gqlerr.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"errors": []map[string]any{{
		"message":    msg,
		"extensions": map[string]any{"code": string(code)},
	}}}
	// A failed write means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(body)
}

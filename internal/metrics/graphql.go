package metrics

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// GraphQL is the gqlgen extension recording operation names (for the HTTP
// counter) and error codes; its TimeResolvers field middleware records
// resolver latency.
type GraphQL struct{ m *Metrics }

// GraphQL returns the extension to install with handler.Server.Use.
func (m *Metrics) GraphQL() GraphQL { return GraphQL{m: m} }

var (
	_ graphql.HandlerExtension    = GraphQL{}
	_ graphql.ResponseInterceptor = GraphQL{}
)

// ExtensionName implements graphql.HandlerExtension.
func (GraphQL) ExtensionName() string { return "Metrics" }

// Validate implements graphql.HandlerExtension.
func (GraphQL) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse implements graphql.ResponseInterceptor.
func (g GraphQL) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if g.m == nil {
		return next(ctx)
	}
	if graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		name := oc.OperationName
		if name == "" && oc.Operation != nil {
			name = oc.Operation.Name
		}
		setOperation(ctx, name)
	}
	resp := next(ctx)
	if resp != nil {
		for _, e := range resp.Errors {
			code, _ := e.Extensions["code"].(string)
			if code == "" {
				code = "UNKNOWN"
			}
			g.m.gqlErrors.WithLabelValues(code).Inc()
		}
	}
	return resp
}

// TimeResolvers is the field middleware timing the fields with a resolver
// (plain struct fields would drown the histogram). It is not a
// graphql.FieldInterceptor of the extension: gqlgen would call it, through one
// more closure, for every field of every row (issue 12), where a field
// middleware can sit in a chain that plain struct fields skip
// (internal/api).
func (g GraphQL) TimeResolvers(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if g.m == nil || fc == nil || !fc.IsResolver {
		return next(ctx)
	}
	start := time.Now()
	res, err := next(ctx)
	g.m.resolverDuration.WithLabelValues(fc.Object + "." + fc.Field.Name).Observe(time.Since(start).Seconds())
	return res, err
}

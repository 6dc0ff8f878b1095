package live

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dirsync/dirsync/internal/gqlerr"
)

// Errors is a gqlgen handler extension that lets a running subscription end
// with an error. gqlgen has no transport-neutral way to do that once the
// resolver has returned its channel (transport.AddSubscriptionError exists
// for websockets only and panics under SSE), so Fail parks the error in a
// slot of the operation and, when the stream's channel closes, the response
// interceptor turns it into one last result {"errors": [...]} before the
// transport completes. Both graphql-transport-ws and graphql-sse clients thus
// see a `next` with the error, then `complete`.
type Errors struct{}

var (
	_ graphql.HandlerExtension     = Errors{}
	_ graphql.OperationInterceptor = Errors{}
	_ graphql.ResponseInterceptor  = Errors{}
)

// ExtensionName implements graphql.HandlerExtension.
func (Errors) ExtensionName() string { return "LiveSubscriptionErrors" }

// Validate implements graphql.HandlerExtension.
func (Errors) Validate(graphql.ExecutableSchema) error { return nil }

type slotKey struct{}

type slot struct {
	mu   sync.Mutex
	err  *gqlerror.Error
	done bool
}

// InterceptOperation gives every subscription operation its error slot.
func (Errors) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	return next(context.WithValue(ctx, slotKey{}, &slot{}))
}

// InterceptResponse emits a parked error as the stream's last result.
func (Errors) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	s, _ := ctx.Value(slotKey{}).(*slot)
	if s == nil {
		return next(ctx)
	}
	if resp := next(ctx); resp != nil {
		return resp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil || s.done {
		return nil
	}
	s.done = true
	return &graphql.Response{Errors: gqlerror.List{s.err}}
}

// Fail records err as the reason the subscription of ctx ends; call it
// before closing the stream's channel. Without the Errors extension it does
// nothing (the stream simply completes).
func Fail(ctx context.Context, err *gqlerr.Error) {
	s, _ := ctx.Value(slotKey{}).(*slot)
	if s == nil {
		return
	}
	gerr := &gqlerror.Error{Message: err.Message, Extensions: map[string]any{"code": string(err.Code)}}
	if fc := graphql.GetFieldContext(ctx); fc != nil {
		gerr.Path = fc.Path()
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = gerr
	}
	s.mu.Unlock()
}

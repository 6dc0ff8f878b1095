// Package live serves the GraphQL subscriptions (SPEC J2–J3): jobUpdated,
// jobs and events. It turns the pub/sub Hub's messages into the same ent
// objects the queries return, so the resolvers in graph/ stay one line each.
//
// Every stream follows the consumer pattern of internal/pubsub: subscribe to
// the Hub first, then read the current state from PostgreSQL through the
// viewer's privacy-scoped client, so no change can fall between the two;
// treat every message as "the newest value"; re-read on KindResync. A
// subscriber that cannot keep up with its small buffer is cut off with
// SLOW_CONSUMER instead of ever slowing the Hub, the publishers or anyone
// else. See docs/subscriptions.md.
package live

import (
	"context"
	"errors"
	"log/slog"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// DefaultBuffer bounds the queue of one subscription, in messages: how far
// a client may fall behind before its subscription is ended with
// SLOW_CONSUMER (a client this far behind is better told than silently fed
// stale progress). The queue grows only with the backlog (8 B a message, the
// messages themselves shared by all subscribers) and is released when
// drained, so the bound costs an idle subscription nothing. 1,024 rides out
// a process starved of CPU for tens of seconds at a bind's pace; with 64
// (a fixed channel then), healthy subscribers were cut off on a busy machine
// (issue 12).
const DefaultBuffer = 1024

// Error codes of subscriptions, beside gqlerr's. Clients may rely on them.
const (
	// TooManySubscriptions: the API key already holds its maximum of live
	// subscriptions (pubsub.HubConfig.MaxPerKey) or websocket connections.
	TooManySubscriptions gqlerr.Code = "TOO_MANY_SUBSCRIPTIONS"
	// SlowConsumer: the client fell more than the buffer behind and its
	// subscription was ended; subscribe again (current state comes first).
	SlowConsumer gqlerr.Code = "SLOW_CONSUMER"
)

// Source opens subscription streams. The zero Buffer means DefaultBuffer. A
// Source is a plain value: the resolvers build one per call.
type Source struct {
	Client *ent.Client
	Hub    *pubsub.Hub
	Buffer int
	Logger *slog.Logger
}

// logger is s.Logger, else the one the HTTP layer put in ctx (WithLogger),
// so the resolvers need not carry one.
func (s Source) logger(ctx context.Context) *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

type loggerKey struct{}

// WithLogger returns ctx carrying the logger streams report problems to.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// subscribe opens the viewer's Hub subscription, counted against its API
// key, feeding a new pump. Messages queue from then on, but none is handled
// before the stream calls run (the read after subscribing comes first).
func (s Source) subscribe(ctx context.Context, filter func(pubsub.Message) bool) (auth.Viewer, *pump, error) {
	v, ok := auth.ViewerFrom(ctx)
	if !ok {
		return v, nil, gqlerr.Newf(gqlerr.Unauthenticated, "", "authentication required")
	}
	if s.Hub == nil {
		return v, nil, gqlerr.Newf(gqlerr.Unavailable, "", "live updates are not available on this server")
	}
	buf := s.Buffer
	if buf <= 0 {
		buf = DefaultBuffer
	}
	p := newPump(buf)
	sub, err := s.Hub.SubscribeFunc(ctx, string(v.OrgID), filter, p.deliver, p.end, pubsub.WithKey(string(v.KeyID)))
	switch {
	case errors.Is(err, pubsub.ErrTooManySubscriptions):
		return v, nil, &gqlerr.Error{Code: TooManySubscriptions, Err: err,
			Message: "this API key holds too many live subscriptions; end some first"}
	case errors.Is(err, pubsub.ErrHubClosed):
		return v, nil, &gqlerr.Error{Code: gqlerr.Unavailable, Err: err, Message: "the server is shutting down; reconnect"}
	case err != nil:
		return v, nil, err
	}
	p.sub = sub
	return v, p, nil
}

type slowHookKey struct{}

// OnSlowConsumer returns ctx carrying cut, which a stream run under ctx calls
// when it is ended as a slow consumer. The websocket transport uses it to
// close the whole connection with a close code: a client that stopped
// reading one subscription's messages is not reading the others either, and
// a socket whose writes are stuck should not wait for the keepalive to go.
func OnSlowConsumer(ctx context.Context, cut func()) context.Context {
	return context.WithValue(ctx, slowHookKey{}, cut)
}

// ended reports why a stream's Hub subscription ended to the client, when
// that is news to it: a cancelled context means the client itself left or
// stopped.
func ended(ctx context.Context, reason error) {
	switch {
	case errors.Is(reason, pubsub.ErrSlowConsumer):
		Fail(ctx, &gqlerr.Error{Code: SlowConsumer,
			Message: "the client fell too far behind and the subscription was ended; subscribe again"})
		if cut, ok := ctx.Value(slowHookKey{}).(func()); ok {
			cut()
		}
	case errors.Is(reason, pubsub.ErrHubClosed):
		Fail(ctx, &gqlerr.Error{Code: gqlerr.Unavailable, Message: "the server is shutting down; reconnect"})
	}
}

// run starts p with step, ending the stream by closing out either way.
func run[T any](ctx context.Context, p *pump, out chan T, step func(*pubsub.Message) bool) {
	p.step = step
	p.stop = func() { close(out) }
	p.finish = func(reason error) {
		ended(ctx, reason)
		close(out)
	}
	p.start()
}

// send hands v to the transport, giving up when the subscription ends.
func send[T any](ctx context.Context, out chan<- T, v T) bool {
	select {
	case out <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

func kindIs(kind string) func(pubsub.Message) bool {
	return func(m pubsub.Message) bool { return m.Kind == kind }
}

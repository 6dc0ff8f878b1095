package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/dirsync/dirsync/internal/statuswriter"
)

type opKey struct{}

// opHolder is filled in by the GraphQL extension, read by the HTTP middleware
// once the request is done.
type opHolder struct{ name atomic.Pointer[string] }

// setOperation records the GraphQL operation of the request carried by ctx.
func setOperation(ctx context.Context, name string) {
	if h, ok := ctx.Value(opKey{}).(*opHolder); ok && h.name.Load() == nil {
		h.name.Store(&name)
	}
}

// Middleware counts requests by GraphQL operation name (routes for the other
// endpoints) and status, and gauges open subscription connections.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := subscriptionTransport(r); t != "" {
			g := m.subscriptions.WithLabelValues(t)
			g.Inc()
			defer g.Dec()
		}
		h := &opHolder{}
		sw := &statuswriter.Writer{ResponseWriter: w}
		ctx := r.Context()
		// A websocket carries many operations: it is counted as one "graphql"
		// request, not under the name of whichever operation came first.
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			ctx = context.WithValue(ctx, opKey{}, h)
		}
		next.ServeHTTP(sw, r.WithContext(ctx))
		status := sw.Status
		if status == 0 {
			status = http.StatusOK
			if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				status = http.StatusSwitchingProtocols // hijacked: no WriteHeader seen
			}
		}
		op := route(r.URL.Path)
		if p := h.name.Load(); p != nil {
			op = m.operationLabel(*p)
		}
		m.httpRequests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	})
}

// route names the endpoint without the raw path, which clients choose.
func route(path string) string {
	switch path {
	case "/graphql":
		return "graphql" // no operation parsed (refused before, or a websocket)
	case "/healthz", "/readyz", "/metrics":
		return path[1:]
	case "/":
		return "playground"
	}
	return "other"
}

func subscriptionTransport(r *http.Request) string {
	if r.URL.Path != "/graphql" {
		return ""
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return "websocket"
	}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return "sse"
	}
	return ""
}

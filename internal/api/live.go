package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/live"
)

// Live-update defaults for Config.
const (
	// DefaultPingInterval: the server pings every websocket this often and
	// drops one that has not answered within twice that, so vanished clients
	// (laptop lid closed, NAT timeout) free their resources.
	DefaultPingInterval = 20 * time.Second
	// DefaultMaxConnectionsPerKey caps concurrent websocket and SSE
	// connections of one API key.
	DefaultMaxConnectionsPerKey = 20
	// initTimeout is how long a websocket may wait before connection_init.
	initTimeout = 10 * time.Second
)

// graphql-transport-ws close codes (github.com/enisdenjo/graphql-ws PROTOCOL.md).
const (
	closeBadRequest           = 4400
	closeUnauthorized         = 4401 // subscribe before connection_ack
	closeForbidden            = 4403 // connection_init refused: bad or missing API key
	closeInitTimeout          = 4408
	closeTooManyInitRequests  = 4429
	closeTooManyConnections   = 4429 // the per-key connection cap; the graphql-ws client does not retry it
	transportWSSubprotocol    = "graphql-transport-ws"
	connectionInitMessageType = "connection_init"
)

// closeSlowConsumer closes a websocket one of whose subscriptions fell more
// than live.DefaultBuffer messages behind. It is not one of graphql-ws's
// fatal codes, so that client reconnects (and resubscribes).
const closeSlowConsumer = 4503

// isWebsocketUpgrade reports a websocket handshake. Browsers cannot set an
// Authorization header on one, so its key comes in connection_init instead.
func isWebsocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func isEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// originAllowed applies the websocket Origin policy: no Origin (a non-browser
// client), the server's own host, or a match of an allow-list entry, either a
// full origin ("https://admin.example.com", globs allowed as in path.Match)
// or a bare host pattern. Cross-site pages are refused: a browser would
// otherwise let any site open a socket to us (cross-site websocket hijacking).
func originAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range allowed {
		target := strings.ToLower(u.Host)
		if strings.Contains(p, "://") {
			target = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		if ok, _ := path.Match(strings.ToLower(p), target); ok {
			return true
		}
	}
	return false
}

// connLimiter counts the long-lived connections (websocket, SSE) per API key.
type connLimiter struct {
	max int // < 0: no cap
	mu  sync.Mutex
	n   map[string]int
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, n: make(map[string]int)}
}

// acquire takes a slot for key; release must be called exactly once after.
func (l *connLimiter) acquire(key string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max >= 0 && l.n[key] >= l.max {
		return nil, false
	}
	l.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.n[key]--; l.n[key] <= 0 {
				delete(l.n, key)
			}
		})
	}, true
}

type upgradeTokenKey struct{}

// wsInit authenticates a websocket in connection_init. The key may come as
// {"Authorization": "Bearer dsk_…"} (what HTTP clients already send), as
// {"apiKey": "dsk_…"}, or, for non-browser clients, in the upgrade request's
// own Authorization header. A refused key closes the socket with 4403
// Forbidden, as graphql-transport-ws prescribes for a rejected
// connection_init; a key over its connection cap gets 4429.
func wsInit(client *ent.Client, logger *slog.Logger, conns *connLimiter, guard keyGuard) transport.WebsocketInitFunc {
	refuse := func(ctx context.Context, code int, reason string) (context.Context, *transport.InitPayload, error) {
		ctx = transport.WithWebsocketCloseCode(ctx, code)
		return transport.AppendCloseReason(ctx, reason), nil, errors.New(reason)
	}
	return func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		token, ok := bearer(p.Authorization())
		if !ok {
			token = strings.TrimSpace(p.GetString("apiKey"))
		}
		if token == "" {
			token, _ = ctx.Value(upgradeTokenKey{}).(string)
		}
		if token == "" {
			return refuse(ctx, closeForbidden, "Forbidden: missing API key")
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := auth.Authenticate(actx, client, token)
		cancel()
		if errors.Is(err, auth.ErrInvalidKey) {
			return refuse(ctx, closeForbidden, "Forbidden: invalid API key")
		}
		if err != nil {
			logger.ErrorContext(ctx, "authenticating websocket API key", "err", err)
			return refuse(ctx, 4500, "Internal Server Error: authentication is unavailable")
		}
		release, ok := conns.acquire(string(v.KeyID))
		if !ok {
			return refuse(ctx, closeTooManyConnections, "Too many connections for this API key")
		}
		// The request context ends when the connection's handler returns,
		// however the socket went away, so the slot cannot leak.
		context.AfterFunc(ctx, release)
		// gqlgen closes the socket when the context it runs the connection
		// with ends; the flag turns that close into 4403.
		ctx, end := context.WithCancel(ctx)
		flag := cutFlagFrom(ctx)
		guard.watch(ctx, v, func() {
			if flag != nil {
				flag.Store(true)
			}
			end()
		})
		// A slow consumer closes the connection the same way, with 4503.
		slow := slowFlagFrom(ctx)
		ctx = live.OnSlowConsumer(ctx, func() {
			if slow != nil {
				slow.Store(true)
			}
			end()
		})
		return auth.WithViewer(ctx, v), nil, nil
	}
}

// liveHandler wraps the GraphQL server for long-lived requests: websocket
// upgrades pass the Origin check and skip header authentication (the key
// comes in connection_init); SSE streams count against the per-key
// connection cap. Everything else goes to authenticate unchanged.
func liveHandler(cfg Config, conns *connLimiter, authenticated, raw http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case isWebsocketUpgrade(r):
			if !originAllowed(r, cfg.AllowedOrigins) {
				writeError(w, http.StatusForbidden, gqlerr.Forbidden, "websocket Origin not allowed")
				return
			}
			ctx := context.WithValue(r.Context(), websocketKey{}, true)
			ctx = context.WithValue(ctx, cutFlag{}, new(atomic.Bool))
			ctx = context.WithValue(ctx, slowFlag{}, new(atomic.Bool))
			if token, ok := bearer(r.Header.Get("Authorization")); ok {
				ctx = context.WithValue(ctx, upgradeTokenKey{}, token)
			}
			raw.ServeHTTP(w, r.WithContext(ctx))
		case isEventStream(r) && r.Method == http.MethodPost:
			authenticated.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sseLimiterKey{}, conns)))
		default:
			authenticated.ServeHTTP(w, r)
		}
	})
}

type sseLimiterKey struct{}

// limitSSE runs after authentication: it holds a connection slot of the
// viewer's key for the life of an SSE stream.
func limitSSE(guard keyGuard, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns, _ := r.Context().Value(sseLimiterKey{}).(*connLimiter)
		v, ok := auth.ViewerFrom(r.Context())
		if conns == nil || !ok {
			next.ServeHTTP(w, r)
			return
		}
		release, ok := conns.acquire(string(v.KeyID))
		if !ok {
			writeError(w, http.StatusTooManyRequests, live.TooManySubscriptions, "too many connections for this API key")
			return
		}
		defer release()
		// A cut key ends the stream: the subscription ends with the context.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		guard.watch(ctx, v, cancel)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// closeCodes adapts gqlgen's websocket to the close codes graphql-transport-ws
// specifies. gqlgen closes every protocol violation with 1002; the protocol
// (and the graphql-ws client, which decides whether to retry by the code)
// wants 4401 for a subscribe before connection_ack, 4408 for a missing
// connection_init, 4429 for a second connection_init and 4400 otherwise.
//
// It also runs the graphql-transport-ws ping/pong keepalive (pingEvery),
// in place of gqlgen's PingPongInterval, which parks a goroutine per
// connection (about 7 KiB of stack) only to wait for its ticker. Here a
// timer does the same work with no goroutine between pings: a ping every
// pingEvery, and a connection whose pings have gone unanswered for twice
// that is closed, so vanished clients free their resources.
type closeCodes struct {
	inner     transport.WebsocketImplementation
	pingEvery time.Duration
}

func (c closeCodes) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := c.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	cc := &codedConn{WebsocketConn: conn, cut: cutFlagFrom(r.Context()), slow: slowFlagFrom(r.Context())}
	if c.pingEvery > 0 && conn.Subprotocol() == transportWSSubprotocol {
		cc.pingEvery = c.pingEvery
		// The upgrade request's context ends when the handler returns,
		// however the socket went away.
		context.AfterFunc(r.Context(), cc.stopKeepalive)
	}
	return cc, nil
}

type codedConn struct {
	transport.WebsocketConn
	mu       sync.Mutex
	inits    int
	lastType string
	cut      *atomic.Bool // set when the API key was revoked or expired
	slow     *atomic.Bool // set when a subscription was cut as a slow consumer

	// keepalive, under mu; the timer starts once connection_init has been
	// read (gqlgen starts its ping loop after the ack too): a client's pong
	// before connection_init would be a protocol error.
	pingEvery  time.Duration // 0: no keepalive
	pingTimer  *time.Timer
	unanswered int  // pings sent since the last pong
	done       bool // the connection is closing: no more pings
}

var (
	_ transport.WebsocketReadLimiter   = (*codedConn)(nil)
	_ transport.WebsocketReadDeadliner = (*codedConn)(nil)
)

// ping runs on its timer. The next ping is scheduled before this one is
// written, so a write stuck on a client that stopped reading cannot stall
// the keepalive: the timer then closes the connection, which unblocks it.
func (c *codedConn) ping() {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	if c.unanswered >= 2 {
		c.done = true
		c.mu.Unlock()
		_ = c.WebsocketConn.Close() // the read loop then fails and gqlgen cleans up
		return
	}
	c.unanswered++
	c.pingTimer.Reset(c.pingEvery)
	c.mu.Unlock()
	_ = c.WebsocketConn.WriteJSON(pingMessage{Type: "ping"})
}

type pingMessage struct {
	Type string `json:"type"`
}

func (c *codedConn) stopKeepalive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
}

func (c *codedConn) Close() error {
	c.stopKeepalive()
	return c.WebsocketConn.Close()
}

func (c *codedConn) NextReader() (int, io.Reader, error) {
	c.mu.Lock()
	if c.pingEvery > 0 && c.pingTimer == nil && c.inits > 0 && !c.done {
		c.pingTimer = time.AfterFunc(c.pingEvery, c.ping)
	}
	c.mu.Unlock()
	mt, r, err := c.WebsocketConn.NextReader()
	if err != nil {
		c.stopKeepalive()
		return mt, r, err
	}
	if c.Subprotocol() != transportWSSubprotocol {
		return mt, r, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		c.stopKeepalive()
		return mt, nil, err
	}
	var m struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(data, &m)
	c.mu.Lock()
	c.lastType = m.Type
	switch m.Type {
	case connectionInitMessageType:
		c.inits++
	case "pong":
		c.unanswered = 0
	}
	c.mu.Unlock()
	return mt, bytes.NewReader(data), nil
}

func (c *codedConn) WriteClose(code int, reason string) error {
	c.stopKeepalive()
	switch {
	case c.cut != nil && c.cut.Load():
		code, reason = closeForbidden, "Forbidden: API key revoked or expired"
	case c.slow != nil && c.slow.Load():
		code, reason = closeSlowConsumer, "Slow consumer: fell too far behind"
	}
	if code == transport.WebsocketCloseProtocolError && c.Subprotocol() == transportWSSubprotocol {
		c.mu.Lock()
		inits, last := c.inits, c.lastType
		c.mu.Unlock()
		switch {
		case reason == "connection initialisation timeout":
			code, reason = closeInitTimeout, "Connection initialisation timeout"
		case inits == 0 && last == "subscribe":
			code, reason = closeUnauthorized, "Unauthorized"
		case inits > 1 && last == connectionInitMessageType:
			code, reason = closeTooManyInitRequests, "Too many initialisation requests"
		default:
			code = closeBadRequest
		}
	}
	return c.WebsocketConn.WriteClose(code, reason)
}

func (c *codedConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *codedConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// websocketImplementation is coder/websocket with the configured origin
// patterns (liveHandler has already refused other origins with a clear 403;
// this keeps coder's own check in agreement), our close codes and the
// graphql-transport-ws keepalive every cfg.PingInterval.
func websocketImplementation(cfg Config) transport.WebsocketImplementation {
	patterns := make([]string, len(cfg.AllowedOrigins))
	for i, p := range cfg.AllowedOrigins {
		patterns[i] = strings.ToLower(p) // as originAllowed compares
	}
	return closeCodes{
		inner: transport.CoderWebsocketImplementation{
			AcceptOptions: coderws.AcceptOptions{OriginPatterns: patterns},
		},
		pingEvery: cfg.PingInterval,
	}
}

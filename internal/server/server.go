// Package server is dirsync's HTTP front: it mounts the GraphQL handler, GraphiQL
// (when enabled), health and readiness probes, gives every request an id and a log
// line, and shuts down gracefully.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dirsync/dirsync/internal/logctx"
	"github.com/dirsync/dirsync/internal/metrics"
	"github.com/dirsync/dirsync/internal/statuswriter"
)

// Check is one readiness dependency (PostgreSQL, Redis).
type Check struct {
	Name string
	Ping func(ctx context.Context) error
	// ShowError puts the error text in the /readyz body. Off for connection
	// checks, whose errors may name hosts; on for our own checks (migrations,
	// relay), whose text tells the operator what to do.
	ShowError bool
}

// Config wires the server. GraphQL is required; everything else is optional.
type Config struct {
	Addr    string
	GraphQL http.Handler
	// Routes are further handlers by ServeMux pattern (e.g. "GET /jobs/{id}/results.csv").
	Routes          map[string]http.Handler
	Playground      bool
	Checks          []Check
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Limits bound what one client may hold of the server; zero fields get
	// the defaults of DefaultLimits.
	Limits Limits
	// Metrics counts requests by operation and status; nil = none. /metrics
	// itself is served by Ops on its own address, not here.
	Metrics *metrics.Metrics
	// Queues, when set, is mounted at /admin/queues (internal/queueui: the
	// asynq dashboard; it authenticates by itself).
	Queues http.Handler
}

// Limits are the connection-level bounds of the HTTP server (see
// docs/security.md). They are what stops a client that sends its headers or
// body a byte at a time from holding a connection for ever.
type Limits struct {
	// ReadHeaderTimeout bounds reading the request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its answer. Subscription streams (SSE, websockets) lift it for
	// their own request once the request is read: they live for hours.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends nothing.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	// MaxStreamBodyBytes bounds the body of a subscription request over SSE,
	// which the server reads in full before lifting the deadlines.
	MaxStreamBodyBytes int64
}

// DefaultLimits are safe for an API behind a load balancer: a GraphQL request
// body of the maximum size (1 MiB) still arrives in ReadTimeout at 35 KB/s,
// and WriteTimeout outlasts the slowest mutation (authorizing an integration
// waits up to 30 s for Microsoft).
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout:  10 * time.Second,
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       60 * time.Second,
		IdleTimeout:        2 * time.Minute,
		MaxHeaderBytes:     64 << 10,
		MaxStreamBodyBytes: 1 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = d.ReadTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxStreamBodyBytes <= 0 {
		l.MaxStreamBodyBytes = d.MaxStreamBodyBytes
	}
	return l
}

// Server is an http.Server with dirsync's routes.
type Server struct {
	cfg  Config
	http *http.Server
	// graphiql is the rendered GraphiQL page and graphiqlCSP the policy that
	// allows exactly what it loads.
	graphiql    []byte
	graphiqlCSP string
}

// New validates cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.GraphQL == nil {
		return nil, errors.New("server: GraphQL handler required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	s := &Server{cfg: cfg}
	if cfg.Playground {
		page, csp, err := graphiQL()
		if err != nil {
			return nil, err
		}
		s.graphiql, s.graphiqlCSP = page, csp
	}
	l := cfg.Limits
	s.http = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler is the routed handler, exposed for httptest.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/graphql", s.cfg.GraphQL)
	for pattern, h := range s.cfg.Routes {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", Ready(s.cfg.Checks, s.cfg.Logger))
	if s.cfg.Queues != nil {
		q := queuesCSP(s.cfg.Queues)
		mux.Handle("/admin/queues", q)
		mux.Handle("/admin/queues/", q)
	}
	if s.cfg.Playground {
		mux.HandleFunc("GET /{$}", s.serveGraphiQL)
		mux.Handle("GET "+graphiqlAssetPath, graphiqlAssets())
	}
	return securityHeaders(requestID(s.logged(s.cfg.Metrics.Middleware(recoverer(s.cfg.Logger, streams(s.cfg.Limits, mux))))))
}

// Ready answers 200 only when every check passes, naming the failing ones with
// the reason (no secrets: checks report connection and version problems).
func Ready(checks []Check, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status, body := http.StatusOK, map[string]string{}
		for _, c := range checks {
			if err := c.Ping(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body[c.Name] = "unavailable"
				if c.ShowError {
					body[c.Name] += ": " + err.Error()
				}
				log.WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
				continue
			}
			body[c.Name] = "ok"
		}
		writeJSON(w, status, body)
	})
}

// Ops is the operator's handler for the separate metrics address: /metrics,
// and /healthz and /readyz (the worker has no other HTTP listener).
func Ops(m *metrics.Metrics, checks []Check, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", Ready(checks, log))
	return mux
}

// ServeOps serves h on addr until ctx ends.
func ServeOps(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	s, err := New(Config{Addr: addr, GraphQL: h, Logger: log, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	s.http.Handler = h
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: metrics listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// ListenAndServe serves until ctx ends, then drains in-flight requests for at most
// ShutdownTimeout.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is ListenAndServe on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	s.cfg.Logger.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type ctxKey struct{}

// RequestID returns the id the server gave the request (or took from X-Request-Id).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// maxRequestIDLen bounds a client's X-Request-ID: it goes into every log line.
const maxRequestIDLen = 64

// validRequestID accepts what tracing systems send (UUIDs, hex, base64url,
// dotted or colon-separated ids) and nothing that could forge a log field.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '/', c == '+', c == '=':
		default:
			return false
		}
	}
	return true
}

// requestID honours a well-formed X-Request-ID (else makes one), returns it,
// and puts it in the context for every log line of the request.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), ctxKey{}, id)
		ctx = logctx.With(ctx, slog.String("request_id", id))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statuswriter.Writer{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.Status == 0 {
			sw.Status = http.StatusOK
		}
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		// The query string and headers are left out: they may carry keys.
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.Status), slog.Duration("duration", time.Since(start)))
	})
}

func recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(v))
				writeJSON(w, http.StatusInternalServerError, map[string]any{
					"errors": []map[string]any{{"message": "internal error", "extensions": map[string]string{"code": "INTERNAL"}}},
				})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

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

	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/dirsync/dirsync/internal/logctx"
	"github.com/dirsync/dirsync/internal/metrics"
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
	Addr            string
	GraphQL         http.Handler
	Playground      bool
	Checks          []Check
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Metrics counts requests by operation and status; nil = none. /metrics
	// itself is served by Ops on its own address, not here.
	Metrics *metrics.Metrics
}

// Server is an http.Server with dirsync's routes.
type Server struct {
	cfg  Config
	http *http.Server
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
	s := &Server{cfg: cfg}
	s.http = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: subscriptions (SSE, websockets) are long-lived responses.
		IdleTimeout: 2 * time.Minute,
	}
	return s, nil
}

// Handler is the routed handler, exposed for httptest.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/graphql", s.cfg.GraphQL)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", Ready(s.cfg.Checks, s.cfg.Logger))
	if s.cfg.Playground {
		mux.Handle("GET /{$}", playground.Handler("dirsync", "/graphql"))
	}
	return requestID(s.logged(s.cfg.Metrics.Middleware(recoverer(s.cfg.Logger, mux))))
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

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush/Hijack for SSE and websockets.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is asserted directly (w.(http.Flusher)) by gqlgen's SSE transport:
// without it SSE subscriptions through the server fail with 500.
func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		// The query string and headers are left out: they may carry keys.
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
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

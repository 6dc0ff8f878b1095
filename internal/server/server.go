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
)

// Check is one readiness dependency (PostgreSQL, Redis).
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Config wires the server. GraphQL is required; everything else is optional.
type Config struct {
	Addr            string
	GraphQL         http.Handler
	Playground      bool
	Checks          []Check
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Queues, when set, is mounted at /admin/queues (internal/queueui: the
	// asynq dashboard; it authenticates by itself).
	Queues http.Handler
}

// Server is an http.Server with dirsync's routes.
type Server struct {
	cfg  Config
	http *http.Server
	// graphiql is the rendered GraphiQL page and graphiqlCSP its policy.
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
	s := &Server{cfg: cfg}
	if cfg.Playground {
		page, csp, err := graphiQL()
		if err != nil {
			return nil, err
		}
		s.graphiql, s.graphiqlCSP = page, csp
	}
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
	mux.HandleFunc("GET /readyz", s.ready)
	if s.cfg.Queues != nil {
		mux.Handle("/admin/queues", s.cfg.Queues)
		mux.Handle("/admin/queues/", s.cfg.Queues)
	}
	if s.cfg.Playground {
		mux.HandleFunc("GET /{$}", s.serveGraphiQL)
		mux.Handle("GET "+graphiqlAssetPath, graphiqlAssets())
	}
	return requestID(s.logged(recoverer(s.cfg.Logger, mux)))
}

// ready answers 200 only when every dependency answers, naming the failing ones.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, body := http.StatusOK, map[string]string{}
	for _, c := range s.cfg.Checks {
		if err := c.Ping(ctx); err != nil {
			status = http.StatusServiceUnavailable
			body[c.Name] = "unavailable"
			s.cfg.Logger.WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
			continue
		}
		body[c.Name] = "ok"
	}
	writeJSON(w, status, body)
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

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
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
			slog.String("request_id", RequestID(r.Context())),
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
				log.ErrorContext(r.Context(), "panic serving request", "request_id", RequestID(r.Context()), "panic", fmt.Sprint(v))
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

// Package queueui mounts the asynq queue dashboard (asynqmon) under
// /admin/queues, behind the API's own keys: an admin key gets the full UI
// (retry, archive, delete tasks), a read-only key the same views with every
// action disabled (asynqmon's read-only mode). Browsers cannot attach a
// bearer token to a page load, so the key also comes as the password of HTTP
// Basic authentication (any user name), which the browser asks for.
package queueui

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/auth"
)

// Path is where the dashboard is mounted.
const Path = "/admin/queues"

// Handler serves the dashboard for requests carrying a valid API key and
// answers 401 (with a Basic challenge) otherwise. Close releases its Redis
// connections.
type Handler struct {
	client        *ent.Client
	logger        *slog.Logger
	admin, reader *asynqmon.HTTPHandler
}

// New builds the handler on the deployment's Redis (the asynq queues).
func New(redis asynq.RedisConnOpt, client *ent.Client, logger *slog.Logger) *Handler {
	return &Handler{
		client: client,
		logger: logger,
		admin:  asynqmon.New(asynqmon.Options{RootPath: Path, RedisConnOpt: redis}),
		reader: asynqmon.New(asynqmon.Options{RootPath: Path, RedisConnOpt: redis, ReadOnly: true}),
	}
}

// Close releases the dashboard's Redis connections.
func (h *Handler) Close() {
	_ = h.admin.Close()
	_ = h.reader.Close()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := bearer(r)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="dirsync queues: an API key as the password"`)
		http.Error(w, "an API key is required (Authorization: Bearer <key>, or the password of Basic auth)", http.StatusUnauthorized)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	v, err := auth.Authenticate(ctx, h.client, token)
	cancel()
	switch {
	case errors.Is(err, auth.ErrInvalidKey):
		w.Header().Set("WWW-Authenticate", `Basic realm="dirsync queues: an API key as the password"`)
		http.Error(w, "invalid API key", http.StatusUnauthorized)
	case err != nil:
		h.logger.ErrorContext(r.Context(), "authenticating queue dashboard", "err", err)
		http.Error(w, "authentication is unavailable, retry later", http.StatusServiceUnavailable)
	case v.CanWrite():
		h.admin.ServeHTTP(w, r)
	default:
		h.reader.ServeHTTP(w, r)
	}
}

func bearer(r *http.Request) string {
	const scheme = "bearer "
	if a := r.Header.Get("Authorization"); len(a) > len(scheme) && strings.EqualFold(a[:len(scheme)], scheme) {
		return strings.TrimSpace(a[len(scheme):])
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return pw
	}
	return ""
}

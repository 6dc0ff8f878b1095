// Package logctx carries the identifiers of the work in progress (request id,
// job id, integration id) in a context and adds them to every log line written
// with that context, so one grep follows a request or a job through every
// package without each call site repeating them.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns ctx carrying attrs in addition to those it already carries. A
// key given again replaces the earlier value.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev := From(ctx)
	merged := make([]slog.Attr, 0, len(prev)+len(attrs))
	for _, a := range prev {
		if !has(attrs, a.Key) {
			merged = append(merged, a)
		}
	}
	merged = append(merged, attrs...)
	return context.WithValue(ctx, key{}, merged)
}

// From returns the attributes ctx carries.
func From(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(key{}).([]slog.Attr)
	return a
}

// Value returns the value of one carried attribute ("" when absent).
func Value(ctx context.Context, k string) string {
	for _, a := range From(ctx) {
		if a.Key == k {
			return a.Value.String()
		}
	}
	return ""
}

func has(attrs []slog.Attr, k string) bool {
	for _, a := range attrs {
		if a.Key == k {
			return true
		}
	}
	return false
}

// Handler adds the context's attributes to every record. Attributes the call
// site or the logger (Logger.With) already gives under the same key are not
// repeated.
type Handler struct {
	next  slog.Handler
	given map[string]bool // top-level keys added by WithAttrs
	group bool            // inside WithGroup: keys there do not clash with ours
}

// NewHandler wraps next.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs := From(ctx); len(attrs) > 0 {
		present := map[string]bool{}
		if !h.group {
			r.Attrs(func(a slog.Attr) bool { present[a.Key] = true; return true })
		}
		for _, a := range attrs {
			if !present[a.Key] && !h.given[a.Key] {
				r.AddAttrs(a)
			}
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	given := h.given
	if !h.group {
		given = make(map[string]bool, len(h.given)+len(attrs))
		for k := range h.given {
			given[k] = true
		}
		for _, a := range attrs {
			given[a.Key] = true
		}
	}
	return &Handler{next: h.next.WithAttrs(attrs), given: given, group: h.group}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{next: h.next.WithGroup(name), given: h.given, group: true}
}

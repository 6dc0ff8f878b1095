// Package viewer carries who is calling through a context. It has no dependency
// on the generated ent code, so ent schema hooks and privacy rules can use it
// without an import cycle.
package viewer

import (
	"context"
	"errors"
	"time"

	"entgo.io/ent/privacy"

	"github.com/dirsync/dirsync/ent/schema/pulid"
)

// Role is what an API key may do. The values equal the ent enum values of
// apikey.Role so the two convert with a plain string conversion.
type Role string

const (
	// RoleAdmin may read and write everything of its organization.
	RoleAdmin Role = "ADMIN"
	// RoleReadOnly may read everything of its organization and write nothing.
	RoleReadOnly Role = "READONLY"
)

// Viewer is an authenticated caller bound to one organization.
type Viewer struct {
	OrgID pulid.ID
	KeyID pulid.ID
	Role  Role
	// Expires is when the key stops working (zero: never); long-lived
	// connections close then.
	Expires time.Time
}

// CanWrite reports whether the viewer may run mutations.
func (v Viewer) CanWrite() bool { return v.Role == RoleAdmin }

type ctxKey struct{}

// NewContext returns ctx carrying v.
func NewContext(ctx context.Context, v Viewer) context.Context {
	return context.WithValue(ctx, ctxKey{}, v)
}

// FromContext returns the viewer of ctx, if any.
func FromContext(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(ctxKey{}).(Viewer)
	return v, ok && v.OrgID != ""
}

// SystemContext marks ctx as the trusted system (CLI, worker, relay): every
// privacy rule allows it and no organization filter applies, so callers must
// scope their queries themselves.
func SystemContext(ctx context.Context) context.Context {
	return privacy.DecisionContext(ctx, privacy.Allow)
}

// ErrReadOnly is the reason a read-only viewer's write is denied.
var ErrReadOnly = errors.New("the API key is read-only")

// ErrNoViewer is the reason a request without a viewer is denied.
var ErrNoViewer = errors.New("no authenticated viewer")

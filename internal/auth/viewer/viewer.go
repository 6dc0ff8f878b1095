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
	// RolePortal is an end user's portal session (O2): it reads its own user
	// row only and writes nothing through the privacy policy; the portal
	// service does the writes it may make.
	RolePortal Role = "PORTAL"
)

// Viewer is an authenticated caller bound to one organization.
type Viewer struct {
	OrgID pulid.ID
	KeyID pulid.ID
	Role  Role
	// UserID and SessionID are set for RolePortal only.
	UserID    pulid.ID
	SessionID pulid.ID
	// Expires is when the key stops working (zero: never); long-lived
	// connections close then.
	Expires time.Time
}

// IsPortal reports whether the viewer is an end user's portal session.
func (v Viewer) IsPortal() bool { return v.Role == RolePortal }

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

// ErrPortal is the reason a portal session's read or write is denied.
var ErrPortal = errors.New("a portal session may read only its own user")

// ErrNoViewer is the reason a request without a viewer is denied.
var ErrNoViewer = errors.New("no authenticated viewer")

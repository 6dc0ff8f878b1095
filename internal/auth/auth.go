// Package auth authenticates API callers and carries the resulting viewer
// (package viewer) through contexts. API keys are 32 random bytes shown once as
// "dsk_<base64url>"; only their SHA-256 is stored.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/apikey"
	_ "github.com/dirsync/dirsync/ent/runtime" // registers schema hooks and privacy policies
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth/viewer"
)

// Viewer is the authenticated caller; see package viewer.
type Viewer = viewer.Viewer

// Role is what a key may do.
type Role = viewer.Role

// Roles.
const (
	RoleAdmin    = viewer.RoleAdmin
	RoleReadOnly = viewer.RoleReadOnly
)

// KeyPrefix starts every API key, so leaked keys are recognisable by scanners.
const KeyPrefix = "dsk_"

// ErrInvalidKey is returned for a missing, malformed, unknown or revoked key.
var ErrInvalidKey = errors.New("auth: invalid API key")

// lastUsedGranularity bounds how often authenticating writes last_used_at:
// at most once per key per interval, so reads do not become writes.
const lastUsedGranularity = time.Minute

// WithViewer returns ctx carrying v.
func WithViewer(ctx context.Context, v Viewer) context.Context { return viewer.NewContext(ctx, v) }

// ViewerFrom returns the viewer of ctx, if any.
func ViewerFrom(ctx context.Context) (Viewer, bool) { return viewer.FromContext(ctx) }

// SystemContext marks ctx as the trusted system (CLI, worker): privacy rules
// allow everything and no organization filter applies.
func SystemContext(ctx context.Context) context.Context { return viewer.SystemContext(ctx) }

// ParseRole accepts "admin", "readonly"/"read-only" in any case.
func ParseRole(s string) (Role, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "")) {
	case "ADMIN":
		return RoleAdmin, nil
	case "READONLY":
		return RoleReadOnly, nil
	}
	return "", fmt.Errorf("auth: unknown role %q (want admin or readonly)", s)
}

// CreateAPIKey creates a key for the organization and returns its plaintext,
// which is not stored and cannot be shown again. It runs as the system.
func CreateAPIKey(ctx context.Context, client *ent.Client, orgID pulid.ID, name string, role Role) (string, *ent.APIKey, error) {
	plaintext, c, err := NewKey(client.APIKey.Create())
	if err != nil {
		return "", nil, err
	}
	k, err := c.SetOrganizationID(orgID).SetName(name).SetRole(apikey.Role(role)).Save(SystemContext(ctx))
	if err != nil {
		return "", nil, fmt.Errorf("auth: creating key: %w", err)
	}
	return plaintext, k, nil
}

// NewKey generates a key and sets its hash and prefix on c; the caller sets
// the rest and saves. The plaintext is returned once and stored nowhere.
func NewKey(c *ent.APIKeyCreate) (string, *ent.APIKeyCreate, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("auth: generating key: %w", err)
	}
	plaintext := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(plaintext))
	return plaintext, c.SetKeyHash(sum[:]).SetKeyPrefix(plaintext[:len(KeyPrefix)+6]), nil
}

// Usable reports whether k may authenticate at now: not revoked, not expired.
func Usable(k *ent.APIKey, now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// Authenticate resolves a bearer token to its viewer. The lookup is by the
// SHA-256 of the token, so response timing reveals nothing about stored keys;
// the final comparison is constant-time anyway.
func Authenticate(ctx context.Context, client *ent.Client, bearerToken string) (Viewer, error) {
	if !strings.HasPrefix(bearerToken, KeyPrefix) || len(bearerToken) > 128 {
		return Viewer{}, ErrInvalidKey
	}
	sum := sha256.Sum256([]byte(bearerToken))
	sys := SystemContext(ctx)
	k, err := client.APIKey.Query().Where(apikey.KeyHash(sum[:])).Only(sys)
	if ent.IsNotFound(err) {
		return Viewer{}, ErrInvalidKey
	}
	if err != nil {
		return Viewer{}, fmt.Errorf("auth: looking up key: %w", err)
	}
	now := time.Now()
	if subtle.ConstantTimeCompare(k.KeyHash, sum[:]) != 1 || !Usable(k, now) {
		return Viewer{}, ErrInvalidKey
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > lastUsedGranularity {
		// Conditional so concurrent requests write at most once; a failure
		// only loses a timestamp, never the request.
		_, _ = client.APIKey.Update().
			Where(apikey.ID(k.ID), apikey.Or(apikey.LastUsedAtIsNil(), apikey.LastUsedAtLT(now.Add(-lastUsedGranularity)))).
			SetLastUsedAt(now).
			Save(sys)
	}
	v := Viewer{OrgID: k.OrganizationID, KeyID: k.ID, Role: Role(k.Role)}
	if k.ExpiresAt != nil {
		v.Expires = *k.ExpiresAt
	}
	return v, nil
}

// StillUsable re-reads a key that authenticated a long-lived connection: false
// once it is revoked, expired or deleted.
func StillUsable(ctx context.Context, client *ent.Client, keyID pulid.ID) (bool, error) {
	k, err := client.APIKey.Get(SystemContext(ctx), keyID)
	if ent.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: re-reading key: %w", err)
	}
	return Usable(k, time.Now()), nil
}

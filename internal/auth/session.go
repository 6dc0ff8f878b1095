package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usertoken"
	"github.com/dirsync/dirsync/internal/auth/viewer"
)

// Token prefixes of end users' secrets (O2), so each kind is recognisable and
// a token of one kind is never accepted as another.
const (
	SessionPrefix    = "dsp_"
	ActivationPrefix = "dsa_"
	ResetPrefix      = "dsr_"
)

// MaxSessionTTL bounds a portal session's life.
const MaxSessionTTL = time.Hour

// ErrInvalidSession is returned for a missing, malformed, unknown, expired or
// ended portal session token.
var ErrInvalidSession = errors.New("auth: invalid or expired portal session")

// NewUserToken returns a fresh token with the kind's prefix and the SHA-256 the
// user_tokens table stores in its place.
func NewUserToken(kind usertoken.Kind) (token string, hash []byte, err error) {
	prefix := map[usertoken.Kind]string{
		usertoken.KindSESSION: SessionPrefix, usertoken.KindACTIVATION: ActivationPrefix, usertoken.KindRESET: ResetPrefix,
	}[kind]
	if prefix == "" {
		return "", nil, fmt.Errorf("auth: unknown token kind %q", kind)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("auth: generating token: %w", err)
	}
	token = prefix + base64.RawURLEncoding.EncodeToString(raw[:])
	return token, HashToken(token), nil
}

// HashToken is what is stored of a user token.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// IsSessionToken reports whether a bearer token is meant as a portal session.
func IsSessionToken(token string) bool { return strings.HasPrefix(token, SessionPrefix) }

// AuthenticateSession resolves a portal session token to its viewer: the
// session must exist (logout deletes it), be unexpired, and its user must not
// be suspended.
func AuthenticateSession(ctx context.Context, client *ent.Client, token string, now time.Time) (Viewer, error) {
	if !IsSessionToken(token) || len(token) > 128 {
		return Viewer{}, ErrInvalidSession
	}
	sys := SystemContext(ctx)
	s, err := client.UserToken.Query().
		Where(usertoken.TokenHash(HashToken(token)), usertoken.KindEQ(usertoken.KindSESSION), usertoken.ExpiresAtGT(now)).
		WithUser(func(q *ent.UserQuery) { q.Select(user.FieldID, user.FieldState) }).
		Only(sys)
	if ent.IsNotFound(err) {
		return Viewer{}, ErrInvalidSession
	}
	if err != nil {
		return Viewer{}, fmt.Errorf("auth: looking up session: %w", err)
	}
	if s.Edges.User == nil || s.Edges.User.State == user.StateSUSPENDED {
		return Viewer{}, ErrInvalidSession
	}
	return Viewer{OrgID: s.OrganizationID, Role: RolePortal, UserID: s.UserID, SessionID: s.ID}, nil
}

// RolePortal is an end user's portal session.
const RolePortal = viewer.RolePortal

type clientIPKey struct{}

// WithClientIP returns ctx carrying the caller's IP address (rate limits).
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

// ClientIP returns the caller's IP address, "" if unknown.
func ClientIP(ctx context.Context) string {
	s, _ := ctx.Value(clientIPKey{}).(string)
	return s
}

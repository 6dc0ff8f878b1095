// Package apikeys is API-key management for admins through GraphQL: list,
// create (the secret is returned once), revoke. Authentication itself is in
// internal/auth; cutting open connections of a revoked key is in internal/api,
// which listens for the KindRevoked message published here after commit.
package apikeys

import (
	"context"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/apikey"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/txn"
)

// KindRevoked is the pub/sub message kind announcing a revoked key (ID is the
// key id) to every API process, so each closes the key's open streams.
const KindRevoked = "apikey_revoked"

// Service manages the keys of the viewer's organisation; the privacy policy
// scopes every query and write to it.
type Service struct {
	client    *ent.Client
	publisher *pubsub.Publisher // nil: no live revocation (tests, CLI)
	now       func() time.Time
}

// New returns the service; publisher may be nil.
func New(client *ent.Client, publisher *pubsub.Publisher) *Service {
	return &Service{client: client, publisher: publisher, now: time.Now}
}

// Query lists the organisation's keys, newest first; revoked ones only when
// includeRevoked.
func (s *Service) Query(ctx context.Context, includeRevoked bool) *ent.APIKeyQuery {
	q := s.client.APIKey.Query()
	if !includeRevoked {
		q = q.Where(apikey.RevokedAtIsNil())
	}
	return q
}

// Create makes a key of the viewer's organisation and returns it with its
// plaintext, which is not stored.
func (s *Service) Create(ctx context.Context, name string, role apikey.Role, expiresAt *time.Time) (*ent.APIKey, string, error) {
	if expiresAt != nil && !expiresAt.After(s.now()) {
		return nil, "", gqlerr.BadInput("expiresAt", "expiresAt must be in the future")
	}
	var (
		k      *ent.APIKey
		secret string
	)
	err := txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		plain, create, err := auth.NewKey(c.APIKey.Create())
		if err != nil {
			return err
		}
		k, err = create.SetName(name).SetRole(role).SetNillableExpiresAt(expiresAt).Save(ctx)
		secret = plain
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// Revoke marks the key revoked; authentication refuses it from the commit on.
// After the commit every API process is told, so open streams of the key close
// at once. Revoking a revoked key changes nothing and announces nothing.
func (s *Service) Revoke(ctx context.Context, id pulid.ID) (*ent.APIKey, error) {
	var k *ent.APIKey
	err := txn.Run(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		cur, err := c.APIKey.Query().Where(apikey.ID(id)).ForUpdate().Only(ctx)
		if err != nil {
			return err
		}
		if cur.RevokedAt != nil {
			k = cur
			return nil
		}
		if k, err = c.APIKey.UpdateOne(cur).SetRevokedAt(s.now()).Save(ctx); err != nil {
			return err
		}
		if tx := ent.TxFromContext(ctx); tx != nil && s.publisher != nil {
			org, keyID := string(k.OrganizationID), string(k.ID)
			tx.OnCommit(func(next ent.Committer) ent.Committer {
				return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
					if err := next.Commit(ctx, tx); err != nil {
						return err
					}
					s.announce(ctx, org, keyID)
					return nil
				})
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// announce is best effort: a lost message leaves streams to the periodic
// re-check (internal/api), never a key that authenticates new requests.
func (s *Service) announce(ctx context.Context, org, keyID string) {
	_ = s.publisher.Publish(context.WithoutCancel(ctx), pubsub.Message{Kind: KindRevoked, OrgID: org, ID: keyID, At: s.now()})
}

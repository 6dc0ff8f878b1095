// Package integrations holds the domain operations on integrations (SPEC I1–I8)
// and their bindings (B1–B2): settings with their validation, authorization
// against the tenant, de-authorization, deletion, and binding users and user
// groups. Every write runs in one transaction together with the job and outbox
// rows of the remote work it causes (internal/jobs), so work and state commit
// together; nothing here talks to Redis.
//
// The only remote calls are those of Authorize, made before anything is locked
// or written. Tenancy is enforced by the ent privacy policy underneath: an id
// of another organization is simply not found.
package integrations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	_ "github.com/dirsync/dirsync/ent/runtime" // registers schema hooks and privacy policies
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/txn"
)

// DefaultAuthorizeTimeout bounds the remote calls of one authorization.
const DefaultAuthorizeTimeout = 30 * time.Second

// Service performs integration writes.
type Service struct {
	client  *ent.Client
	tenants *tenant.Connector
	// AuthorizeTimeout bounds the token request and GET /domains together.
	AuthorizeTimeout time.Duration
}

// New returns a Service. tenants seals secrets and builds Graph clients; it may
// be nil where integrations are not used (then creating or authorizing one
// fails with INTERNAL).
func New(client *ent.Client, tenants *tenant.Connector) *Service {
	return &Service{client: client, tenants: tenants, AuthorizeTimeout: DefaultAuthorizeTimeout}
}

var errNoConnector = errors.New("integrations: no tenant connector configured")

// inTx runs fn with a transactional client: the one in ctx if any (the GraphQL
// request's), else a new transaction committed when fn succeeds.
func (s *Service) inTx(ctx context.Context, fn func(ctx context.Context, c *ent.Client) error) error {
	return txn.Run(ctx, s.client, fn)
}

// reader is the client to read with outside inTx: the request's transaction
// if there is one (it may hold rows written earlier in the same request).
func (s *Service) reader(ctx context.Context) *ent.Client {
	if tx := ent.TxFromContext(ctx); tx != nil {
		return tx.Client()
	}
	return s.client
}

// detach makes an entity returned by inTx usable after its own transaction
// ended; under a request transaction it stays attached to it.
func detach(ctx context.Context, in *ent.Integration) *ent.Integration {
	if in != nil && ent.TxFromContext(ctx) == nil {
		return in.Unwrap()
	}
	return in
}

func detachJob(ctx context.Context, j *ent.Job) *ent.Job {
	if j != nil && ent.TxFromContext(ctx) == nil {
		return j.Unwrap()
	}
	return j
}

// notFound turns ent's not-found into a NOT_FOUND naming the input field.
func notFound(err error, field string, id pulid.ID) error {
	if ent.IsNotFound(err) {
		return &gqlerr.Error{Code: gqlerr.NotFound, Field: field, Message: fmt.Sprintf("integration %s not found", id), Err: err}
	}
	return err
}

// lock loads the integration locked for the rest of the transaction. Writers
// of the integration row take FOR UPDATE; binding changes take FOR SHARE, so
// they run concurrently with each other but not with a de-authorization that
// would otherwise miss a binding created meanwhile.
func lock(ctx context.Context, c *ent.Client, id pulid.ID, field string, exclusive bool) (*ent.Integration, error) {
	q := c.Integration.Query().Where(integration.ID(id))
	if exclusive {
		q = q.ForUpdate()
	} else {
		q = q.ForShare()
	}
	in, err := q.Only(ctx)
	if err != nil {
		return nil, notFound(err, field, id)
	}
	return in, nil
}

// lockOrgDomains serialises, per organization, every write that makes an
// integration claim domains while AUTHORIZED (authorize, domain changes), so
// two concurrent authorizations cannot both pass the I3 check.
func lockOrgDomains(ctx context.Context, c *ent.Client, orgID pulid.ID) error {
	_, err := c.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('dirsync:integration-domains:' || $1))", string(orgID))
	if err != nil {
		return fmt.Errorf("integrations: lock organization domains: %w", err)
	}
	return nil
}

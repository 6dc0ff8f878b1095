package integrations

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/userbinding"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/egress"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/upn"
)

// neverExpires is the passwordValidityPeriodInDays Entra reports for a domain
// whose passwords do not expire.
const neverExpires = 2147483647

// tenantFacts is what an authorization learns from the tenant.
type tenantFacts struct {
	verified       []string // verified domains, lower-case, sorted
	passwordExpiry bool     // I7
}

// Authorize validates the credentials (I2): a token, then GET /domains. The
// remote calls run before anything is locked or written; the result is then
// checked against D5 (configured domains verified) and I3 (no domain claimed by
// another AUTHORIZED integration of the organization) and stored. On failure
// the integration keeps its status and last_error says why — written in its
// own short transaction, because the request's is rolled back with the error.
// Users already bound (bindings survive a credential change) are reconciled by
// one job.
func (s *Service) Authorize(ctx context.Context, id pulid.ID) (*ent.Integration, *ent.Job, error) {
	if s.tenants == nil {
		return nil, nil, errNoConnector
	}
	snap, err := s.reader(ctx).Integration.Get(ctx, id)
	if err != nil {
		return nil, nil, notFound(err, "id", id)
	}
	facts, err := s.readTenant(ctx, snap)
	if err != nil {
		s.recordFailure(ctx, id, err)
		return nil, nil, err
	}
	var (
		out *ent.Integration
		job *ent.Job
	)
	err = s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		if err := lockOrgDomains(ctx, c, snap.OrganizationID); err != nil {
			return err
		}
		// Check before locking the row: a refusal is recorded on the row by
		// recordFailure, which must not wait for our own lock.
		cur, err := c.Integration.Get(ctx, id)
		if err != nil {
			return notFound(err, "id", id)
		}
		if err := checkVerified(cur.Domains, facts.verified); err != nil {
			return err
		}
		if err := checkOverlap(ctx, c, cur.ID, cur.Domains, facts.verified); err != nil {
			return err
		}
		locked, err := lock(ctx, c, id, "id", true)
		if err != nil {
			return err
		}
		if !sameCredentials(snap, locked) || !slices.Equal(locked.Domains, cur.Domains) {
			return gqlerr.Newf(gqlerr.Conflict, "id", "the integration changed while it was being authorized; authorize again")
		}
		cur = locked
		out, err = cur.Update().
			SetStatus(integration.StatusAUTHORIZED).
			SetAuthorizedAt(time.Now()).
			SetVerifiedDomains(facts.verified).
			SetTenantPasswordExpiry(facts.passwordExpiry).
			SetLastError("").
			Save(ctx)
		if err != nil {
			return err
		}
		targets, err := connect.IntegrationTargets(ctx, c, id)
		if err != nil {
			return err
		}
		// An integration joining may take users over from another (I4).
		if targets, err = connect.Spread(ctx, c, targets); err != nil {
			return err
		}
		// Groups still bound across a credential change are managed again
		// (or released, if management was turned off meanwhile).
		gt, err := groupTargets(ctx, c, cur.OrganizationID, id)
		if err != nil {
			return err
		}
		targets = append(gt, targets...)
		job, err = jobs.Start(ctx, c, cur.OrganizationID, jobs.JobIntegrationAuthorize, id, targets)
		return err
	})
	if err != nil {
		var ge *gqlerr.Error
		if errors.As(err, &ge) && (ge.Code == gqlerr.BadUserInput || ge.Code == gqlerr.Conflict) {
			s.recordFailure(ctx, id, err)
		}
		return nil, nil, err
	}
	return detach(ctx, out), detachJob(ctx, job), nil
}

// readTenant obtains a token with a fresh client (no cached token may hide a
// revoked secret) and reads the tenant's domains.
func (s *Service) readTenant(ctx context.Context, in *ent.Integration) (tenantFacts, error) {
	gc, err := s.tenants.Build(in)
	if err != nil {
		if errors.Is(err, tenant.ErrCustomURL) {
			return tenantFacts{}, &gqlerr.Error{Code: gqlerr.FailedPrecondition, Field: "graphBaseURL",
				Message: "this server no longer allows the integration's custom Graph or login URL; clear them", Err: err}
		}
		if errors.Is(err, egress.ErrBlocked) {
			return tenantFacts{}, &gqlerr.Error{Code: gqlerr.FailedPrecondition, Field: "graphBaseURL",
				Message: "this server no longer allows the integration's Graph or login URL (" + err.Error() + "); change them", Err: err}
		}
		return tenantFacts{}, fmt.Errorf("integrations: graph client: %w", err)
	}
	timeout := s.AuthorizeTimeout
	if timeout <= 0 {
		timeout = DefaultAuthorizeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := gc.Token(ctx); err != nil {
		return tenantFacts{}, classify(in, err, "loginBaseURL")
	}
	ds, err := gc.ListDomains(ctx)
	if err != nil {
		return tenantFacts{}, classify(in, err, "graphBaseURL")
	}
	var f tenantFacts
	for _, d := range ds {
		if !d.IsVerified {
			continue
		}
		f.verified = append(f.verified, upn.NormalizeDomain(d.ID))
		if p := d.PasswordValidityPeriodInDays; p != nil && *p > 0 && *p != neverExpires {
			f.passwordExpiry = true
		}
	}
	slices.Sort(f.verified)
	f.verified = slices.Compact(f.verified)
	return f, nil
}

// classify turns a failed token request or Graph call into a typed error that
// says which setting is wrong. Messages carry Entra's AADSTS text, never the
// secret (msgraph errors contain no request bodies). urlField names the base
// URL the failed call went to.
func classify(in *ent.Integration, err error, urlField string) error {
	var blocked *egress.BlockedError
	switch {
	case errors.As(err, &blocked):
		return &gqlerr.Error{Code: gqlerr.BadUserInput, Field: urlField,
			Message: urlField + ": " + blocked.Error(), Err: err}
	case errors.Is(err, msgraph.ErrRedirect):
		return &gqlerr.Error{Code: gqlerr.BadUserInput, Field: urlField,
			Message: urlField + ": the endpoint answered with a redirect; redirects are never followed, so configure the final URL", Err: err}
	}
	if ae, ok := msgraph.IsAuthError(err); ok {
		desc := firstLine(ae.Description)
		switch ae.Reason() {
		case "bad_secret":
			return &gqlerr.Error{Code: gqlerr.BadUserInput, Field: "clientSecret", Message: "the tenant refused the client secret (wrong or expired): " + desc, Err: err}
		case "unknown_client":
			return &gqlerr.Error{Code: gqlerr.BadUserInput, Field: "clientID", Message: fmt.Sprintf("client id %s is not an application of tenant %s: %s", in.ClientID, in.TenantID, desc), Err: err}
		case "unknown_tenant":
			return &gqlerr.Error{Code: gqlerr.BadUserInput, Field: "tenantID", Message: fmt.Sprintf("tenant %s does not exist: %s", in.TenantID, desc), Err: err}
		case "unavailable":
			return &gqlerr.Error{Code: gqlerr.Unavailable, Field: "loginBaseURL", Message: "the tenant's login endpoint could not be reached; try again later", Err: err}
		}
		if ae.Code == "invalid_client" {
			return &gqlerr.Error{Code: gqlerr.BadUserInput, Field: "clientSecret", Message: "the tenant refused the client credentials: " + desc, Err: err}
		}
		return &gqlerr.Error{Code: gqlerr.FailedPrecondition, Message: "the tenant refused the token request: " + desc, Err: err}
	}
	switch {
	case msgraph.IsForbidden(err):
		return &gqlerr.Error{Code: gqlerr.FailedPrecondition, Field: "clientID",
			Message: "the application may not read the tenant's domains: grant it the Domain.Read.All application permission (admin consent), plus User.ReadWrite.All for provisioning", Err: err}
	case msgraph.IsUnauthorized(err):
		return &gqlerr.Error{Code: gqlerr.FailedPrecondition, Field: "clientID", Message: "Microsoft Graph refused the application's token", Err: err}
	}
	var ge *msgraph.Error
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(err, &ge), errors.As(err, &ne), errors.As(err, &ue),
		errors.Is(err, context.DeadlineExceeded):
		return &gqlerr.Error{Code: gqlerr.Unavailable, Field: "graphBaseURL", Message: "Microsoft Graph could not be reached or failed; try again later", Err: err}
	}
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// recordFailure stores why the last authorization failed, in its own short
// transaction so it survives the request's rollback. It is best effort: if
// the request itself holds the row (an earlier mutation of it in the same
// request), the lock timeout lets it give up instead of waiting on itself.
func (s *Service) recordFailure(ctx context.Context, id pulid.ID, cause error) {
	msg := cause.Error()
	var ge *gqlerr.Error
	if errors.As(cause, &ge) {
		msg = ge.Message
	}
	msg = jobs.Truncate(msg, 2000)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return
	}
	if _, err := tx.Client().ExecContext(ctx, "SET LOCAL lock_timeout = '1s'"); err != nil {
		_ = tx.Rollback()
		return
	}
	if err := tx.Integration.UpdateOneID(id).SetLastError(msg).Exec(ctx); err != nil {
		_ = tx.Rollback()
		return
	}
	_ = tx.Commit()
}

// sameCredentials reports whether nothing an authorization depends on changed.
func sameCredentials(a, b *ent.Integration) bool {
	return a.TenantID == b.TenantID && a.ClientID == b.ClientID &&
		a.ClientSecretSealed == b.ClientSecretSealed &&
		a.GraphBaseURL == b.GraphBaseURL && a.LoginBaseURL == b.LoginBaseURL
}

// checkVerified applies D5: every configured domain must be verified in the tenant.
func checkVerified(domains, verified []string) error {
	var missing []string
	for _, d := range domains {
		if !slices.Contains(verified, d) {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		return gqlerr.BadInput("domains", "the tenant has not verified %s (verified: %s)",
			strings.Join(missing, ", "), strings.Join(verified, ", "))
	}
	return nil
}

// claimed is the set of domains an integration syncs (I3/I4): its configured
// domains, or with none configured (D2) every domain its tenant verified.
func claimed(domains, verified []string) []string {
	if len(domains) > 0 {
		return domains
	}
	return verified
}

// checkOverlap applies I3: no domain this integration claims may be claimed by
// another AUTHORIZED integration of the organization. The caller holds
// lockOrgDomains.
func checkOverlap(ctx context.Context, c *ent.Client, self pulid.ID, domains, verified []string) error {
	mine := claimed(domains, verified)
	others, err := c.Integration.Query().
		Where(integration.IDNEQ(self), integration.StatusEQ(integration.StatusAUTHORIZED)).
		Order(ent.Asc(integration.FieldCreatedAt)).
		All(ctx)
	if err != nil {
		return fmt.Errorf("integrations: reading integrations: %w", err)
	}
	for _, o := range others {
		var shared []string
		for _, d := range claimed(o.Domains, o.VerifiedDomains) {
			if slices.Contains(mine, d) {
				shared = append(shared, d)
			}
		}
		if len(shared) > 0 {
			return gqlerr.Newf(gqlerr.Conflict, "domains", "%s already authorized in integration %q (%s)",
				strings.Join(shared, ", "), o.Name, o.ID)
		}
	}
	return nil
}

// ReasonDeauthorized is the status reason of links released by Deauthorize.
const ReasonDeauthorized = "integration de-authorized (I5): the remote account is left as it is and no longer managed"

// Deauthorize applies I5: every binding of the integration is removed and it
// becomes UNAUTHORIZED. No job and no remote call: remote users and groups stay
// as they are. Links are kept, marked OUT_OF_SCOPE with ReasonDeauthorized, so
// a later re-authorization and re-binding finds the same remote objects while
// users who are not bound again are left alone.
func (s *Service) Deauthorize(ctx context.Context, id pulid.ID) (*ent.Integration, error) {
	var out *ent.Integration
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		if _, err := lock(ctx, c, id, "id", true); err != nil {
			return err
		}
		if _, err := c.UserBinding.Delete().Where(userbinding.IntegrationID(id)).Exec(ctx); err != nil {
			return fmt.Errorf("integrations: removing user bindings: %w", err)
		}
		if _, err := c.GroupBinding.Delete().Where(groupbinding.IntegrationID(id)).Exec(ctx); err != nil {
			return fmt.Errorf("integrations: removing group bindings: %w", err)
		}
		// The links stay (the remote ids are still true), marked as no longer
		// managed: a later reconcile of a user who is not bound again must
		// leave the remote account as it is, not deprovision it (X2).
		if _, err := c.RemoteLink.Update().Where(remotelink.IntegrationID(id)).
			SetStatus(remotelink.StatusOUT_OF_SCOPE).SetStatusReason(ReasonDeauthorized).Save(ctx); err != nil {
			return fmt.Errorf("integrations: releasing links: %w", err)
		}
		var err error
		out, err = c.Integration.UpdateOneID(id).
			SetStatus(integration.StatusUNAUTHORIZED).
			ClearAuthorizedAt().
			Save(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return detach(ctx, out), nil
}

// Delete applies I6: the integration, its bindings and its links are gone for
// good (foreign keys cascade); remote objects are not touched. Jobs and events
// stay as history. Reconcile tasks still queued for it find no integration and
// do nothing.
func (s *Service) Delete(ctx context.Context, id pulid.ID) error {
	return s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		if _, err := lock(ctx, c, id, "id", true); err != nil {
			return err
		}
		return notFound(c.Integration.DeleteOneID(id).Exec(ctx), "id", id)
	})
}

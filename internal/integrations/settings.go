package integrations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/domainname"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/upn"
)

// Limits of the settings (the ent schema's column sizes, and what Entra allows).
const (
	maxName       = 100
	maxCredential = 100
	maxSecret     = 1024
	maxURL        = 300
	maxDomains    = 100
	maxDomain     = 253
)

// Create stores a new integration, UNAUTHORIZED (I1). The client secret is
// sealed with the row's id as associated data, so the id is chosen first.
func (s *Service) Create(ctx context.Context, in model.CreateIntegrationInput) (*ent.Integration, error) {
	if s.tenants == nil {
		return nil, errNoConnector
	}
	name, err := cleanName(in.Name)
	if err != nil {
		return nil, err
	}
	tenantID, err := cleanCredential("tenantID", in.TenantID)
	if err != nil {
		return nil, err
	}
	clientID, err := cleanCredential("clientID", in.ClientID)
	if err != nil {
		return nil, err
	}
	if err := checkSecret(in.ClientSecret); err != nil {
		return nil, err
	}
	graphURL, err := s.cleanURL("graphBaseURL", deref(in.GraphBaseURL))
	if err != nil {
		return nil, err
	}
	loginURL, err := s.cleanURL("loginBaseURL", deref(in.LoginBaseURL))
	if err != nil {
		return nil, err
	}
	domains, err := cleanDomains(in.Domains)
	if err != nil {
		return nil, err
	}
	def, err := cleanDefault(deref(in.DefaultDomain), domains)
	if err != nil {
		return nil, err
	}
	table, err := cleanMapping(in.AttributeMappings)
	if err != nil {
		return nil, err
	}
	id := pulid.New("IN")
	sealed, err := s.tenants.SealSecret(id, in.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("integrations: seal secret: %w", err)
	}
	var out *ent.Integration
	err = s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		cr := c.Integration.Create().SetID(id).SetName(name).
			SetTenantID(tenantID).SetClientID(clientID).SetClientSecretSealed(sealed).
			SetGraphBaseURL(graphURL).SetLoginBaseURL(loginURL).
			SetDomains(domains).SetDefaultDomain(def).
			SetAttributeMappings(table).
			SetNillableEmailSource(in.EmailSource).
			SetNillableGroupManagement(in.GroupManagement).
			SetNillableSuspendOnPasswordExpiry(in.SuspendOnPasswordExpiry).
			SetNillableSuspendOnLockout(in.SuspendOnLockout).
			SetNillableDriftAction(in.DriftAction)
		var err error
		out, err = cr.Save(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return detach(ctx, out), nil
}

// Update changes settings. What a change does depends on the setting (see
// docs/integrations.md):
//   - tenant id, client id, secret or URLs: the integration is UNAUTHORIZED until
//     authorized again; bindings and links are kept (a secret rotation must not
//     unbind everyone), and nothing is sent meanwhile. The tenant id cannot change
//     while links exist: their remote ids belong to the old tenant.
//   - domains, default domain, email source, mapping, suspend flags of an
//     AUTHORIZED integration: D5 and I3 are checked again and one job reconciles
//     every user of the integration — and, for domains, default domain and
//     email source, those users in their other integrations too, since which
//     integration owns a user (I4) may have moved.
//   - group management of an AUTHORIZED integration: one job reconciles every
//     bound group (on: create or take over; off: stop managing, see docs/groups.md).
//   - name: stored only.
func (s *Service) Update(ctx context.Context, id pulid.ID, in model.UpdateIntegrationInput) (*ent.Integration, *ent.Job, error) {
	var (
		out *ent.Integration
		job *ent.Job
	)
	err := s.inTx(ctx, func(ctx context.Context, c *ent.Client) error {
		cur, err := lock(ctx, c, id, "id", true)
		if err != nil {
			return err
		}
		upd := cur.Update()
		// What changed; owner: a setting I4 judges ownership by, so the users'
		// other integrations must be reconciled too.
		var credentials, scope, owner bool

		if in.Name != nil {
			name, err := cleanName(*in.Name)
			if err != nil {
				return err
			}
			upd.SetName(name)
		}
		if in.WriteBudget != nil {
			if err := setWriteBudget(upd, in.WriteBudget); err != nil {
				return err
			}
		}
		if in.TenantID != nil {
			t, err := cleanCredential("tenantID", *in.TenantID)
			if err != nil {
				return err
			}
			if t != cur.TenantID {
				hasLinks, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(id)).Exist(ctx)
				if err != nil {
					return fmt.Errorf("integrations: reading links: %w", err)
				}
				if hasLinks {
					return gqlerr.BadInput("tenantID", "the integration has provisioned users in tenant %s; create a new integration for another tenant", cur.TenantID)
				}
				credentials = true
				upd.SetTenantID(t).ClearVerifiedDomains().SetTenantPasswordExpiry(false)
			}
		}
		if in.ClientID != nil {
			cl, err := cleanCredential("clientID", *in.ClientID)
			if err != nil {
				return err
			}
			if cl != cur.ClientID {
				credentials = true
				upd.SetClientID(cl)
			}
		}
		if in.ClientSecret != nil {
			if err := checkSecret(*in.ClientSecret); err != nil {
				return err
			}
			if s.tenants == nil {
				return errNoConnector
			}
			sealed, err := s.tenants.SealSecret(id, *in.ClientSecret)
			if err != nil {
				return fmt.Errorf("integrations: seal secret: %w", err)
			}
			// Sealing is randomised, so a new secret always counts as a change.
			credentials = true
			upd.SetClientSecretSealed(sealed)
		}
		for _, u := range []struct {
			field string
			value *string
			clear *bool
			cur   string
			set   func(string) *ent.IntegrationUpdateOne
		}{
			{"graphBaseURL", in.GraphBaseURL, in.ClearGraphBaseURL, cur.GraphBaseURL, upd.SetGraphBaseURL},
			{"loginBaseURL", in.LoginBaseURL, in.ClearLoginBaseURL, cur.LoginBaseURL, upd.SetLoginBaseURL},
		} {
			next, err := s.nextURL(u.field, u.value, u.clear, u.cur)
			if err != nil {
				return err
			}
			if next != u.cur {
				credentials = true
				u.set(next)
			}
		}

		domains := cur.Domains
		if in.Domains != nil {
			if domains, err = cleanDomains(in.Domains); err != nil {
				return err
			}
		}
		def := cur.DefaultDomain
		switch {
		case in.DefaultDomain != nil && isTrue(in.ClearDefaultDomain):
			return gqlerr.BadInput("defaultDomain", "give defaultDomain or clearDefaultDomain, not both")
		case in.DefaultDomain != nil:
			def = *in.DefaultDomain
		case isTrue(in.ClearDefaultDomain):
			def = ""
		}
		if def, err = cleanDefault(def, domains); err != nil {
			return err
		}
		if !slices.Equal(domains, cur.Domains) || def != cur.DefaultDomain {
			scope, owner = true, true
			upd.SetDomains(domains).SetDefaultDomain(def)
		}
		if in.EmailSource != nil && *in.EmailSource != cur.EmailSource {
			scope, owner = true, true
			upd.SetEmailSource(*in.EmailSource)
		}
		if in.AttributeMappings != nil && isTrue(in.ResetAttributeMappings) {
			return gqlerr.BadInput("attributeMappings", "give attributeMappings or resetAttributeMappings, not both")
		}
		if in.AttributeMappings != nil || isTrue(in.ResetAttributeMappings) {
			table, err := cleanMapping(in.AttributeMappings)
			if err != nil {
				return err
			}
			if !slices.Equal(table, cur.AttributeMappings) {
				scope = true
				// The stored users deltaLink carries the old $select: the next
				// drift round reads the new properties from scratch.
				upd.SetAttributeMappings(table).ClearUsersDeltaLink()
			}
		}
		if in.SuspendOnPasswordExpiry != nil && *in.SuspendOnPasswordExpiry != cur.SuspendOnPasswordExpiry {
			scope = true
			upd.SetSuspendOnPasswordExpiry(*in.SuspendOnPasswordExpiry)
		}
		if in.SuspendOnLockout != nil && *in.SuspendOnLockout != cur.SuspendOnLockout {
			scope = true
			upd.SetSuspendOnLockout(*in.SuspendOnLockout)
		}
		// Mass-deprovision guard (internal/guard): stored only; it takes effect
		// at the next disable.
		if err := deprovisionThreshold(upd, in); err != nil {
			return err
		}
		// G1: turning group management on or off reconciles every bound group
		// (create or take over / release); remote groups are never deleted.
		groups := in.GroupManagement != nil && *in.GroupManagement != cur.GroupManagement
		upd.SetNillableGroupManagement(in.GroupManagement)
		upd.SetNillableDriftAction(in.DriftAction)
		if credentials {
			// Delta tokens belong to the old app or tenant (docs/drift.md).
			upd.ClearUsersDeltaLink().ClearGroupsDeltaLink()
		}

		authorized := cur.Status == integration.StatusAUTHORIZED
		switch {
		case credentials && authorized:
			upd.SetStatus(integration.StatusUNAUTHORIZED).ClearAuthorizedAt().
				SetLastError("credentials changed: authorize the integration again")
		case scope && authorized:
			if err := lockOrgDomains(ctx, c, cur.OrganizationID); err != nil {
				return err
			}
			if err := checkVerified(domains, cur.VerifiedDomains); err != nil {
				return err
			}
			if err := checkOverlap(ctx, c, cur.ID, domains, cur.VerifiedDomains); err != nil {
				return err
			}
		}
		if out, err = upd.Save(ctx); err != nil {
			return err
		}
		if !authorized || credentials {
			return nil
		}
		var targets []jobs.Target
		if scope {
			if targets, err = connect.IntegrationTargets(ctx, c, id); err != nil {
				return err
			}
			if owner {
				if targets, err = connect.Spread(ctx, c, targets); err != nil {
					return err
				}
			}
		}
		if groups {
			gt, err := groupTargets(ctx, c, cur.OrganizationID, id)
			if err != nil {
				return err
			}
			targets = append(targets, gt...)
		}
		job, err = jobs.Start(ctx, c, cur.OrganizationID, jobs.JobIntegrationChange, id, targets)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return detach(ctx, out), detachJob(ctx, job), nil
}

func (s *Service) nextURL(field string, value *string, clear *bool, cur string) (string, error) {
	switch {
	case value != nil && isTrue(clear):
		return "", gqlerr.BadInput(field, "give %s or clear%s, not both", field, strings.ToUpper(field[:1])+field[1:])
	case isTrue(clear):
		return "", nil
	case value != nil:
		return s.cleanURL(field, *value)
	}
	return cur, nil
}

// cleanName applies the directory's one-line text rules (rules.Text: no
// control or bidi-override characters) to the trimmed name.
func cleanName(v string) (string, error) {
	v = rules.Trim(v)
	if err := rules.Text(maxName, true)(v); err != nil {
		return "", gqlerr.BadInput("name", "name %v", err)
	}
	return v, nil
}

// cleanCredential checks a tenant or client id: a GUID or (tenant) a domain in
// practice; we only refuse what cannot be one, since the id goes into the
// token URL's path.
func cleanCredential(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return "", gqlerr.BadInput(field, "%s must not be blank", field)
	case len(v) > maxCredential:
		return "", gqlerr.BadInput(field, "%s must be at most %d characters", field, maxCredential)
	}
	for _, r := range v {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '.' || r == '_')) {
			return "", gqlerr.BadInput(field, "%s may contain only ASCII letters, digits, '-', '.' and '_'", field)
		}
	}
	return v, nil
}

// checkSecret refuses an empty or absurd secret. The message never repeats it.
func checkSecret(v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return gqlerr.BadInput("clientSecret", "clientSecret must not be blank")
	case len(v) > maxSecret:
		return gqlerr.BadInput("clientSecret", "clientSecret must be at most %d characters", maxSecret)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return gqlerr.BadInput("clientSecret", "clientSecret must not contain control characters")
	}
	return nil
}

// cleanURL checks an optional base URL against the server's SSRF rule (the
// connector's CheckURLs) and drops a trailing slash.
func (s *Service) cleanURL(field, v string) (string, error) {
	v = strings.TrimRight(strings.TrimSpace(v), "/")
	if v == "" {
		return "", nil
	}
	if len(v) > maxURL {
		return "", gqlerr.BadInput(field, "%s must be at most %d characters", field, maxURL)
	}
	if s.tenants == nil {
		return "", errNoConnector
	}
	graphURL, loginURL := v, ""
	if field == "loginBaseURL" {
		graphURL, loginURL = "", v
	}
	if err := s.tenants.CheckURLs(graphURL, loginURL); err != nil {
		if errors.Is(err, tenant.ErrCustomURL) {
			return "", &gqlerr.Error{Code: gqlerr.BadUserInput, Field: field, Message: field + ": " + err.Error() + " (only Microsoft's endpoints may be used)", Err: err}
		}
		return "", &gqlerr.Error{Code: gqlerr.BadUserInput, Field: field, Message: field + ": " + err.Error(), Err: err}
	}
	return v, nil
}

// cleanDomains normalises (lower-case, punycode), checks and de-duplicates
// the configured domains (D5); a label mixing scripts is refused as for emails.
func cleanDomains(in []string) ([]string, error) {
	if len(in) > maxDomains {
		return nil, gqlerr.BadInput("domains", "at most %d domains", maxDomains)
	}
	out := make([]string, 0, len(in))
	for _, d := range in {
		n, err := domainname.Normalize(d)
		if err != nil {
			return nil, gqlerr.BadInput("domains", "domain %q %v", d, err)
		}
		if !validDomain(n) {
			return nil, gqlerr.BadInput("domains", "%q is not a valid domain name", d)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func cleanDefault(v string, domains []string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	n := upn.NormalizeDomain(v) // domains are normalised: anything invalid is not among them
	if !slices.Contains(domains, n) {
		return "", gqlerr.BadInput("defaultDomain", "defaultDomain %s must be one of domains", n)
	}
	return n, nil
}

// validDomain checks DNS syntax of a normalised domain: at least two labels of
// letters, digits and inner hyphens, 1–63 characters each.
func validDomain(d string) bool {
	if d == "" || len(d) > maxDomain {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	return strings.IndexFunc(tld, func(r rune) bool { return r < '0' || r > '9' }) >= 0
}

func cleanMapping(rules []*mapping.Rule) (mapping.Table, error) {
	if rules == nil {
		return mapping.Default(), nil
	}
	t := make(mapping.Table, 0, len(rules))
	for _, r := range rules {
		t = append(t, *r)
	}
	if err := t.Validate(); err != nil {
		return nil, &gqlerr.Error{Code: gqlerr.BadUserInput, Field: "attributeMappings", Message: err.Error(), Err: err}
	}
	return t, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func isTrue(p *bool) bool { return p != nil && *p }

// groupTargets lists every group of the integration whose management a
// toggle of group management changes: bound groups and groups with a link.
func groupTargets(ctx context.Context, c *ent.Client, orgID, integrationID pulid.ID) ([]jobs.Target, error) {
	bound, err := c.GroupBinding.Query().Where(groupbinding.IntegrationID(integrationID)).
		Select(groupbinding.FieldGroupID).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("integrations: reading group bindings: %w", err)
	}
	linked, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(integrationID), remotelink.KindEQ(remotelink.KindGROUP),
		remotelink.GroupIDNotNil()).Select(remotelink.FieldGroupID).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("integrations: reading group links: %w", err)
	}
	return groupsync.Targets(ctx, c, orgID, toIDs(append(bound, linked...)), integrationID)
}

// deprovisionThreshold applies the guard setting: a number sets it, an
// explicit null turns the guard off, resetDeprovisionThreshold goes back to
// the default; omitted leaves it as it is.
func deprovisionThreshold(upd *ent.IntegrationUpdateOne, in model.UpdateIntegrationInput) error {
	v, set := in.DeprovisionThreshold.ValueOK()
	switch {
	case set && isTrue(in.ResetDeprovisionThreshold):
		return gqlerr.BadInput("deprovisionThreshold", "give deprovisionThreshold or resetDeprovisionThreshold, not both")
	case set && v == nil:
		upd.ClearDeprovisionThreshold().SetDeprovisionGuardOff(true)
	case set && *v < 0:
		return gqlerr.BadInput("deprovisionThreshold", "deprovisionThreshold must be 0 or more (null turns the guard off)")
	case set:
		upd.SetDeprovisionThreshold(*v).SetDeprovisionGuardOff(false)
	case isTrue(in.ResetDeprovisionThreshold):
		upd.ClearDeprovisionThreshold().SetDeprovisionGuardOff(false)
	}
	return nil
}

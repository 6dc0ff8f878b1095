package devenv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/mapping"
)

// Emulator defaults for dev.
const (
	// DefaultGraphsimAddr is where dev serves the embedded Graph emulator
	// (DIRSYNC_DEV_GRAPHSIM_ADDR overrides it).
	DefaultGraphsimAddr = "127.0.0.1:8090"
	// IntegrationName names the ready integration dev keeps in the default
	// organization.
	IntegrationName = "Contoso (emulator)"
	// TenantDomain is the verified domain of the emulated tenant.
	TenantDomain = "contoso.com"
)

// emulator is the in-process Graph emulator with one tenant.
type emulator struct {
	sim      *graphsim.Sim
	listener net.Listener
	url      string
	creds    graphsim.Credentials
	tenant   graphsim.Tenant
}

// startEmulator binds the emulator's address now (so a taken port fails dev
// at once) and bootstraps tenant contoso with verified domain contoso.com.
// Throttling runs at Microsoft's quotas in real time and every Graph call takes
// 20–40 ms, roughly what Graph answers in.
func startEmulator(addr string) (*emulator, error) {
	if addr == "" {
		addr = os.Getenv("DIRSYNC_DEV_GRAPHSIM_ADDR")
	}
	if addr == "" {
		addr = DefaultGraphsimAddr
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devenv: Graph emulator on %s (set DIRSYNC_DEV_GRAPHSIM_ADDR to move it): %w", addr, err)
	}
	sim := graphsim.New(graphsim.Config{
		Seed:   time.Now().UnixNano(),
		Faults: graphsim.Faults{LatencyBase: 20 * time.Millisecond, LatencyJitter: 20 * time.Millisecond},
	})
	creds, err := sim.Bootstrap("contoso", TenantDomain)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("devenv: bootstrap emulator tenant: %w", err)
	}
	e := &emulator{sim: sim, listener: l, url: "http://" + l.Addr().String(), creds: creds}
	for _, t := range sim.Tenants() {
		if t.ID == creds.TenantID {
			e.tenant = t
		}
	}
	return e, nil
}

// verifiedDomains lists the tenant's verified domains (lower-case, sorted) and
// whether one of them expires passwords (I7), as authorization reads them.
func (e *emulator) verifiedDomains() (verified []string, passwordExpiry bool) {
	for _, d := range e.tenant.Domains {
		if !d.Verified {
			continue
		}
		verified = append(verified, strings.ToLower(d.Name))
		if p := d.PasswordValidityPeriodInDays; p > 0 && p != math.MaxInt32 {
			passwordExpiry = true
		}
	}
	slices.Sort(verified)
	return verified, passwordExpiry
}

// serve runs the emulator until ctx ends.
func (e *emulator) serve(ctx context.Context) error {
	srv := &http.Server{Handler: e.sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(e.listener) }()
	select {
	case err := <-errc:
		return fmt.Errorf("devenv: Graph emulator: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sealer seals a client secret for an integration row (tenant.Connector).
type sealer interface {
	SealSecret(integrationID pulid.ID, secret string) (string, error)
}

// ensureIntegration makes the default organization's emulator integration
// point at this run's emulator tenant, authorized, with fresh credentials: the
// emulator is in memory, so every start is a new, empty tenant. Links into the
// previous run's tenant are dropped and every user still connected is
// reconciled again, so the new tenant catches up with the directory.
func ensureIntegration(ctx context.Context, client *ent.Client, seal sealer, orgID pulid.ID, e *emulator) (*ent.Integration, *ent.Job, error) {
	sys := auth.SystemContext(ctx)
	tx, err := client.Tx(sys)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = tx.Rollback() }()
	c := tx.Client()
	verified, expiry := e.verifiedDomains()
	now := time.Now()
	in, err := c.Integration.Query().
		Where(integration.OrganizationID(orgID), integration.Name(IntegrationName)).Only(sys)
	switch {
	case ent.IsNotFound(err):
		id := pulid.New("IN")
		sealed, err := seal.SealSecret(id, e.creds.ClientSecret)
		if err != nil {
			return nil, nil, err
		}
		in, err = c.Integration.Create().SetID(id).SetOrganizationID(orgID).SetName(IntegrationName).
			SetTenantID(e.creds.TenantID).SetClientID(e.creds.ClientID).SetClientSecretSealed(sealed).
			SetGraphBaseURL(e.url + "/v1.0").SetLoginBaseURL(e.url).
			SetDomains([]string{TenantDomain}).SetDefaultDomain(TenantDomain).SetVerifiedDomains(verified).SetTenantPasswordExpiry(expiry).
			SetStatus(integration.StatusAUTHORIZED).SetAuthorizedAt(now).
			SetAttributeMappings(mapping.Default()).Save(sys)
		if err != nil {
			return nil, nil, fmt.Errorf("devenv: create integration: %w", err)
		}
	case err != nil:
		return nil, nil, fmt.Errorf("devenv: read integration: %w", err)
	default:
		sealed, err := seal.SealSecret(in.ID, e.creds.ClientSecret)
		if err != nil {
			return nil, nil, err
		}
		in, err = c.Integration.UpdateOneID(in.ID).
			SetTenantID(e.creds.TenantID).SetClientID(e.creds.ClientID).SetClientSecretSealed(sealed).
			SetGraphBaseURL(e.url + "/v1.0").SetLoginBaseURL(e.url).SetVerifiedDomains(verified).SetTenantPasswordExpiry(expiry).
			SetStatus(integration.StatusAUTHORIZED).SetAuthorizedAt(now).ClearLastError().Save(sys)
		if err != nil {
			return nil, nil, fmt.Errorf("devenv: refresh integration: %w", err)
		}
	}
	if _, err := c.RemoteLink.Delete().Where(remotelink.IntegrationID(in.ID)).Exec(sys); err != nil {
		return nil, nil, fmt.Errorf("devenv: drop links into the previous emulator: %w", err)
	}
	// The links are gone, so these are exactly the users still bound, directly or
	// through a group: the new tenant must get every one of them.
	targets, err := connect.IntegrationTargets(sys, c, in.ID)
	if err != nil {
		return nil, nil, err
	}
	job, err := jobs.Start(sys, c, orgID, jobs.JobIntegrationAuthorize, in.ID, targets)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	return in.Unwrap(), job, nil
}

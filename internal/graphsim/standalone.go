package graphsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// FileConfig is the --config file of `dirsync graphsim` (JSON).
type FileConfig struct {
	Seed               int64   `json:"seed,omitempty"`
	TimeScale          float64 `json:"timeScale,omitempty"`
	QuotaMultiplier    float64 `json:"quotaMultiplier,omitempty"`
	DisableThrottling  bool    `json:"disableThrottling,omitempty"`
	Faults             Faults  `json:"faults"`
	DeltaResync400     bool    `json:"deltaResync400,omitempty"`
	BatchThrottled424  bool    `json:"batchThrottled424,omitempty"`
	DeltaTokenLifetime string  `json:"deltaTokenLifetime,omitempty"` // Go duration, e.g. "168h"
	Tenants            []struct {
		TenantSpec
		Apps       []AppSpec `json:"apps"`
		SeedUsers  int       `json:"seedUsers,omitempty"`
		SeedGroups int       `json:"seedGroups,omitempty"`
		// MembersPerGroup of the seeded groups.
		MembersPerGroup int `json:"membersPerGroup,omitempty"`
	} `json:"tenants"`
}

// RunStandalone serves the emulator on addr until ctx ends. Without a config
// file (or one with no tenants) it bootstraps tenant "contoso" with verified
// default domain contoso.com and a full-permission app; seedUsers users are
// added to the first tenant. It prints the base URLs and credentials to out.
func RunStandalone(ctx context.Context, addr string, seedUsers int, configFile string, out io.Writer) error {
	var fc FileConfig
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return fmt.Errorf("graphsim: read config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return fmt.Errorf("graphsim: parse config %s: %w", configFile, err)
		}
	}
	cfg := Config{Seed: fc.Seed, TimeScale: fc.TimeScale, QuotaMultiplier: fc.QuotaMultiplier,
		DisableThrottling: fc.DisableThrottling, Faults: fc.Faults, DeltaResync400: fc.DeltaResync400,
		BatchThrottled424: fc.BatchThrottled424}
	if fc.DeltaTokenLifetime != "" {
		d, err := time.ParseDuration(fc.DeltaTokenLifetime)
		if err != nil {
			return fmt.Errorf("graphsim: config deltaTokenLifetime: %w", err)
		}
		cfg.DeltaTokenLifetime = d
	}
	sim := New(cfg)

	type printed struct {
		tenant Tenant
		apps   []App
	}
	var setup []printed
	if len(fc.Tenants) == 0 {
		creds, err := sim.Bootstrap("contoso", "contoso.com")
		if err != nil {
			return err
		}
		t := sim.Tenants()[0]
		setup = append(setup, printed{t, []App{{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret}}})
	}
	for _, ft := range fc.Tenants {
		t, err := sim.AddTenant(ft.TenantSpec)
		if err != nil {
			return err
		}
		p := printed{tenant: t}
		apps := ft.Apps
		if len(apps) == 0 {
			apps = []AppSpec{{Name: "dirsync", Permissions: AllPermissions, UserAdministrator: true}}
		}
		for _, as := range apps {
			a, err := sim.AddApp(t.ID, as)
			if err != nil {
				return err
			}
			p.apps = append(p.apps, a)
		}
		if err := sim.SeedUsers(t.ID, ft.SeedUsers); err != nil {
			return err
		}
		if _, err := sim.SeedGroups(t.ID, ft.SeedGroups, ft.MembersPerGroup); err != nil {
			return err
		}
		setup = append(setup, p)
	}
	if seedUsers > 0 {
		if err := sim.SeedUsers(setup[0].tenant.ID, seedUsers); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("graphsim: listen %s: %w", addr, err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "graphsim listening on %s\n  login base URL: %s   (token: %s/{tenant}/oauth2/v2.0/token)\n  Graph base URL: %s/v1.0\n  admin API:      %s/_sim/state\n",
		base, base, base, base, base)
	for _, p := range setup {
		fmt.Fprintf(out, "tenant %s (%s)\n  tenant id:     %s\n", p.tenant.Name, p.tenant.InitialDomain, p.tenant.ID)
		for _, d := range p.tenant.Domains {
			fmt.Fprintf(out, "  domain:        %s verified=%t default=%t\n", d.Name, d.Verified, d.Default)
		}
		for _, a := range p.apps {
			fmt.Fprintf(out, "  client id:     %s\n  client secret: %s\n", a.ClientID, a.ClientSecret)
		}
	}

	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("graphsim: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("graphsim: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("graphsim: serve: %w", err)
	}
	return nil
}

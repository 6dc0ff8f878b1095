// Package devenv assembles `dirsync dev`: a migrated local database, a default
// organization with an admin key, the API with GraphiQL, the worker with its
// outbox relay, and an embedded Microsoft Graph emulator holding a tenant with
// the verified domain contoso.com plus a ready, authorized integration pointing
// at it — all in one process, so a newcomer can create a user, bind it, and watch
// the job and the remote user appear with nothing but PostgreSQL and Redis running.
//
// The key is kept in a state file (0600, under .dirsync/ by default) because keys
// are stored hashed: without it a restart could not show the key again.
package devenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
)

// OrgName is the organization dev creates on first start.
const OrgName = "default"

// state is what dev remembers between runs.
type state struct {
	DatabaseURL string `json:"databaseUrl"`
	APIKey      string `json:"apiKey"`
	SecretKey   string `json:"secretKey"`
}

// Env is a prepared dev environment.
type Env struct {
	App    *app.App
	Org    *ent.Organization
	APIKey string
	URL    string
	// Integration is the ready integration into the emulator tenant; Resync the
	// job reconciling users it already had (nil when none).
	Integration *ent.Integration
	Resync      *ent.Job
	// GraphsimURL is the emulator's base URL; TenantID its tenant.
	GraphsimURL string
	TenantID    string
	Sim         *graphsim.Sim

	emu *emulator
}

// Options are what a caller may change about dev besides config.Config.
type Options struct {
	// StateDir keeps the generated key material (default ".dirsync").
	StateDir string
	// GraphsimAddr is the embedded emulator's address; empty:
	// DIRSYNC_DEV_GRAPHSIM_ADDR, else DefaultGraphsimAddr.
	GraphsimAddr string
}

// Prepare migrates, ensures the default organization and a working admin key,
// starts the emulator tenant and points the dev integration at it.
func Prepare(ctx context.Context, cfg config.Config, stateDir string, log *slog.Logger) (*Env, error) {
	return PrepareWith(ctx, cfg, Options{StateDir: stateDir}, log)
}

// PrepareWith is Prepare with Options.
func PrepareWith(ctx context.Context, cfg config.Config, o Options, log *slog.Logger) (*Env, error) {
	stateDir := o.StateDir
	if stateDir == "" {
		stateDir = ".dirsync"
	}
	st, err := loadState(stateDir, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if len(cfg.SecretKey) == 0 {
		if st.SecretKey == "" {
			var k [32]byte
			if _, err := rand.Read(k[:]); err != nil {
				return nil, err
			}
			st.SecretKey = base64.StdEncoding.EncodeToString(k[:])
		}
		cfg.SecretKey, _ = base64.StdEncoding.DecodeString(st.SecretKey)
	}
	if err := cfg.Validate(true); err != nil {
		return nil, err
	}
	a, err := app.Open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	env := &Env{App: a, URL: "http://" + cfg.Listen}
	if err := env.prepare(ctx, &st); err != nil {
		env.Close()
		return nil, err
	}
	if err := saveState(stateDir, st); err != nil {
		env.Close()
		return nil, err
	}
	if err := env.prepareEmulator(ctx, o.GraphsimAddr); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// prepareEmulator starts the emulator tenant and points the integration at it.
func (e *Env) prepareEmulator(ctx context.Context, addr string) error {
	if e.App.Tenants == nil {
		return errors.New("devenv: no secret key, cannot seal the emulator's client secret")
	}
	emu, err := startEmulator(addr)
	if err != nil {
		return err
	}
	e.emu, e.Sim, e.GraphsimURL, e.TenantID = emu, emu.sim, emu.url, emu.creds.TenantID
	e.Integration, e.Resync, err = ensureIntegration(ctx, e.App.Ent, e.App.Tenants, e.Org.ID, emu)
	return err
}

func (e *Env) prepare(ctx context.Context, st *state) error {
	if err := dbmigrate.Up(ctx, e.App.DB); err != nil {
		return err
	}
	sys := auth.SystemContext(ctx)
	dir := directory.New(e.App.Ent)
	org, err := dir.OrganizationByName(sys, OrgName)
	if err != nil {
		if org, err = dir.CreateOrganization(sys, OrgName); err != nil {
			return fmt.Errorf("devenv: creating organization: %w", err)
		}
	}
	e.Org = org
	if st.APIKey != "" {
		if v, err := auth.Authenticate(ctx, e.App.Ent, st.APIKey); err == nil && v.OrgID == org.ID {
			e.APIKey = st.APIKey
			return nil
		}
	}
	key, _, err := auth.CreateAPIKey(sys, e.App.Ent, org.ID, "dev", auth.RoleAdmin)
	if err != nil {
		return err
	}
	st.APIKey, e.APIKey = key, key
	return nil
}

// Run serves the emulator, the worker (with the outbox relay) and the API until
// ctx ends or one of them fails.
func (e *Env) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runs []func(context.Context) error
	if e.emu != nil {
		runs = append(runs, e.emu.serve)
	}
	w, err := e.App.NewWorker(app.WorkerOptions{})
	if err != nil {
		return err
	}
	runs = append(runs, w.Run, e.App.ServeAPI)
	errc := make(chan error, len(runs))
	for _, run := range runs {
		go func() {
			err := run(ctx)
			cancel() // one part down: stop the others
			errc <- err
		}()
	}
	var first error
	for range runs {
		if err := <-errc; err != nil && first == nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	return first
}

// Close releases connections (and the emulator's port if Run never ran).
func (e *Env) Close() {
	if e.emu != nil {
		_ = e.emu.listener.Close()
	}
	e.App.Close()
}

// PrintWelcome tells the newcomer how to use what dev prepared.
func (e *Env) PrintWelcome(w io.Writer) {
	fmt.Fprintf(w, `
dirsync dev is starting on %[1]s
  organization: %[2]s (%[3]s)
  admin API key (dev only; kept in .dirsync/dev.json):
    export DIRSYNC_KEY=%[4]s
  GraphiQL:  %[1]s/   (add the header  Authorization: Bearer $DIRSYNC_KEY)
  Graph emulator: %[5]s  (tenant %[6]s, verified domain %[7]s)
  integration %[8]q (authorized): %[9]s

  try it (create a user, bind it, watch the job and the remote user):
    gql() { curl -s %[1]s/graphql -H "Authorization: Bearer $DIRSYNC_KEY" -H 'Content-Type: application/json' -d "$1"; echo; }
    gql '{"query":"mutation { createUser(input: {username: \"ann\", email: \"ann@%[7]s\", firstName: \"Ann\", lastName: \"Lee\"}) { user { id } } }"}'
    USER_ID=US...   # the id printed above
    gql '{"query":"mutation { bindUsers(integrationID: \"%[9]s\", userIDs: [\"'$USER_ID'\"]) { jobs { id status } } }"}'
    JOB_ID=JB...    # the job id printed above
    gql '{"query":"{ job(id: \"'$JOB_ID'\") { status done total items(first: 10) { edges { node { result errorCode errorMessage } } } } }"}'
    curl -s %[5]s/_sim/tenants/%[6]s/users     # the user in the emulated Microsoft 365 tenant

`, e.URL, e.Org.Name, e.Org.ID, e.APIKey, e.GraphsimURL, e.TenantID, TenantDomain, IntegrationName, e.integrationID())
}

func (e *Env) integrationID() string {
	if e.Integration == nil {
		return ""
	}
	return string(e.Integration.ID)
}

func statePath(dir string) string { return filepath.Join(dir, "dev.json") }

// loadState reads the state file; one written for another database is ignored.
func loadState(dir, databaseURL string) (state, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return state{DatabaseURL: databaseURL}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("devenv: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.DatabaseURL != databaseURL {
		return state{DatabaseURL: databaseURL}, nil
	}
	return st, nil
}

func saveState(dir string, st state) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devenv: %w", err)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(statePath(dir), b, 0o600); err != nil {
		return fmt.Errorf("devenv: %w", err)
	}
	return nil
}

// Package devenv assembles `dirsync dev`: a migrated local database, a default
// organization with an admin key, and the API with GraphiQL, all in one process, so
// a newcomer can try the service with nothing but PostgreSQL and Redis running.
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
}

// Prepare migrates, ensures the default organization and a working admin key.
func Prepare(ctx context.Context, cfg config.Config, stateDir string, log *slog.Logger) (*Env, error) {
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
		a.Close()
		return nil, err
	}
	if err := saveState(stateDir, st); err != nil {
		a.Close()
		return nil, err
	}
	return env, nil
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

// Run serves until ctx ends.
func (e *Env) Run(ctx context.Context) error { return e.App.ServeAPI(ctx) }

// Close releases connections.
func (e *Env) Close() { e.App.Close() }

// PrintWelcome tells the newcomer how to use what dev prepared.
func (e *Env) PrintWelcome(w io.Writer) {
	fmt.Fprintf(w, `
dirsync dev is starting on %[1]s
  organization: %[2]s (%[3]s)
  admin API key (dev only; kept in .dirsync/dev.json):
    export DIRSYNC_KEY=%[4]s
  GraphiQL:  %[1]s/   (add the header  Authorization: Bearer $DIRSYNC_KEY)
  try:
    curl -s %[1]s/graphql -H "Authorization: Bearer $DIRSYNC_KEY" -H 'Content-Type: application/json' \
      -d '{"query":"{ users(first: 5) { totalCount edges { node { id username email state } } } }"}'

`, e.URL, e.Org.Name, e.Org.ID, e.APIKey)
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

// Package dbmigrate applies the versioned database migrations embedded in the
// binary. The SQL files are generated from the ent schema by ./gen (`make
// migration NAME=x`) in goose format and committed; they are never written by
// hand-run auto-migration, so every environment runs the same reviewed SQL.
package dbmigrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Dir is the directory of the migration files, relative to the repository root.
const Dir = "internal/dbmigrate/migrations"

//go:embed migrations/*.sql
var embedded embed.FS

// Files returns the migration files.
func Files() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// Up applies every pending migration. Concurrent callers (replicas starting
// together) are serialised by goose's PostgreSQL session lock.
func Up(ctx context.Context, db *sql.DB) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("dbmigrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, Files(), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("dbmigrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("dbmigrate: applying migrations: %w", err)
	}
	return nil
}

// Migrator adapts this package to internal/testdb, which migrates a template
// database once per distinct Hash and clones it for every test.
type Migrator struct{}

// Hash identifies the embedded migrations: it changes whenever a file does.
func (Migrator) Hash() (string, error) {
	fsys := Files()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", fmt.Errorf("dbmigrate: %w", err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", fmt.Errorf("dbmigrate: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Migrate applies the migrations (see Up).
func (Migrator) Migrate(ctx context.Context, db *sql.DB) error { return Up(ctx, db) }

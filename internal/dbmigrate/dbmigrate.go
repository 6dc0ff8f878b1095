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
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/lib/pq"

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
	// Out of order: migrations written on parallel branches land with
	// interleaved timestamps, so a database that already ran a later one (a
	// developer's, or one upgraded from a pre-release) must still apply an
	// earlier one it lacks. Ours only add, so their order does not matter.
	p, err := goose.NewProvider(goose.DialectPostgres, db, Files(), goose.WithSessionLocker(locker),
		goose.WithAllowOutofOrder(true))
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

// ErrNotMigrated is returned by Check when the database lacks migrations this
// binary carries.
var ErrNotMigrated = errors.New("database not migrated to this binary's version (run `dirsync migrate`)")

// Check reports whether every embedded migration is applied, without writing
// anything (readiness probes call it). A database ahead of the binary (a newer
// release migrated it during a rolling upgrade) passes: migrations only add.
func Check(ctx context.Context, db *sql.DB) error {
	want, err := embeddedVersions()
	if err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, `SELECT version_id, is_applied FROM goose_db_version ORDER BY id`)
	if err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "42P01" { // undefined_table: never migrated
			return fmt.Errorf("%w: %d of %d migrations pending", ErrNotMigrated, len(want), len(want))
		}
		return fmt.Errorf("dbmigrate: reading applied versions: %w", err)
	}
	defer rows.Close()
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		var ok bool
		if err := rows.Scan(&v, &ok); err != nil {
			return fmt.Errorf("dbmigrate: %w", err)
		}
		applied[v] = ok // later rows (a down migration) override earlier ones
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dbmigrate: %w", err)
	}
	pending := 0
	for _, v := range want {
		if !applied[v] {
			pending++
		}
	}
	if pending > 0 {
		return fmt.Errorf("%w: %d of %d migrations pending", ErrNotMigrated, pending, len(want))
	}
	return nil
}

// embeddedVersions are the versions (file name prefixes) of the embedded migrations.
func embeddedVersions() ([]int64, error) {
	names, err := fs.Glob(Files(), "*.sql")
	if err != nil {
		return nil, fmt.Errorf("dbmigrate: %w", err)
	}
	out := make([]int64, 0, len(names))
	for _, n := range names {
		prefix, _, _ := strings.Cut(n, "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("dbmigrate: migration %s: version prefix: %w", n, err)
		}
		out = append(out, v)
	}
	return out, nil
}

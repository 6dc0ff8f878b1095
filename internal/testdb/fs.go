package testdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
)

// FSMigrator is a Migrator for schemas that migration files define entirely,
// such as an embedded migrations directory: its hash is HashFS(FS), so editing,
// adding or renaming a file builds a new template. Apply runs the migrations
// (e.g. goose.Up or an ent/Atlas executor) against the empty database.
type FSMigrator struct {
	FS    fs.FS
	Apply func(ctx context.Context, db *sql.DB) error
}

// Hash implements Migrator.
func (m FSMigrator) Hash() (string, error) { return HashFS(m.FS) }

// Migrate implements Migrator.
func (m FSMigrator) Migrate(ctx context.Context, db *sql.DB) error { return m.Apply(ctx, db) }

// HashFS hashes the names and contents of every file in fsys. fs.WalkDir
// visits in lexical order, so the result does not depend on the platform.
func HashFS(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		// Lengths delimit the fields, so moving bytes between a name and a
		// body cannot produce the same hash.
		fmt.Fprintf(h, "%d:%s:%d:", len(path), path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migration files: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Command gen writes a new versioned migration: the difference between the
// committed migrations and the current ent schema, in goose format. It needs a
// PostgreSQL server: it creates a scratch database, replays the migrations in
// it, computes the diff and drops it again.
//
//	go run ./internal/dbmigrate/gen -name add_users
//
// DIRSYNC_DEV_DATABASE_URL names the server (default: local, user postgres).
//
// After editing or adding a migration by hand (for what ent cannot express,
// e.g. an index on a join table), refresh the directory's checksum file:
//
//	go run ./internal/dbmigrate/gen -rehash
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"time"

	atlas "ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/sqltool"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"
	"github.com/lib/pq"

	"github.com/dirsync/dirsync/ent/migrate"
)

func main() {
	name := flag.String("name", "", "name of the migration (required)")
	dir := flag.String("dir", "internal/dbmigrate/migrations", "migration directory, relative to the working directory")
	rehash := flag.Bool("rehash", false, "only rewrite atlas.sum after a hand edit")
	flag.Parse()
	if *rehash {
		if err := writeSum(*dir); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *name == "" {
		log.Fatal("gen: -name is required")
	}
	base := os.Getenv("DIRSYNC_DEV_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, base, *dir, *name); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, base, dirPath, name string) (err error) {
	admin, err := sql.Open("postgres", base)
	if err != nil {
		return err
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	scratch := "dirsync_migrate_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(scratch)); err != nil {
		return fmt.Errorf("gen: creating scratch database: %w", err)
	}
	defer func() {
		if _, derr := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(scratch)+" WITH (FORCE)"); derr != nil && err == nil {
			err = fmt.Errorf("gen: dropping scratch database: %w", derr)
		}
	}()
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/" + scratch

	dir, err := sqltool.NewGooseDir(dirPath)
	if err != nil {
		return fmt.Errorf("gen: opening %s: %w", dirPath, err)
	}
	err = migrate.NamedDiff(ctx, u.String(), name,
		schema.WithDir(dir),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithDialect(dialect.Postgres),
		schema.WithFormatter(sqltool.GooseFormatter),
	)
	if err != nil {
		return fmt.Errorf("gen: computing migration: %w", err)
	}
	files, err := dir.Files()
	if err != nil {
		return err
	}
	if len(files) > 0 {
		fmt.Println("gen: latest migration:", files[len(files)-1].Name())
	}
	return nil
}

func writeSum(path string) error {
	dir, err := sqltool.NewGooseDir(path)
	if err != nil {
		return fmt.Errorf("gen: opening %s: %w", path, err)
	}
	sum, err := dir.Checksum()
	if err != nil {
		return fmt.Errorf("gen: hashing %s: %w", path, err)
	}
	return atlas.WriteSumFile(dir, sum)
}

// Package testdb gives each test its own PostgreSQL database, cloned from a
// template that holds the migrated schema.
//
// Migrating once and cloning per test (CREATE DATABASE … TEMPLATE, tens of
// milliseconds) lets every test run with t.Parallel() against a real server,
// in every package at once, without seeing another test's rows. The approach
// follows peterldowns/pgtestdb and river's riverdbtest.
//
// The server comes from DIRSYNC_TEST_DATABASE_URL (a postgres:// URL whose
// user may create databases; default DefaultBaseURL). A passing test's
// database is dropped; a failing test's database is kept and its URL logged so
// it can be inspected with psql. Set DIRSYNC_TEST_KEEP_DB=1 to keep them all.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/dirsync/dirsync/internal/stmtcache"
)

// DefaultBaseURL is the server used when DIRSYNC_TEST_DATABASE_URL is unset:
// the local PostgreSQL that scripts/ensure-services.sh provides.
const DefaultBaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Name prefixes; scripts or people can find leftovers by them.
const (
	TemplatePrefix = "dirsync_tpl_"
	TestPrefix     = "dirsync_t_"
)

// Migrator builds the schema every test database starts with.
type Migrator interface {
	// Hash identifies the schema Migrate produces. It names the template, so
	// it must change whenever the migrations do; otherwise tests run against
	// a stale template.
	Hash() (string, error)
	// Migrate applies the schema to an empty database.
	Migrate(ctx context.Context, db *sql.DB) error
}

// Template creation can wait behind another process that holds the lock
// while it migrates, so it gets far more time than one clone.
const (
	templateTimeout = 3 * time.Minute
	cloneTimeout    = time.Minute
)

// New returns a connection pool to a fresh database holding m's schema. The
// pool is closed, and the database dropped, when the test ends.
func New(t testing.TB, m Migrator) *sql.DB {
	t.Helper()
	dsn := NewURL(t, m)
	// As the dirsync binary opens it (internal/app), statement cache included.
	db, err := stmtcache.Open(dsn, stmtcache.DefaultSize)
	if err != nil {
		t.Fatalf("testdb: open %s: %v", dsn, err)
	}
	// Registered after NewURL's cleanup, so it runs first: the pool is
	// closed before the database is dropped.
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// NewURL creates a fresh database holding m's schema and returns its lib/pq
// URL, for code under test that opens its own connections. The database is
// dropped when the test ends (kept if the test failed).
func NewURL(t testing.TB, m Migrator) string {
	t.Helper()
	base, err := baseURL()
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	tpl, err := ensureTemplate(base, m)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}

	name := TestPrefix + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), cloneTimeout)
	defer cancel()
	err = withAdmin(ctx, base, func(admin *sql.DB) error {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)+" TEMPLATE "+pq.QuoteIdentifier(tpl))
		return err
	})
	if err != nil {
		t.Fatalf("testdb: create database %s from %s: %v", name, tpl, err)
	}
	dsn := withDatabase(base, name)

	t.Cleanup(func() {
		if t.Failed() || os.Getenv("DIRSYNC_TEST_KEEP_DB") != "" {
			t.Logf("testdb: kept database %s: psql %q", name, dsn)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), cloneTimeout)
		defer cancel()
		// FORCE ends sessions the test leaked (a pool it never closed, a
		// server it did not stop), which would otherwise block the drop.
		err := withAdmin(ctx, base, func(admin *sql.DB) error {
			_, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
			return err
		})
		if err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	return dsn
}

func baseURL() (*url.URL, error) {
	raw := os.Getenv("DIRSYNC_TEST_DATABASE_URL")
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("DIRSYNC_TEST_DATABASE_URL must be a postgres:// URL, got %q", raw)
	}
	return u, nil
}

func withDatabase(base *url.URL, name string) string {
	u := *base
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// withAdmin runs fn on a pool connected to the base database. The pool is
// closed again rather than cached: a pool left open for the life of the
// process shows up as leaked goroutines in packages that run goleak.
func withAdmin(ctx context.Context, base *url.URL, fn func(*sql.DB) error) error {
	db, err := sql.Open("postgres", base.String())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to %s (is PostgreSQL up? run scripts/ensure-services.sh): %w", base.Redacted(), err)
	}
	return fn(db)
}

// templates remembers, per process, which templates are ready, so only the
// first test of a package pays for the lock round trip.
var templates sync.Map // template name -> *templateState

type templateState struct {
	once sync.Once
	err  error
}

// ensureTemplate returns the name of the template database for m, building
// it if no process has yet.
func ensureTemplate(base *url.URL, m Migrator) (string, error) {
	h, err := m.Hash()
	if err != nil {
		return "", fmt.Errorf("migrator hash: %w", err)
	}
	name := templateName(h)

	// Keyed by server too: a template ready on one server says nothing
	// about another.
	v, _ := templates.LoadOrStore(base.String()+"|"+name, &templateState{})
	st := v.(*templateState)
	st.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), templateTimeout)
		defer cancel()
		st.err = withAdmin(ctx, base, func(admin *sql.DB) error {
			return buildTemplate(ctx, admin, base, name, m)
		})
		if st.err != nil {
			st.err = fmt.Errorf("template %s: %w", name, st.err)
		}
	})
	return name, st.err
}

// buildTemplate migrates the template under a session-level advisory lock:
// go test runs packages as separate processes, and two of them creating the
// same database at once would make one fail. Whoever gets the lock second
// finds the template ready.
func buildTemplate(ctx context.Context, admin *sql.DB, base *url.URL, name string, m Migrator) (err error) {
	conn, err := admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	key := lockKey(name)
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	defer func() {
		// A fresh context: the unlock must happen even when ctx expired,
		// or the session would hold the lock until the pool closes it.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, uerr := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", key); uerr != nil && err == nil {
			err = fmt.Errorf("advisory unlock: %w", uerr)
		}
	}()

	// IS_TEMPLATE is set only after a successful migration, so it doubles as
	// the "complete" marker: a database without it is a crashed attempt.
	var isTemplate bool
	switch err := conn.QueryRowContext(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&isTemplate); {
	case err == nil && isTemplate:
		return nil
	case err == nil:
		if _, err := conn.ExecContext(ctx, "DROP DATABASE "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop incomplete template: %w", err)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}

	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := migrate(ctx, withDatabase(base, name), m); err != nil {
		// Leave nothing half-built behind; the next run starts over.
		_, _ = conn.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+pq.QuoteIdentifier(name)+" IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("mark as template: %w", err)
	}
	return nil
}

func migrate(ctx context.Context, dsn string, m Migrator) error {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	// Closed before the first clone: CREATE DATABASE … TEMPLATE refuses a
	// source database that has sessions.
	defer db.Close()
	return m.Migrate(ctx, db)
}

// templateName hashes the migrator's hash again, which keeps the name a
// valid, short identifier whatever the migrator returns.
func templateName(migratorHash string) string {
	sum := sha256.Sum256([]byte(migratorHash))
	return TemplatePrefix + hex.EncodeToString(sum[:])[:16]
}

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("dirsync/testdb/" + name))
	return int64(h.Sum64())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

package testdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// itemsMigrator creates one table and counts its runs. Its hash carries a
// per-process nonce so every run of this package builds (and TestMain drops)
// its own template, which is what lets the "built once" test count.
type itemsMigrator struct {
	nonce string
	calls atomic.Int32
	fail  bool
}

func (m *itemsMigrator) Hash() (string, error) { return "items-v1-" + m.nonce, nil }

func (m *itemsMigrator) Migrate(ctx context.Context, db *sql.DB) error {
	m.calls.Add(1)
	if m.fail {
		// Half-applied, as a real failing migration would leave it.
		if _, err := db.ExecContext(ctx, "CREATE TABLE half (id int)"); err != nil {
			return err
		}
		return errors.New("migration 2 is broken")
	}
	_, err := db.ExecContext(ctx, "CREATE TABLE items (id serial PRIMARY KEY, owner text NOT NULL)")
	return err
}

var items = &itemsMigrator{nonce: randomHex(6)}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := dropTemplateOf(items); err != nil {
		fmt.Fprintln(os.Stderr, "testdb: dropping the test template:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func dropTemplateOf(m Migrator) error {
	h, _ := m.Hash()
	name := templateName(h)
	base, err := baseURL()
	if err != nil {
		return err
	}
	return withAdmin(context.Background(), base, func(admin *sql.DB) error {
		if _, err := admin.Exec("ALTER DATABASE " + pq.QuoteIdentifier(name) + " IS_TEMPLATE false"); err != nil {
			var pqErr *pq.Error
			if errors.As(err, &pqErr) && pqErr.Code == "3D000" { // invalid_catalog_name: never built
				return nil
			}
			return err
		}
		_, err := admin.Exec("DROP DATABASE " + pq.QuoteIdentifier(name) + " WITH (FORCE)")
		return err
	})
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	base, err := baseURL()
	require.NoError(t, err)
	var n int
	err = withAdmin(context.Background(), base, func(admin *sql.DB) error {
		return admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	})
	require.NoError(t, err)
	return n == 1
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	return strings.TrimPrefix(u.Path, "/")
}

func TestParallelTestsGetIsolatedDatabasesFromOneTemplate(t *testing.T) {
	names := make([]string, 4)
	t.Run("group", func(t *testing.T) {
		for i := range names {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				db := New(t, items)
				owner := fmt.Sprint("test-", i)
				_, err := db.Exec("INSERT INTO items (owner) VALUES ($1)", owner)
				require.NoError(t, err)

				// Had any two tests shared a database, one of them would see
				// the other's row here.
				var owners []string
				rows, err := db.Query("SELECT owner FROM items")
				require.NoError(t, err)
				defer rows.Close()
				for rows.Next() {
					var o string
					require.NoError(t, rows.Scan(&o))
					owners = append(owners, o)
				}
				require.NoError(t, rows.Err())
				require.Equal(t, []string{owner}, owners)

				require.NoError(t, db.QueryRow("SELECT current_database()").Scan(&names[i]))
			})
		}
	})
	require.Equal(t, int32(1), items.calls.Load(), "the template is migrated once per process, not per test")
	seen := map[string]bool{}
	for _, n := range names {
		require.True(t, strings.HasPrefix(n, TestPrefix), n)
		require.False(t, seen[n], "database %s handed out twice", n)
		seen[n] = true
	}
}

func TestTwoDatabasesInOneTestDoNotShareRows(t *testing.T) {
	t.Parallel()
	a, b := New(t, items), New(t, items)
	_, err := a.Exec("INSERT INTO items (owner) VALUES ('a')")
	require.NoError(t, err)
	var n int
	require.NoError(t, b.QueryRow("SELECT count(*) FROM items").Scan(&n))
	require.Zero(t, n)
}

func TestDatabaseDroppedAfterPassingTest(t *testing.T) {
	var name string
	t.Run("passes", func(t *testing.T) {
		dsn := NewURL(t, items)
		name = dbName(t, dsn)
		require.True(t, databaseExists(t, name))

		// A connection the test forgot to close must not block the drop.
		db, err := sql.Open("postgres", dsn)
		require.NoError(t, err)
		require.NoError(t, db.Ping())
		t.Cleanup(func() { db.Close() }) // runs after the drop
	})
	require.NotEmpty(t, name)
	require.False(t, databaseExists(t, name), "database %s should be dropped", name)
}

// failingTB reports its test as failed, so the keep-on-failure path can be
// exercised without failing the real test.
type failingTB struct {
	testing.TB
	cleanups []func()
	logs     []string
}

func (f *failingTB) Failed() bool            { return true }
func (f *failingTB) Cleanup(fn func())       { f.cleanups = append(f.cleanups, fn) }
func (f *failingTB) Logf(s string, a ...any) { f.logs = append(f.logs, fmt.Sprintf(s, a...)) }

func TestDatabaseKeptAndLoggedAfterFailingTest(t *testing.T) {
	t.Parallel()
	ftb := &failingTB{TB: t}
	dsn := NewURL(ftb, items)
	name := dbName(t, dsn)
	for i := len(ftb.cleanups) - 1; i >= 0; i-- {
		ftb.cleanups[i]()
	}
	require.True(t, databaseExists(t, name), "a failed test's database is kept")
	require.Len(t, ftb.logs, 1)
	require.Contains(t, ftb.logs[0], name)

	base, err := baseURL()
	require.NoError(t, err)
	require.NoError(t, withAdmin(context.Background(), base, func(admin *sql.DB) error {
		_, err := admin.Exec("DROP DATABASE " + pq.QuoteIdentifier(name) + " WITH (FORCE)")
		return err
	}))
}

func TestFailedMigrationLeavesNoTemplate(t *testing.T) {
	t.Parallel()
	bad := &itemsMigrator{nonce: randomHex(6), fail: true}
	base, err := baseURL()
	require.NoError(t, err)

	name, err := ensureTemplate(base, bad)
	require.ErrorContains(t, err, "migration 2 is broken")
	require.False(t, databaseExists(t, name), "a half-migrated template must not survive")

	// The error sticks for the process: later tests fail fast instead of
	// re-running a migration known to be broken.
	_, err = ensureTemplate(base, bad)
	require.Error(t, err)
	require.Equal(t, int32(1), bad.calls.Load())
}

func TestIncompleteTemplateIsRebuilt(t *testing.T) {
	t.Parallel()
	m := &itemsMigrator{nonce: randomHex(6)}
	t.Cleanup(func() { require.NoError(t, dropTemplateOf(m)) })
	h, _ := m.Hash()
	base, err := baseURL()
	require.NoError(t, err)

	// What a process killed mid-migration leaves: the database, without
	// the IS_TEMPLATE mark.
	require.NoError(t, withAdmin(context.Background(), base, func(admin *sql.DB) error {
		_, err := admin.Exec("CREATE DATABASE " + pq.QuoteIdentifier(templateName(h)))
		return err
	}))

	db := New(t, m)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM items").Scan(&n))
	require.Equal(t, int32(1), m.calls.Load())
}

func TestBadBaseURL(t *testing.T) {
	t.Setenv("DIRSYNC_TEST_DATABASE_URL", "host=127.0.0.1 user=postgres")
	_, err := baseURL()
	require.ErrorContains(t, err, "postgres:// URL")
}

// TestTemplateBuiltOnceAcrossProcesses stands in for `go test ./...`, which
// runs packages as separate processes that all want the same template: the
// advisory lock must let exactly one of them migrate.
func TestTemplateBuiltOnceAcrossProcesses(t *testing.T) {
	if os.Getenv("TESTDB_CHILD_NONCE") != "" {
		t.Skip("run by the parent test only")
	}
	t.Parallel()
	nonce := randomHex(6)
	shared := &itemsMigrator{nonce: nonce}
	t.Cleanup(func() { require.NoError(t, dropTemplateOf(shared)) })

	const procs = 3
	outs := make([][]byte, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestChildBuildsTemplate$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "TESTDB_CHILD_NONCE="+nonce)
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()

	migrated := 0
	for i := range procs {
		require.NoError(t, errs[i], "child %d:\n%s", i, outs[i])
		require.Contains(t, string(outs[i]), "--- PASS: TestChildBuildsTemplate", "child %d:\n%s", i, outs[i])
		migrated += strings.Count(string(outs[i]), "child: migrated")
	}
	require.Equal(t, 1, migrated, "exactly one process migrates the template")
}

func TestChildBuildsTemplate(t *testing.T) {
	nonce := os.Getenv("TESTDB_CHILD_NONCE")
	if nonce == "" {
		t.Skip("a child of TestTemplateBuiltOnceAcrossProcesses")
	}
	m := &itemsMigrator{nonce: nonce}
	db := New(t, m)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM items").Scan(&n))
	if m.calls.Load() > 0 {
		t.Log("child: migrated")
	}
}

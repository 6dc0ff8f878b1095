package dbmigrate_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/testdb"
)

// TestMigrationsMatchEntSchema fails when the ent schema changed without a new
// migration (run `make migration NAME=...`).
func TestMigrationsMatchEntSchema(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, dbmigrate.Migrator{})
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	require.Empty(t, pendingChanges(t, client), "the ent schema differs from the migrations; run `make migration NAME=<name>`")

	// The check itself must see drift: remove an index and expect it back.
	_, err := db.Exec(`DROP INDEX users_org_email_key`)
	require.NoError(t, err)
	require.NotEmpty(t, pendingChanges(t, client))
}

// pendingChanges returns the statements ent's auto-migration would run to
// bring the database to the ent schema.
func pendingChanges(t *testing.T, client *ent.Client) []string {
	t.Helper()
	var plan bytes.Buffer
	require.NoError(t, client.Schema.WriteTo(context.Background(), &plan))
	var stmts []string
	for _, line := range strings.Split(plan.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "BEGIN;" || line == "COMMIT;" || strings.HasPrefix(line, "--") {
			continue
		}
		stmts = append(stmts, line)
	}
	return stmts
}

func TestUpIsIdempotent(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, dbmigrate.Migrator{})
	require.NoError(t, dbmigrate.Up(context.Background(), db))
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM users`).Scan(&n))
	require.Zero(t, n)
}

// A database that already applied a later migration but lacks an earlier one
// (parallel branches land with interleaved timestamps) gets the earlier one.
func TestUpAppliesAMissingEarlierMigration(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, dbmigrate.Migrator{})
	_, err := db.Exec(`ALTER TABLE jobs DROP COLUMN retry_of_id`)
	require.NoError(t, err)
	_, err = db.Exec(`DELETE FROM goose_db_version WHERE version_id = 20261201045722`)
	require.NoError(t, err)
	require.ErrorIs(t, dbmigrate.Check(context.Background(), db), dbmigrate.ErrNotMigrated)

	require.NoError(t, dbmigrate.Up(context.Background(), db))
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM information_schema.columns
		WHERE table_name = 'jobs' AND column_name = 'retry_of_id'`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, dbmigrate.Check(context.Background(), db))
}

func TestHashIsStable(t *testing.T) {
	t.Parallel()
	a, err := dbmigrate.Migrator{}.Hash()
	require.NoError(t, err)
	b, err := dbmigrate.Migrator{}.Hash()
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.Len(t, a, 16)
}

package stmtcache_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/testdb"
)

type schema struct{}

func (schema) Hash() (string, error) { return "stmtcache-test-v1", nil }

func (schema) Migrate(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, doc jsonb, tags text[], raw bytea)`)
	return err
}

// conn opens a pool with a cache of size on a fresh database and pins one
// connection, so the prepared statements it reports are that session's.
func conn(t *testing.T, size int) *sql.Conn {
	t.Helper()
	db, err := stmtcache.Open(testdb.NewURL(t, schema{}), size)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	c, err := db.Conn(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// prepared lists the session's named statements (the query is sent without
// parameters, so it is not one of them).
func prepared(t *testing.T, c *sql.Conn) []string {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), "SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestAStatementIsPreparedOnceAndReused(t *testing.T) {
	ctx := context.Background()
	c := conn(t, stmtcache.DefaultSize)
	for i := range 5 {
		_, err := c.ExecContext(ctx, "INSERT INTO items (id, name) VALUES ($1, $2)", i, fmt.Sprint("n", i))
		require.NoError(t, err)
	}
	for i := range 5 {
		var name string
		require.NoError(t, c.QueryRowContext(ctx, "SELECT name FROM items WHERE id = $1", i).Scan(&name))
		require.Equal(t, fmt.Sprint("n", i), name)
	}
	require.Equal(t, []string{
		"INSERT INTO items (id, name) VALUES ($1, $2)",
		"SELECT name FROM items WHERE id = $1",
	}, prepared(t, c))
}

func TestSizeZeroIsPlainLibPQ(t *testing.T) {
	ctx := context.Background()
	c := conn(t, 0)
	var n int
	for range 3 {
		require.NoError(t, c.QueryRowContext(ctx, "SELECT $1::int + 1", 41).Scan(&n))
		require.Equal(t, 42, n)
	}
	require.Empty(t, prepared(t, c))
}

func TestTheLeastRecentlyUsedStatementIsClosed(t *testing.T) {
	ctx := context.Background()
	c := conn(t, 2)
	q := func(k int) string { return fmt.Sprintf("SELECT $1::int + %d", k) }
	var n int
	// Each text is prepared at its second run; 2 is the least recently used
	// when 3 comes.
	for _, k := range []int{1, 1, 2, 2, 1, 3, 3} {
		require.NoError(t, c.QueryRowContext(ctx, q(k), 1).Scan(&n))
		require.Equal(t, 1+k, n)
	}
	require.ElementsMatch(t, []string{q(1), q(3)}, prepared(t, c))
}

// A text is prepared at its second run, whatever its size: one run once (a
// bulk insert, whose text changes with its row count) never takes a place.
func TestATextIsPreparedAtItsSecondRun(t *testing.T) {
	ctx := context.Background()
	c := conn(t, stmtcache.DefaultSize)
	insert := func(from int) string {
		var b strings.Builder
		args := make([]any, 200)
		b.WriteString("INSERT INTO items (id, name) VALUES ")
		for i := range 100 {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($%d, $%d)", 2*i+1, 2*i+2)
			args[2*i], args[2*i+1] = from+i, "bulk"
		}
		res, err := c.ExecContext(ctx, b.String(), args...)
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.EqualValues(t, 100, n)
		return b.String()
	}
	insert(0)
	require.Empty(t, prepared(t, c))
	q := insert(100)
	require.Equal(t, []string{q}, prepared(t, c))
	insert(200) // runs the kept statement
	require.Equal(t, []string{q}, prepared(t, c))
	var n int
	require.NoError(t, c.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE name = $1", "bulk").Scan(&n))
	require.Equal(t, 300, n)
}

// Parameters are encoded as lib/pq always did: jsonb given as bytes, arrays
// through pq.Array, bytea, NULL.
func TestParametersRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := conn(t, stmtcache.DefaultSize)
	for i := range 3 { // the first run prepares, the others reuse
		_, err := c.ExecContext(ctx, "INSERT INTO items (id, name, doc, tags, raw) VALUES ($1, $2, $3, $4, $5)",
			i, "it's", []byte(`{"a": [1, "x"]}`), pq.Array([]string{"a", "b,c"}), []byte{0, 1, 255})
		require.NoError(t, err)
	}
	_, err := c.ExecContext(ctx, "INSERT INTO items (id, name, doc) VALUES ($1, $2, $3)", 9, "null doc", nil)
	require.NoError(t, err)
	for range 2 {
		var (
			name string
			doc  []byte
			tags []string
			raw  []byte
		)
		require.NoError(t, c.QueryRowContext(ctx, "SELECT name, doc, tags, raw FROM items WHERE id = $1", 2).
			Scan(&name, &doc, pq.Array(&tags), &raw))
		require.Equal(t, "it's", name)
		require.JSONEq(t, `{"a": [1, "x"]}`, string(doc))
		require.Equal(t, []string{"a", "b,c"}, tags)
		require.Equal(t, []byte{0, 1, 255}, raw)
	}
	var doc sql.NullString
	require.NoError(t, c.QueryRowContext(ctx, "SELECT doc FROM items WHERE id = $1", 9).Scan(&doc))
	require.False(t, doc.Valid)
}

// A schema change can make a kept statement's result type stale. The run
// that meets it fails (PostgreSQL refuses it; inside a transaction nothing
// could be retried), the statement is forgotten, and the next run works.
func TestAStatementMadeStaleBySchemaChangeIsPreparedAgain(t *testing.T) {
	ctx := context.Background()
	c := conn(t, stmtcache.DefaultSize)
	_, err := c.ExecContext(ctx, "INSERT INTO items (id, name) VALUES ($1, $2)", 1, "one")
	require.NoError(t, err)
	const q = "SELECT * FROM items WHERE id = $1"
	for range 2 { // kept from the second run
		rows, err := c.QueryContext(ctx, q, 1)
		require.NoError(t, err)
		cols, _ := rows.Columns()
		require.Len(t, cols, 5)
		require.NoError(t, rows.Close())
	}
	require.Contains(t, prepared(t, c), q)

	_, err = c.ExecContext(ctx, "ALTER TABLE items ADD COLUMN extra text")
	require.NoError(t, err)
	rows, err := c.QueryContext(ctx, q, 1)
	if err == nil {
		_ = rows.Close()
	}
	require.ErrorContains(t, err, "cached plan must not change result type")

	rows, err = c.QueryContext(ctx, q, 1)
	require.NoError(t, err)
	cols, _ := rows.Columns()
	require.Len(t, cols, 6)
	require.NoError(t, rows.Close())
}

// Prepared statements outlive the transactions they were prepared in, and a
// failed statement in a transaction leaves the kept one usable afterwards.
func TestStatementsAcrossTransactions(t *testing.T) {
	ctx := context.Background()
	c := conn(t, stmtcache.DefaultSize)
	const ins = "INSERT INTO items (id, name) VALUES ($1, $2)"
	tx, err := c.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, ins, 1, "rolled back")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())

	tx, err = c.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, ins, 2, "two")
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, ins, 2, "duplicate")
	var pe *pq.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, pq.ErrorCode("23505"), pe.Code)
	require.NoError(t, tx.Rollback())

	_, err = c.ExecContext(ctx, ins, 3, "three")
	require.NoError(t, err)
	var ids []int
	rows, err := c.QueryContext(ctx, "SELECT id FROM items WHERE id > $1 ORDER BY id", 0)
	require.NoError(t, err)
	for rows.Next() {
		var id int
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Close())
	require.Equal(t, []int{3}, ids)
	require.Contains(t, prepared(t, c), ins)
}

// A cancelled statement is cancelled on the server and the connection, with
// its kept statement, stays usable.
func TestCancellationThroughAKeptStatement(t *testing.T) {
	c := conn(t, stmtcache.DefaultSize)
	const q = "SELECT pg_sleep($1::float8)"
	for range 2 { // kept from the second run
		_, err := c.ExecContext(context.Background(), q, 0)
		require.NoError(t, err)
	}
	require.Contains(t, prepared(t, c), q)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ExecContext(ctx, q, 30)
	require.Error(t, err)
	require.Less(t, time.Since(start), 10*time.Second)
	_, err = c.ExecContext(context.Background(), q, 0)
	require.NoError(t, err)
	require.Contains(t, prepared(t, c), q)
}

// Pools hand connections to many goroutines; each connection keeps its own
// statements (run with -race).
func TestConcurrentUseOfThePool(t *testing.T) {
	db, err := stmtcache.Open(testdb.NewURL(t, schema{}), 4)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(4)
	ctx := context.Background()
	errs := make(chan error, 16)
	for g := range 16 {
		go func() {
			var err error
			for i := range 50 {
				var n int
				if err = db.QueryRowContext(ctx, fmt.Sprintf("SELECT $1::int * %d", i%6), g).Scan(&n); err != nil {
					break
				}
				if n != g*(i%6) {
					err = fmt.Errorf("got %d, want %d", n, g*(i%6))
					break
				}
			}
			errs <- err
		}()
	}
	for range 16 {
		require.NoError(t, <-errs)
	}
}

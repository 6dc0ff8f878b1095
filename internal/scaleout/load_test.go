package scaleout_test

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"

	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/stmtcache"
	"github.com/dirsync/dirsync/internal/testredis"
)

// load samples what the deployment cost PostgreSQL and Redis over a phase,
// for the per-user figures of docs/scaling.md. The PostgreSQL figures are
// this test's database only; Redis's command count is the whole server's,
// so it is exact only when the test runs alone (-run TestTwoAPIsTwoWorkers).
type load struct {
	db      *sql.DB
	rdb     *redis.Client
	pg0     pgStats
	redis0  int64
	memory0 int64
}

type pgStats struct{ commits, inserted, updated, deleted, fetched int64 }

func startLoad(t *testing.T, dbURL string, r testredis.Info) *load {
	t.Helper()
	db, err := stmtcache.Open(dbURL, stmtcache.DefaultSize)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	l := &load{db: db, rdb: redis.NewClient(r.Options())}
	t.Cleanup(func() { _ = l.rdb.Close() })
	l.pg0 = l.pg(t)
	l.redis0 = l.redisCommands(t)
	l.memory0 = l.redisMemory(t)
	return l
}

func (l *load) pg(t *testing.T) pgStats {
	t.Helper()
	var s pgStats
	require.NoError(t, l.db.QueryRow(`SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_fetched
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&s.commits, &s.inserted, &s.updated, &s.deleted, &s.fetched))
	return s
}

func (l *load) info(t *testing.T, section, field string) int64 {
	t.Helper()
	out, err := l.rdb.Info(context.Background(), section).Result()
	require.NoError(t, err)
	for _, line := range strings.Split(out, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func (l *load) redisCommands(t *testing.T) int64 {
	return l.info(t, "stats", "total_commands_processed")
}
func (l *load) redisMemory(t *testing.T) int64 { return l.info(t, "memory", "used_memory") }

// report logs the phase's cost per user. PostgreSQL's statistics are sent
// by each backend at transaction end and read from a snapshot, so they may
// lag a little: the figures are approximate, never asserted.
func (l *load) report(t *testing.T, users int) {
	t.Helper()
	_, _ = l.db.Exec(`SELECT pg_stat_clear_snapshot()`)
	pg := l.pg(t)
	per := func(a, b int64) float64 { return float64(b-a) / float64(users) }
	t.Logf("per user provisioned: PostgreSQL %.1f commits, %.1f rows inserted, %.1f updated, %.1f deleted, %.0f fetched; "+
		"Redis %.1f commands (whole server), %+.0f bytes of memory",
		per(l.pg0.commits, pg.commits), per(l.pg0.inserted, pg.inserted), per(l.pg0.updated, pg.updated),
		per(l.pg0.deleted, pg.deleted), per(l.pg0.fetched, pg.fetched),
		per(l.redis0, l.redisCommands(t)), per(l.memory0, l.redisMemory(t)))
	rows, err := l.db.Query(`SELECT relname, indexrelname, idx_scan, idx_tup_read
		FROM pg_stat_user_indexes ORDER BY idx_tup_read DESC LIMIT 6`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var table, index string
		var scans, read int64
		require.NoError(t, rows.Scan(&table, &index, &scans, &read))
		t.Logf("  index %s.%s, whole run: %d scans reading %d entries", table, index, scans, read)
	}
}

// Package testredis lends each test its own Redis logical database, so tests
// that use Redis (asynq queues, pub/sub, rate limits) run in parallel, across
// packages too, without seeing each other's keys.
//
// Databases 1..N-1 (N = the server's "databases" setting, 16 by default) are
// leased through lock keys in database 0, which is never handed out. A lease
// expires after LeaseTTL, so a test process killed mid-run frees its
// databases by itself. The server comes from DIRSYNC_TEST_REDIS_ADDR
// (default DefaultAddr).
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultAddr is the Redis used when DIRSYNC_TEST_REDIS_ADDR is unset: the
// local one that scripts/ensure-services.sh provides.
const DefaultAddr = "127.0.0.1:6379"

// LeaseTTL bounds how long a crashed test process can keep a database from
// others. A test that runs longer than this could lose its database to
// another test, far beyond any sane test's length.
const LeaseTTL = 10 * time.Minute

// waitForFree is how long New waits for a database when all are leased,
// e.g. while many packages run Redis tests at once.
const waitForFree = 2 * time.Minute

const keyPrefix = "dirsync:testdb:"

// Info locates the database a test may use. Addr and DB suit
// redis.Options and asynq.RedisClientOpt; URL suits code that parses one.
type Info struct {
	Addr string
	DB   int
	URL  string
}

// Options returns go-redis options for the test's database.
func (i Info) Options() *redis.Options { return &redis.Options{Addr: i.Addr, DB: i.DB} }

// releaseScript empties the database and frees the lease, but only while the
// lease is still ours: had it expired and been taken by another test,
// flushing would wipe that test's data. One script makes check and flush
// atomic.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SELECT', tonumber(ARGV[2]))
redis.call('FLUSHDB')
redis.call('SELECT', 0)
redis.call('DEL', KEYS[1])
return 1
`)

// New leases an empty Redis database for the life of t; it is emptied and
// released when the test ends.
func New(t testing.TB) Info {
	t.Helper()
	addr := os.Getenv("DIRSYNC_TEST_REDIS_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitForFree+10*time.Second)
	defer cancel()

	ctl := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
	defer ctl.Close()
	if err := ctl.Ping(ctx).Err(); err != nil {
		t.Fatalf("testredis: connect to %s (is Redis up? run scripts/ensure-services.sh): %v", addr, err)
	}
	count, err := databases(ctx, ctl)
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}

	token := randomToken()
	db, err := lease(ctx, ctl, count, token)
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	// The previous holder may have crashed before its cleanup.
	if err := flush(ctx, addr, db); err != nil {
		t.Fatalf("testredis: flush db %d: %v", db, err)
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctl := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
		defer ctl.Close()
		if err := releaseScript.Run(ctx, ctl, []string{keyPrefix + strconv.Itoa(db)}, token, db).Err(); err != nil {
			t.Errorf("testredis: release db %d: %v", db, err)
		}
	})
	return Info{Addr: addr, DB: db, URL: fmt.Sprintf("redis://%s/%d", addr, db)}
}

// lease takes the first free database, starting at a random one so parallel
// callers rarely contend for the same key, and waits while all are taken.
func lease(ctx context.Context, ctl *redis.Client, count int, token string) (int, error) {
	deadline := time.Now().Add(waitForFree)
	for {
		start := mrand.IntN(count - 1)
		for i := range count - 1 {
			db := 1 + (start+i)%(count-1)
			ok, err := ctl.SetNX(ctx, keyPrefix+strconv.Itoa(db), token, LeaseTTL).Result()
			if err != nil {
				return 0, fmt.Errorf("lease: %w", err)
			}
			if ok {
				return db, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("all %d Redis test databases stayed leased for %s (leases are keys %s* in db 0)", count-1, waitForFree, keyPrefix)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// databases reads how many logical databases the server has; a server
// configured with fewer than 16 must not be asked for db 15.
func databases(ctx context.Context, ctl *redis.Client) (int, error) {
	v, err := ctl.ConfigGet(ctx, "databases").Result()
	if err != nil {
		return 0, fmt.Errorf("CONFIG GET databases: %w", err)
	}
	n, err := strconv.Atoi(v["databases"])
	if err != nil || n < 2 {
		return 0, fmt.Errorf("redis has %q databases; tests need at least 2", v["databases"])
	}
	return n, nil
}

func flush(ctx context.Context, addr string, db int) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer c.Close()
	return c.FlushDB(ctx).Err()
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

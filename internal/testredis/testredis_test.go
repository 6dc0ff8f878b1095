package testredis

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, addr string, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	t.Cleanup(func() { c.Close() })
	return c
}

// manualTB runs its cleanups only when told, so a test can look at Redis
// between "the test ended" and "the next test starts".
type manualTB struct {
	testing.TB
	cleanups []func()
}

func (m *manualTB) Cleanup(fn func()) { m.cleanups = append(m.cleanups, fn) }
func (m *manualTB) end() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
}

func TestParallelUsersGetDifferentEmptyDatabases(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			info := New(t)
			require.NotZero(t, info.DB, "db 0 holds the leases and is never lent")
			require.Equal(t, fmt.Sprintf("redis://%s/%d", info.Addr, info.DB), info.URL)
			c := client(t, info.Addr, info.DB)
			ctx := context.Background()
			require.Zero(t, c.DBSize(ctx).Val(), "a leased database starts empty")

			me := fmt.Sprint("user-", i)
			require.NoError(t, c.Set(ctx, "owner", me, 0).Err())
			// Had two users shared a database, one would read the other's
			// value or see two keys.
			for range 20 {
				require.Equal(t, me, c.Get(ctx, "owner").Val())
				require.Equal(t, int64(1), c.DBSize(ctx).Val())
			}
		})
	}
}

func TestTwoLeasesInOneTestDiffer(t *testing.T) {
	t.Parallel()
	a, b := New(t), New(t)
	require.NotEqual(t, a.DB, b.DB)
}

func TestKeysDoNotLeakAfterCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tb := &manualTB{TB: t}
	info := New(tb)
	c := client(t, info.Addr, info.DB)
	for i := range 10 {
		require.NoError(t, c.Set(ctx, "k"+strconv.Itoa(i), "v", 0).Err())
	}
	lockKey := keyPrefix + strconv.Itoa(info.DB)
	ctl := client(t, info.Addr, 0)
	require.Equal(t, int64(1), ctl.Exists(ctx, lockKey).Val())

	tb.end()

	// Lease the same number again ourselves, so no other test can fill it
	// while we look.
	ok, err := ctl.SetNX(ctx, lockKey, "checker", LeaseTTL).Result()
	require.NoError(t, err)
	if !ok {
		t.Skip("another test leased the database the moment it was released")
	}
	defer ctl.Del(ctx, lockKey)
	require.Zero(t, c.DBSize(ctx).Val(), "keys left behind in db %d", info.DB)
}

func TestReleaseLeavesAnotherHoldersDatabaseAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tb := &manualTB{TB: t}
	info := New(tb)
	c := client(t, info.Addr, info.DB)
	require.NoError(t, c.Set(ctx, "theirs", "1", 0).Err())

	// Our lease expired and another test took the database over.
	lockKey := keyPrefix + strconv.Itoa(info.DB)
	ctl := client(t, info.Addr, 0)
	require.NoError(t, ctl.Set(ctx, lockKey, "someone-else", LeaseTTL).Err())

	tb.end()

	require.Equal(t, "someone-else", ctl.Get(ctx, lockKey).Val())
	require.Equal(t, "1", c.Get(ctx, "theirs").Val())

	// Now release it as the "other holder" would.
	require.NoError(t, c.FlushDB(ctx).Err())
	require.NoError(t, ctl.Del(ctx, lockKey).Err())
}

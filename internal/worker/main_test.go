package worker_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// discard silences go-redis' own dial errors, which the Redis outage test
// provokes by the hundred.
type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(discard{})
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/lib/pq.(*Listener).listenerConnLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// the emulator's httptest servers and keep-alive connections close lazily
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

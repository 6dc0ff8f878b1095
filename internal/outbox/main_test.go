package outbox_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// lib/pq's listener and go-redis pools wind down asynchronously after Close.
		goleak.IgnoreTopFunction("github.com/lib/pq.(*Listener).listenerConnLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

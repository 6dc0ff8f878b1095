package msgraph

import (
	"testing"

	"go.uber.org/goleak"
)

// Retry waits and token fetches must not leave goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

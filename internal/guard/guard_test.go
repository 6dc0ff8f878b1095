package guard_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dirsync/dirsync/internal/guard"
)

// The default threshold is 25 users or 10 % of the linked users, whichever
// is larger (issue 14).
func TestDefaultLimit(t *testing.T) {
	for linked, want := range map[int]int{0: 25, 100: 25, 250: 25, 259: 25, 260: 26, 1200: 120, 10000: 1000} {
		assert.Equal(t, want, guard.DefaultLimit(linked), "linked %d", linked)
	}
}

// Disables wait only when they exceed the limit: planned plus those admitted
// in the window going beyond it; an off guard never waits.
func TestExceeds(t *testing.T) {
	th := guard.Threshold{Limit: 25}
	assert.False(t, th.Exceeds(25, 0), "exactly the threshold runs")
	assert.True(t, th.Exceeds(26, 0))
	assert.False(t, th.Exceeds(20, 5))
	assert.True(t, th.Exceeds(20, 20), "the rolling window counts")
	assert.True(t, guard.Threshold{Limit: 0}.Exceeds(1, 0), "0: every disable waits")
	assert.False(t, guard.Threshold{Off: true}.Exceeds(10000, 10000))
}

package jobs_test

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/jobs"
)

func TestTruncate(t *testing.T) {
	require.Equal(t, "abc", jobs.Truncate("abc", 3))
	require.Equal(t, "ab", jobs.Truncate("abc", 2))
	require.Equal(t, "", jobs.Truncate("abc", 0))
	// "é" is two bytes: never cut inside a rune.
	got := jobs.Truncate("aéb", 2)
	require.Equal(t, "a", got)
	require.True(t, utf8.ValidString(got))
	require.Equal(t, "aé", jobs.Truncate("aéb", 3))
}

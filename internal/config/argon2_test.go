package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestArgon2FromEnv(t *testing.T) {
	c, err := fromLookup(lookupFrom(map[string]string{
		"DIRSYNC_ARGON2_MEMORY_KIB": "32768", "DIRSYNC_ARGON2_ITERATIONS": "3", "DIRSYNC_ARGON2_PARALLELISM": "2",
	}))
	require.NoError(t, err)
	require.Equal(t, [3]int{32768, 3, 2}, [3]int{c.Argon2MemoryKiB, c.Argon2Iterations, c.Argon2Parallelism})
	_, err = fromLookup(lookupFrom(map[string]string{"DIRSYNC_ARGON2_ITERATIONS": "many"}))
	require.ErrorContains(t, err, "DIRSYNC_ARGON2_ITERATIONS")
}

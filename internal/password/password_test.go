package password_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/password"
)

var fast = password.Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}

func TestHashIsSelfDescribingAndVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, err := password.NewHasher(fast, 0)
	require.NoError(t, err)
	phc, err := h.Hash(ctx, "Correct-Horse-9")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(phc, "$argon2id$v=19$m=8192,t=1,p=1$"), phc)
	require.NotContains(t, phc, "Correct-Horse-9")
	again, err := h.Hash(ctx, "Correct-Horse-9")
	require.NoError(t, err)
	require.NotEqual(t, phc, again, "fresh salt each time")

	ok, rehash, err := h.Verify(ctx, "Correct-Horse-9", phc)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, rehash)
	ok, _, err = h.Verify(ctx, "correct-Horse-9", phc)
	require.NoError(t, err)
	require.False(t, ok)

	// Raised parameters: the old hash still verifies and asks to be replaced.
	stronger, err := password.NewHasher(password.Params{MemoryKiB: 16 * 1024, Iterations: 2, Parallelism: 1}, 0)
	require.NoError(t, err)
	ok, rehash, err = stronger.Verify(ctx, "Correct-Horse-9", phc)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, rehash)
	// A wrong password never asks for a rehash.
	ok, rehash, _ = stronger.Verify(ctx, "nope", phc)
	require.False(t, ok)
	require.False(t, rehash)

	for _, bad := range []string{"", "$argon2i$v=19$m=8192,t=1,p=1$AAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "plain"} {
		_, _, err := h.Verify(ctx, "x", bad)
		require.ErrorIs(t, err, password.ErrMalformed, bad)
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, password.DefaultParams.Validate())
	require.Error(t, password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}.Validate())
	require.Error(t, password.Params{MemoryKiB: 8192, Iterations: 0, Parallelism: 1}.Validate())
}

func TestPolicyMirrorsEntra(t *testing.T) {
	t.Parallel()
	cases := map[string]password.Rule{
		"Short1!":                  password.RuleLength,
		strings.Repeat("Aa1!", 65): password.RuleLength,
		"Pässwort-123":             password.RuleCharacters,
		"tab\tTab123":              password.RuleCharacters,
		"alllowercase1":            password.RuleClasses,
		"ALLUPPER!!!!":             password.RuleClasses,
		"Jane.Doe-2024":            password.RuleNoName,
		"xxJDOExx-1a":              password.RuleNoName,
		"Correct-Horse-9":          "",
		"correct horse battery 9":  "",
		"UPPER lower 123":          "",
		strings.Repeat("Aa1!", 64): "",
	}
	for pw, want := range cases {
		err := password.Check(pw, "jdoe", "Jane", "Doe", "jo")
		if want == "" {
			require.NoError(t, err, pw)
			continue
		}
		var pe *password.PolicyError
		require.True(t, errors.As(err, &pe), pw)
		require.Equal(t, want, pe.Rule, pw)
		require.NotContains(t, err.Error(), pw)
	}
}

// A hash with more lanes than the hasher has slots still runs (it takes all
// slots) instead of waiting forever, and a cancelled wait for a slot returns
// the context's error instead of hashing.
func TestHasherSlots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wide := password.Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 4}
	h, err := password.NewHasher(wide, 1)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		phc, err := h.Hash(ctx, "Correct-Horse-9")
		if err == nil {
			_, _, err = h.Verify(ctx, "Correct-Horse-9", phc)
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("a 4-lane hash on a 1-slot hasher never ran")
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = h.Hash(cancelled, "Correct-Horse-9")
	require.ErrorIs(t, err, context.Canceled)
}

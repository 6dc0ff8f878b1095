package secrets

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpenRoundTrip(t *testing.T) {
	k, err := NewKeyring("k1", map[string][]byte{"k1": key(1)})
	require.NoError(t, err)
	s, err := k.Seal([]byte("client-secret-value"), []byte("integration:42"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s, "k1:"))
	require.NotContains(t, s, "client-secret-value")

	got, err := k.Open(s, []byte("integration:42"))
	require.NoError(t, err)
	require.Equal(t, "client-secret-value", string(got))

	s2, err := k.Seal([]byte("client-secret-value"), []byte("integration:42"))
	require.NoError(t, err)
	require.NotEqual(t, s, s2, "a fresh nonce every time")
}

func TestOpenRefusesWrongRowTamperingAndUnknownKey(t *testing.T) {
	k, err := NewKeyring("k1", map[string][]byte{"k1": key(1)})
	require.NoError(t, err)
	s, err := k.Seal([]byte("pw"), []byte("row-a"))
	require.NoError(t, err)

	_, err = k.Open(s, []byte("row-b"))
	require.ErrorIs(t, err, ErrOpen)

	tampered := s[:len(s)-2] + "AA"
	if tampered == s {
		tampered = s[:len(s)-2] + "BB"
	}
	_, err = k.Open(tampered, []byte("row-a"))
	require.ErrorIs(t, err, ErrOpen)

	_, err = k.Open("k9:"+strings.TrimPrefix(s, "k1:"), []byte("row-a"))
	require.ErrorIs(t, err, ErrOpen)
	_, err = k.Open("garbage", nil)
	require.ErrorIs(t, err, ErrOpen)
}

func TestRotationOpensOldValues(t *testing.T) {
	old, err := NewKeyring("k1", map[string][]byte{"k1": key(1)})
	require.NoError(t, err)
	s, err := old.Seal([]byte("v"), nil)
	require.NoError(t, err)

	rotated, err := NewKeyring("k2", map[string][]byte{"k1": key(1), "k2": key(2)})
	require.NoError(t, err)
	got, err := rotated.Open(s, nil)
	require.NoError(t, err)
	require.Equal(t, "v", string(got))
	s2, err := rotated.Seal([]byte("v"), nil)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s2, "k2:"))
}

func TestNewKeyringValidates(t *testing.T) {
	_, err := NewKeyring("k1", map[string][]byte{"k2": key(2)})
	require.Error(t, err)
	_, err = NewKeyring("k1", map[string][]byte{"k1": []byte("short")})
	require.Error(t, err)
	_, err = NewKeyring("a:b", map[string][]byte{"a:b": key(1)})
	require.Error(t, err)
}

func TestUnknownKeyNamesTheKeyAndResealIsIdempotent(t *testing.T) {
	old, err := NewKeyring("k1", map[string][]byte{"k1": key(1)})
	require.NoError(t, err)
	s, err := old.Seal([]byte("v"), []byte("row"))
	require.NoError(t, err)
	other, err := NewKeyring("k2", map[string][]byte{"k2": key(2)})
	require.NoError(t, err)
	_, err = other.Open(s, []byte("row"))
	require.ErrorIs(t, err, ErrOpen)
	require.ErrorContains(t, err, `"k1"`)

	both, err := NewKeyring("k2", map[string][]byte{"k1": key(1), "k2": key(2)})
	require.NoError(t, err)
	s2, changed, err := both.Reseal(s, []byte("row"))
	require.NoError(t, err)
	require.True(t, changed)
	require.Equal(t, "k2", KeyID(s2))
	s3, changed, err := both.Reseal(s2, []byte("row"))
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, s2, s3)
	_, _, err = both.Reseal(s2, []byte("other row"))
	require.ErrorIs(t, err, ErrOpen)
}

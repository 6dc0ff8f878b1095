package config

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"
)

func b64(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestSecretKeysFirstSealsOldSingleKeyStillWorks(t *testing.T) {
	c, err := fromLookup(lookupFrom(map[string]string{"DIRSYNC_SECRET_KEYS": "k2:" + b64(2) + ", k1:" + b64(1)}))
	require.NoError(t, err)
	require.NoError(t, c.Validate(true))
	cur, keys, err := c.SealingKeys()
	require.NoError(t, err)
	require.Equal(t, "k2", cur)
	require.Len(t, keys, 2)

	// The single-key variables alone are one key.
	c, err = fromLookup(lookupFrom(map[string]string{"DIRSYNC_SECRET_KEY": b64(1), "DIRSYNC_SECRET_KEY_ID": "old"}))
	require.NoError(t, err)
	cur, keys, err = c.SealingKeys()
	require.NoError(t, err)
	require.Equal(t, "old", cur)
	require.Equal(t, map[string][]byte{"old": bytes.Repeat([]byte{1}, 32)}, keys)

	// Both: the list seals, the single key still opens.
	c, err = fromLookup(lookupFrom(map[string]string{"DIRSYNC_SECRET_KEY": b64(1), "DIRSYNC_SECRET_KEYS": "k2:" + b64(2)}))
	require.NoError(t, err)
	cur, keys, err = c.SealingKeys()
	require.NoError(t, err)
	require.Equal(t, "k2", cur)
	require.Contains(t, keys, "k1")
}

func TestSecretKeysErrorsNameTheKey(t *testing.T) {
	for v, want := range map[string]string{
		"k1:" + b64(1) + ",k1:" + b64(2): `key id "k1" given twice`,
		"k1:notbase64!":                  `key "k1" is not valid base64`,
		"k1:" + base64.StdEncoding.EncodeToString([]byte("short")): `key "k1" decodes to 5 bytes`,
		b64(1): "want id:base64",
	} {
		_, err := fromLookup(lookupFrom(map[string]string{"DIRSYNC_SECRET_KEYS": v}))
		require.ErrorContains(t, err, want)
		require.NotContains(t, err.Error(), b64(1))
	}
	c, err := fromLookup(lookupFrom(map[string]string{"DIRSYNC_SECRET_KEY": b64(1), "DIRSYNC_SECRET_KEYS": "k1:" + b64(2)}))
	require.NoError(t, err)
	require.ErrorContains(t, c.Validate(true), `DIRSYNC_SECRET_KEY_ID "k1" names a different key`)
}

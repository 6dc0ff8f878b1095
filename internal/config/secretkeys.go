package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
)

// SecretKey is one named sealing key of DIRSYNC_SECRET_KEYS.
type SecretKey struct {
	ID  string
	Key []byte
}

// parseSecretKeys reads DIRSYNC_SECRET_KEYS: "id:base64,id:base64,…", the
// first sealing new values, the others only opening old ones.
func parseSecretKeys(v string) ([]SecretKey, error) {
	var keys []SecretKey
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, b64, ok := strings.Cut(part, ":")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, fmt.Errorf("DIRSYNC_SECRET_KEYS: want id:base64,… (entry %d has no id)", len(keys)+1)
		}
		if seen[id] {
			return nil, fmt.Errorf("DIRSYNC_SECRET_KEYS: key id %q given twice", id)
		}
		seen[id] = true
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("DIRSYNC_SECRET_KEYS: key %q is not valid base64", id)
		}
		if len(k) != 32 {
			return nil, fmt.Errorf("DIRSYNC_SECRET_KEYS: key %q decodes to %d bytes, want 32", id, len(k))
		}
		keys = append(keys, SecretKey{ID: id, Key: k})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("DIRSYNC_SECRET_KEYS: no key")
	}
	return keys, nil
}

// SealingKeys returns the keys by id and the id that seals new values: the
// first of DIRSYNC_SECRET_KEYS, else DIRSYNC_SECRET_KEY under
// DIRSYNC_SECRET_KEY_ID. With both, the single key also opens old values
// (moving from one variable to the other needs no re-seal first). An empty
// map means no key is configured.
func (c Config) SealingKeys() (current string, keys map[string][]byte, err error) {
	keys = map[string][]byte{}
	for _, k := range c.SecretKeys {
		keys[k.ID] = k.Key
	}
	if len(c.SecretKeys) > 0 {
		current = c.SecretKeys[0].ID
	}
	if len(c.SecretKey) > 0 {
		if other, ok := keys[c.SecretKeyID]; ok && !bytes.Equal(other, c.SecretKey) {
			return "", nil, fmt.Errorf("DIRSYNC_SECRET_KEY_ID %q names a different key in DIRSYNC_SECRET_KEYS", c.SecretKeyID)
		}
		keys[c.SecretKeyID] = c.SecretKey
		if current == "" {
			current = c.SecretKeyID
		}
	}
	return current, keys, nil
}

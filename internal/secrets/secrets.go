// Package secrets seals small values (integration client secrets, queued passwords)
// with AES-256-GCM. A sealed value is "<key id>:<base64url(nonce|ciphertext)>" so the
// key can rotate: new values use the current key, old ones open with the key they
// name. Callers pass associated data (e.g. the owning row's id) so a sealed value
// copied into another row fails to open instead of decrypting there.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrOpen hides why opening failed (wrong key, tampering, wrong row): the reason
// would help an attacker and never helps an operator more than "cannot open".
var ErrOpen = errors.New("secrets: cannot open sealed value")

// Keyring holds the current sealing key and older keys still accepted for opening.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewKeyring builds a keyring; keys maps key id → 32-byte key and must contain
// currentID.
func NewKeyring(currentID string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[currentID]; !ok {
		return nil, fmt.Errorf("secrets: current key %q not among the keys", currentID)
	}
	k := &Keyring{current: currentID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if id == "" || strings.Contains(id, ":") {
			return nil, fmt.Errorf("secrets: key id %q must be non-empty and without ':'", id)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("secrets: key %q is %d bytes, want 32", id, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secrets: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secrets: key %q: %w", id, err)
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// Seal encrypts plaintext under the current key, bound to aad.
func (k *Keyring) Seal(plaintext, aad []byte) (string, error) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: nonce: %w", err)
	}
	out := aead.Seal(nonce, nonce, plaintext, aad)
	return k.current + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value produced by Seal with the same aad.
func (k *Keyring) Open(sealed string, aad []byte) ([]byte, error) {
	id, body, ok := strings.Cut(sealed, ":")
	if !ok {
		return nil, ErrOpen
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, &UnknownKeyError{ID: id}
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// CurrentKeyID names the key new values are sealed with.
func (k *Keyring) CurrentKeyID() string { return k.current }

// UnknownKeyError is returned by Open for a value sealed with a key the
// keyring does not hold: the operator removed a key that values still use,
// or runs with another deployment's keys. The id is not secret; naming it
// says which key to put back. It matches ErrOpen with errors.Is.
type UnknownKeyError struct{ ID string }

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("secrets: value sealed with key %q, which is not configured (add it to DIRSYNC_SECRET_KEYS)", e.ID)
}

// Unwrap makes errors.Is(err, ErrOpen) hold.
func (e *UnknownKeyError) Unwrap() error { return ErrOpen }

// KeyID names the key a sealed value was sealed with ("" if malformed).
func KeyID(sealed string) string {
	id, _, ok := strings.Cut(sealed, ":")
	if !ok {
		return ""
	}
	return id
}

// Reseal opens sealed and seals it again under the current key. A value
// already under the current key is returned unchanged (changed false), so
// rotation is idempotent.
func (k *Keyring) Reseal(sealed string, aad []byte) (out string, changed bool, err error) {
	if KeyID(sealed) == k.current {
		if _, err := k.Open(sealed, aad); err != nil {
			return "", false, err
		}
		return sealed, false, nil
	}
	plain, err := k.Open(sealed, aad)
	if err != nil {
		return "", false, err
	}
	out, err = k.Seal(plain, aad)
	clear(plain)
	if err != nil {
		return "", false, err
	}
	return out, true, nil
}

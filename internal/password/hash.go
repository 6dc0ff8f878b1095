// Package password hashes and checks passwords (U1, W2): argon2id in the
// self-describing PHC string format, so the parameters can be raised later and
// old hashes re-hashed at the next login, and the local password policy that
// mirrors Microsoft Entra's, so a password is refused here before anything is
// stored or pushed. Pure logic apart from the CPU and memory a hash costs.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sync/semaphore"
)

// Params are the argon2id cost parameters (RFC 9106).
type Params struct {
	// MemoryKiB is the memory one hash uses, in KiB.
	MemoryKiB uint32
	// Iterations is the number of passes over the memory.
	Iterations uint32
	// Parallelism is the number of lanes (threads) of one hash.
	Parallelism uint8
}

// DefaultParams are one of OWASP's equivalent argon2id settings (9 MiB,
// 4 passes, one lane), chosen over the 19 MiB × 2 and 16 MiB × 2 settings
// because a smaller working set queues better on few cores: with hashes run
// one per CPU in arrival order it keeps the login p99 at 8 concurrent logins
// on 2 cores far below 250 ms (docs/portal.md has the figures).
var DefaultParams = Params{MemoryKiB: 9 * 1024, Iterations: 4, Parallelism: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Validate refuses parameters too weak to be a password hash or too large to
// serve logins.
func (p Params) Validate() error {
	var errs []error
	// 7 MiB is the smallest memory OWASP lists (with 5 passes).
	if p.MemoryKiB < 7*1024 || p.MemoryKiB > 1024*1024 {
		errs = append(errs, fmt.Errorf("password: memory %d KiB outside 7 MiB..1 GiB", p.MemoryKiB))
	}
	if p.Iterations < 1 || p.Iterations > 20 {
		errs = append(errs, fmt.Errorf("password: iterations %d outside 1..20", p.Iterations))
	}
	if p.Parallelism < 1 || p.Parallelism > 16 {
		errs = append(errs, fmt.Errorf("password: parallelism %d outside 1..16", p.Parallelism))
	}
	return errors.Join(errs...)
}

// Hasher hashes and verifies passwords with one set of parameters. It runs
// at most as many hash lanes at once as it has slots (default: one per CPU),
// admitting waiting hashes in arrival order. A burst of logins then finishes
// one after another at full speed instead of all sharing the cores and
// finishing late together, and hashing memory stays bounded at
// slots × MemoryKiB whatever the burst.
type Hasher struct {
	params Params
	slots  *semaphore.Weighted
	size   int64
	dummy  string
}

// NewHasher returns a Hasher; maxConcurrent ≤ 0 means one lane per CPU.
func NewHasher(p Params, maxConcurrent int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, slots: semaphore.NewWeighted(int64(maxConcurrent)), size: int64(maxConcurrent)}
	d, err := h.Hash(context.Background(), "dummy password for unknown accounts")
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

// Params returns the hasher's parameters.
func (h *Hasher) Params() Params { return h.params }

// lanes is what one hash with p takes from the slots: its lanes run as
// threads, but never more than all slots (it would wait forever).
func (h *Hasher) lanes(p Params) int64 { return min(int64(p.Parallelism), h.size) }

func (h *Hasher) acquire(ctx context.Context, p Params) error {
	return h.slots.Acquire(ctx, h.lanes(p))
}

func (h *Hasher) release(p Params) { h.slots.Release(h.lanes(p)) }

// Hash returns the PHC string of pw with a fresh random salt:
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<hash>.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	if err := h.acquire(ctx, h.params); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, h.params.Iterations, h.params.MemoryKiB, h.params.Parallelism, keyLen)
	h.release(h.params)
	return format(h.params, salt, key), nil
}

func format(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ErrMalformed is returned for a stored hash that is not an argon2id PHC string.
var ErrMalformed = errors.New("password: malformed hash")

// parse reads a PHC string written by format (any parameters).
func parse(phc string) (Params, []byte, []byte, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformed
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return Params{}, nil, nil, ErrMalformed
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil {
		return Params{}, nil, nil, ErrMalformed
	}
	// A stored hash may name older parameters, but never absurd ones: the
	// limits keep a tampered row from costing a gigabyte per login.
	if p.Validate() != nil && (p.MemoryKiB == 0 || p.MemoryKiB > 1024*1024 || p.Iterations == 0 || p.Iterations > 20 || p.Parallelism == 0) {
		return Params{}, nil, nil, ErrMalformed
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return Params{}, nil, nil, ErrMalformed
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return Params{}, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}

// Verify reports whether pw matches the PHC string, comparing in constant
// time, and whether the hash should be replaced because it was made with
// parameters other than the hasher's (raised since).
func (h *Hasher) Verify(ctx context.Context, pw, phc string) (ok, rehash bool, err error) {
	p, salt, key, err := parse(phc)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx, p); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(key)))
	h.release(p)
	ok = subtle.ConstantTimeCompare(got, key) == 1
	return ok, ok && p != h.params, nil
}

// VerifyDummy spends the time of one verification and always fails, so an
// unknown account answers as slowly as a known one with a wrong password.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) {
	_, _, _ = h.Verify(ctx, pw+"\x00", h.dummy)
}

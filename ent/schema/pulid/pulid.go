// Package pulid implements prefixed ULIDs: globally unique, time-ordered string
// ids whose first two characters name the entity type, so a Relay node(id:)
// lookup can find the table without a registry round trip.
package pulid

import (
	"crypto/rand"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// ID is a prefixed ULID, e.g. "US01JD8X2M0Q9W7Z6Y5X4V3T2S1R".
type ID string

// PrefixLen is the length of the type prefix of every ID.
const PrefixLen = 2

// Len is the length of a well-formed ID: prefix plus 26 Crockford base32 characters.
const Len = PrefixLen + 26

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var (
	mu     sync.Mutex
	lastMS uint64
	last   [10]byte
)

// New returns a new ID with the given prefix. Within one millisecond the random
// part is incremented (monotonic ULID) so ids created by one process sort in
// creation order, which keeps cursor pagination by id stable and index-friendly.
func New(prefix string) ID {
	if len(prefix) != PrefixLen {
		panic(fmt.Sprintf("pulid: prefix %q must be %d characters", prefix, PrefixLen))
	}
	mu.Lock()
	ms := uint64(time.Now().UnixMilli())
	var entropy [10]byte
	if ms == lastMS {
		entropy = last
		for i := len(entropy) - 1; i >= 0; i-- {
			entropy[i]++
			if entropy[i] != 0 {
				break
			}
		}
	} else if _, err := io.ReadFull(rand.Reader, entropy[:]); err != nil {
		mu.Unlock()
		panic(fmt.Errorf("pulid: reading randomness: %w", err))
	}
	lastMS, last = ms, entropy
	mu.Unlock()

	var raw [16]byte
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(raw[:6], ts[2:])
	copy(raw[6:], entropy[:])
	return ID(prefix + encode(raw))
}

// encode writes 128 bits as 26 Crockford base32 characters (the ULID text form).
func encode(b [16]byte) string {
	out := make([]byte, 26)
	// 130 bits of output for 128 bits of input: the first character carries 3 bits.
	var acc uint64
	var bits uint
	j := 0
	// Prepend two zero bits by starting the accumulator with 2 bits of zero.
	bits = 2
	for _, c := range b {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[j] = crockford[(acc>>bits)&31]
			j++
		}
	}
	return string(out)
}

// Prefix returns the type prefix of id, or "" when id is too short.
func (id ID) Prefix() string {
	if len(id) < PrefixLen {
		return ""
	}
	return string(id[:PrefixLen])
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (id *ID) UnmarshalGQL(v any) error { return id.Scan(v) }

// MarshalGQL implements graphql.Marshaler.
func (id ID) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(id))) }

// Scan implements sql.Scanner.
func (id *ID) Scan(src any) error {
	switch src := src.(type) {
	case string:
		*id = ID(src)
	case []byte:
		*id = ID(src)
	case ID:
		*id = src
	case nil:
		return fmt.Errorf("pulid: expected a value")
	default:
		return fmt.Errorf("pulid: unexpected type %T", src)
	}
	return nil
}

// Value implements driver.Valuer.
func (id ID) Value() (driver.Value, error) { return string(id), nil }

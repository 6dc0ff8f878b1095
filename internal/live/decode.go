package live

import (
	"encoding/json"
	"hash/maphash"
	"sync/atomic"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// Decoding: publishers put the JSON of the committed *ent.Job / *ent.Event in
// Message.Data (ent's JSON tags on both sides, so it round-trips field for
// field). The Hub hands the very same Data slice to every local subscriber,
// so with 1,000 subscribers of one organisation the same bytes would be
// decoded 1,000 times. decodeCache remembers the last decoded value per slot,
// keyed by the identity of the Data slice (its backing array, which the
// entry keeps alive, so the identity cannot be reused while cached). The
// value is then shared by all subscribers and must be treated as read-only,
// which the GraphQL marshalling is.

const cacheSlots = 512

type cacheEntry struct {
	raw json.RawMessage
	v   any
}

type decodeCache struct {
	seed  maphash.Seed
	slots [cacheSlots]atomic.Pointer[cacheEntry]
}

var shared = &decodeCache{seed: maphash.MakeSeed()}

func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

func decode[T any](c *decodeCache, m pubsub.Message) (*T, error) {
	slot := &c.slots[maphash.String(c.seed, m.ID)%cacheSlots]
	if e := slot.Load(); e != nil && sameSlice(e.raw, m.Data) {
		if v, ok := e.v.(*T); ok {
			return v, nil
		}
	}
	v := new(T)
	if err := json.Unmarshal(m.Data, v); err != nil {
		return nil, err
	}
	slot.Store(&cacheEntry{raw: m.Data, v: v})
	return v, nil
}

func decodeJob(m pubsub.Message) (*ent.Job, error)     { return decode[ent.Job](shared, m) }
func decodeEvent(m pubsub.Message) (*ent.Event, error) { return decode[ent.Event](shared, m) }

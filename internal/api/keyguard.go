package api

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/internal/apikeys"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// DefaultKeyRecheck is how often a long-lived connection re-reads its key
// when nothing announced a change: the backstop for a revocation whose
// announcement was lost (Redis unreachable at the moment it was published).
const DefaultKeyRecheck = 5 * time.Minute

// keyGuard ends a websocket or SSE stream once its API key stops working, so
// that revoking a key cuts what is already open instead of only refusing new
// requests. Three things trigger a check: the revocation announcement every
// API process receives through the Hub (internal/apikeys publishes it after
// commit), the key's expiry time, and a periodic re-read; after a Hub
// reconnect (messages may have been lost) the key is re-read at once.
type keyGuard struct {
	client  *ent.Client
	hub     *pubsub.Hub // nil: expiry and re-reads only
	logger  *slog.Logger
	recheck time.Duration
}

// watch calls cut once when v's key is revoked or expires while ctx lasts.
// It starts no goroutine while nothing happens: a timer and a Hub callback.
func (g keyGuard) watch(ctx context.Context, v auth.Viewer, cut func()) {
	var once sync.Once
	stop := func() { once.Do(cut) }
	check := func() {
		ok, err := auth.StillUsable(ctx, g.client, v.KeyID)
		if err != nil {
			if ctx.Err() == nil {
				g.logger.WarnContext(ctx, "re-checking API key of an open connection", "key", v.KeyID, "err", err)
			}
			return
		}
		if !ok {
			stop()
		}
	}
	t := &recheckTimer{every: g.recheck, expires: v.Expires, check: check}
	t.start()
	context.AfterFunc(ctx, t.stop)
	if g.hub == nil {
		return
	}
	keyID := string(v.KeyID)
	_, err := g.hub.SubscribeFunc(ctx, string(v.OrgID),
		func(m pubsub.Message) bool { return m.Kind == apikeys.KindRevoked && m.ID == keyID },
		func(m *pubsub.Message) bool {
			if m.Kind == pubsub.KindResync {
				go check()
			} else {
				go stop()
			}
			return true
		},
		func(error) {}, pubsub.Internal())
	if err != nil && ctx.Err() == nil {
		g.logger.WarnContext(ctx, "watching API key revocations", "err", err)
	}
}

// recheckTimer runs check every `every`, and just after expires if sooner.
type recheckTimer struct {
	every   time.Duration
	expires time.Time
	check   func()
	mu      sync.Mutex
	t       *time.Timer
	done    bool
}

func (r *recheckTimer) next() time.Duration {
	d := r.every
	if !r.expires.IsZero() {
		if until := time.Until(r.expires) + 10*time.Millisecond; until < d {
			d = max(until, 0)
		}
	}
	return d
}

func (r *recheckTimer) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t = time.AfterFunc(r.next(), r.fire)
}

func (r *recheckTimer) fire() {
	r.check()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.t.Reset(r.next())
	}
}

func (r *recheckTimer) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	r.t.Stop()
}

// cutFlag marks a websocket whose key was cut, so its close frame carries
// 4403 Forbidden instead of gqlgen's normal closure.
type cutFlag struct{}

func cutFlagFrom(ctx context.Context) *atomic.Bool {
	f, _ := ctx.Value(cutFlag{}).(*atomic.Bool)
	return f
}

// slowFlag marks a websocket closed because one of its subscriptions fell
// too far behind (live.OnSlowConsumer), so its close frame carries 4503.
type slowFlag struct{}

func slowFlagFrom(ctx context.Context) *atomic.Bool {
	f, _ := ctx.Value(slowFlag{}).(*atomic.Bool)
	return f
}

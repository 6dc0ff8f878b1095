package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults applied by NewHub to zero HubConfig fields.
const (
	DefaultBuffer       = 256
	DefaultMaxPerKey    = 100
	DefaultPingInterval = 15 * time.Second
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
)

// HubConfig configures a Hub. Zero fields take the defaults above.
type HubConfig struct {
	// Client is the Redis the Publishers write to. Required.
	Client redis.UniversalClient
	// Prefix is prepended to channel names; see Channel.
	Prefix string
	// Buffer is the default per-subscription queue length; a subscriber
	// that falls this far behind is disconnected with ErrSlowConsumer.
	Buffer int
	// MaxPerKey caps live subscriptions per WithKey value; -1 means no cap.
	// Subscriptions without a key are not counted.
	MaxPerKey int
	// PingInterval is how long the Redis connection may stay silent before
	// the Hub pings it; after twice that without any reply the connection is
	// considered dead (a half-open TCP connection never errors by itself).
	PingInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connection drops and undecodable messages.
	Logger *slog.Logger
}

func (c *HubConfig) setDefaults() {
	if c.Buffer == 0 {
		c.Buffer = DefaultBuffer
	}
	if c.MaxPerKey == 0 {
		c.MaxPerKey = DefaultMaxPerKey
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of a configuration after defaults.
func (c HubConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("pubsub: HubConfig.Client is required"))
	}
	if c.Buffer < 1 {
		errs = append(errs, fmt.Errorf("pubsub: HubConfig.Buffer %d < 1", c.Buffer))
	}
	if c.MaxPerKey < -1 {
		errs = append(errs, fmt.Errorf("pubsub: HubConfig.MaxPerKey %d < -1", c.MaxPerKey))
	}
	if c.PingInterval < 0 || c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("pubsub: HubConfig durations must be positive and MinBackoff <= MaxBackoff"))
	}
	return errors.Join(errs...)
}

// Hub holds one Redis pattern subscription per process and demultiplexes its
// messages to local Subscriptions by organisation.
//
// One PSUBSCRIBE of "<prefix>org:*" was chosen over a SUBSCRIBE per watched
// organisation: it never changes, so there is no subscribe/unsubscribe race
// with clients coming and going and a reconnect restores everything with one
// command. The cost is that every process receives every organisation's
// messages; their volume is bounded by the workers' Graph write quota, and a
// message for an organisation without local subscribers is dropped before it
// is even decoded.
type Hub struct {
	cfg      HubConfig
	pattern  string
	chPrefix string

	mu     sync.RWMutex
	closed bool
	// orgs maps an organisation to its subscriptions. Each slice is replaced,
	// never modified, so dispatch iterates a snapshot without holding mu and
	// a subscription closed during delivery can remove itself.
	orgs     map[string][]*Subscription
	perKey   map[string]int
	total    int
	internal int // of total, those made with Internal

	running   atomic.Bool
	connected atomic.Bool
	stats     struct {
		connects, delivered, slow, invalid atomic.Int64
	}
}

// NewHub returns a Hub that delivers nothing until Run is called.
// Subscriptions made before Run receive a KindResync once it is connected.
func NewHub(cfg HubConfig) *Hub {
	cfg.setDefaults()
	return &Hub{
		cfg:      cfg,
		pattern:  Channel(cfg.Prefix, "*"),
		chPrefix: Channel(cfg.Prefix, ""),
		orgs:     make(map[string][]*Subscription),
		perKey:   make(map[string]int),
	}
}

// Stats is a snapshot of a Hub's counters, for metrics and tests.
type Stats struct {
	Subscriptions int   // live client subscriptions
	Internal      int   // live subscriptions the server made for itself (pubsub.Internal)
	Orgs          int   // organisations with at least one subscription
	Connects      int64 // successful (re)subscriptions to Redis
	Delivered     int64 // messages queued to subscribers (resyncs included)
	SlowConsumers int64 // subscriptions closed with ErrSlowConsumer
	Invalid       int64 // undecodable or mis-addressed messages dropped
}

// Stats returns the Hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	subs, internal, orgs := h.total, h.internal, len(h.orgs)
	h.mu.RUnlock()
	return Stats{
		Subscriptions: subs - internal,
		Internal:      internal,
		Orgs:          orgs,
		Connects:      h.stats.connects.Load(),
		Delivered:     h.stats.delivered.Load(),
		SlowConsumers: h.stats.slow.Load(),
		Invalid:       h.stats.invalid.Load(),
	}
}

// Connected reports whether the Redis subscription is established, i.e.
// whether messages published now reach local subscribers. Suits a readiness
// check.
func (h *Hub) Connected() bool { return h.connected.Load() }

// Run subscribes to Redis and delivers messages until ctx ends, reconnecting
// with backoff whenever the connection drops. After every (re)subscription
// each existing subscriber gets a KindResync message, since anything published
// meanwhile was lost. When Run returns, every subscription is closed with
// ErrHubClosed and the Hub refuses new ones. Run returns nil when ctx ends,
// and may be called only once.
func (h *Hub) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("pubsub: Hub.Run called twice")
	}
	defer h.shutdown()
	if err := h.cfg.Validate(); err != nil {
		return err
	}
	backoff := h.cfg.MinBackoff
	for {
		connected, err := h.session(ctx)
		h.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = h.cfg.MinBackoff
		}
		h.cfg.Logger.Warn("pubsub: redis subscription lost, reconnecting", "err", err, "backoff", backoff)
		// Jitter keeps API replicas from reconnecting in lockstep after a
		// Redis restart.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, h.cfg.MaxBackoff)
	}
}

// session runs one Redis connection's life: subscribe, then receive until it
// fails. connected reports whether the subscription was confirmed.
func (h *Hub) session(ctx context.Context) (connected bool, err error) {
	ps := h.cfg.Client.PSubscribe(ctx) // no pattern yet: no I/O
	defer ps.Close()
	// Receive ignores cancellation (it only honours deadlines); closing the
	// connection is what unblocks it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	if err := ps.PSubscribe(ctx, h.pattern); err != nil {
		return false, fmt.Errorf("psubscribe %s: %w", h.pattern, err)
	}

	var lastRead atomic.Int64
	lastRead.Store(time.Now().UnixNano())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { h.watchdog(ctx, ps, &lastRead, done) })
	defer wg.Wait()
	defer close(done)

	for {
		v, err := ps.Receive(ctx)
		if err != nil {
			return connected, err
		}
		lastRead.Store(time.Now().UnixNano())
		switch m := v.(type) {
		case *redis.Subscription:
			if m.Kind == "psubscribe" && m.Channel == h.pattern {
				connected = true
				h.connected.Store(true)
				h.stats.connects.Add(1)
				h.resyncAll()
			}
		case *redis.Message:
			h.dispatch(m)
		}
	}
}

// watchdog pings a quiet connection and closes it when even pings go
// unanswered, which turns a silently dead connection into a Receive error.
func (h *Hub) watchdog(ctx context.Context, ps *redis.PubSub, lastRead *atomic.Int64, done <-chan struct{}) {
	interval := h.cfg.PingInterval
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		quiet := time.Since(time.Unix(0, lastRead.Load()))
		switch {
		case quiet >= 2*interval:
			h.cfg.Logger.Warn("pubsub: redis connection silent, closing it", "quiet", quiet)
			_ = ps.Close()
			return
		case quiet >= interval:
			_ = ps.Ping(ctx)
		}
	}
}

func (h *Hub) dispatch(rm *redis.Message) {
	org, ok := strings.CutPrefix(rm.Channel, h.chPrefix)
	if !ok || org == "" {
		h.stats.invalid.Add(1)
		return
	}
	h.mu.RLock()
	subs := h.orgs[org]
	h.mu.RUnlock()
	if len(subs) == 0 {
		return
	}
	var m Message
	if err := json.Unmarshal([]byte(rm.Payload), &m); err != nil {
		h.stats.invalid.Add(1)
		h.cfg.Logger.Warn("pubsub: undecodable message dropped", "channel", rm.Channel, "err", err)
		return
	}
	// The channel decides who receives a message; a body naming another
	// organisation is a publisher bug that must not leak across tenants.
	if m.OrgID != org || m.Kind == KindResync {
		h.stats.invalid.Add(1)
		h.cfg.Logger.Warn("pubsub: mis-addressed message dropped", "channel", rm.Channel, "org", m.OrgID, "kind", m.Kind)
		return
	}
	// One decoded value, shared: SubscribeFunc consumers queue a pointer to
	// it instead of a 104-byte copy per buffer slot.
	for _, s := range subs {
		s.offer(&m)
	}
}

func (h *Hub) resyncAll() {
	h.mu.RLock()
	var all []*Subscription
	for _, subs := range h.orgs {
		all = append(all, subs...)
	}
	h.mu.RUnlock()
	now := time.Now()
	for _, s := range all {
		s.offer(&Message{Kind: KindResync, OrgID: s.org, At: now})
	}
}

// add registers s unless the Hub is closed or s's key is at its cap.
func (h *Hub) add(s *Subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHubClosed
	}
	if s.key != "" {
		if h.cfg.MaxPerKey >= 0 && h.perKey[s.key] >= h.cfg.MaxPerKey {
			return ErrTooManySubscriptions
		}
		h.perKey[s.key]++
	}
	old := h.orgs[s.org]
	subs := make([]*Subscription, len(old), len(old)+1)
	copy(subs, old)
	h.orgs[s.org] = append(subs, s)
	h.total++
	if s.internal {
		h.internal++
	}
	return nil
}

// remove unregisters s; it is called once per added subscription.
func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.orgs[s.org]
	i := slices.Index(old, s)
	if i < 0 {
		return // already dropped by shutdown
	}
	if len(old) == 1 {
		delete(h.orgs, s.org)
	} else {
		h.orgs[s.org] = slices.Delete(slices.Clone(old), i, i+1)
	}
	h.total--
	if s.internal {
		h.internal--
	}
	if s.key != "" {
		if h.perKey[s.key]--; h.perKey[s.key] <= 0 {
			delete(h.perKey, s.key)
		}
	}
}

func (h *Hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	orgs := h.orgs
	h.orgs = make(map[string][]*Subscription)
	h.perKey = make(map[string]int)
	h.total = 0
	h.internal = 0
	h.mu.Unlock()
	for _, subs := range orgs {
		for _, s := range subs {
			s.closeWith(ErrHubClosed)
		}
	}
}

package pubsub

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// SubscribeOption adjusts one subscription.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	key      string
	buffer   int
	internal bool
}

// Internal marks a subscription the server makes for itself (e.g. watching
// for an API key's revocation), not for a client: Stats counts it apart, in
// Internal, so Subscriptions stays the number of client subscriptions.
func Internal() SubscribeOption { return func(o *subscribeOptions) { o.internal = true } }

// WithKey counts the subscription against HubConfig.MaxPerKey for key,
// typically the API key (or connection) it serves.
func WithKey(key string) SubscribeOption { return func(o *subscribeOptions) { o.key = key } }

// WithBuffer overrides HubConfig.Buffer for this subscription. It has no
// effect on SubscribeFunc, whose consumer owns its queue.
func WithBuffer(n int) SubscribeOption { return func(o *subscribeOptions) { o.buffer = n } }

// Subscription receives one organisation's messages from a Hub.
//
// No goroutine serves it: the Hub's single receive loop queues into its
// buffer without waiting, and when the buffer is full the subscription is
// closed with ErrSlowConsumer rather than holding up everyone else. The
// consumer then re-subscribes and re-reads state, as it would after a
// KindResync.
type Subscription struct {
	hub      *Hub
	org      string
	key      string
	internal bool // counted in Stats.Internal, not Subscriptions
	filter   func(Message) bool
	ch       chan Message // nil for SubscribeFunc
	// deliver and end replace ch for SubscribeFunc.
	deliver func(*Message) bool
	end     func(error)

	mu     sync.Mutex
	closed bool
	err    error
	stop   func() bool // releases the context watch
}

// Subscribe returns a subscription to orgID's messages for which filter
// (nil = all) returns true; KindResync messages bypass the filter. The
// filter runs on the Hub's receive loop, so it must be quick and must not
// block. The subscription ends when ctx ends, on Close, on overflow and when
// the Hub stops; Err then says why.
func (h *Hub) Subscribe(ctx context.Context, orgID string, filter func(Message) bool, opts ...SubscribeOption) (*Subscription, error) {
	o := subscribeOptions{buffer: h.cfg.Buffer}
	for _, opt := range opts {
		opt(&o)
	}
	if o.buffer < 1 {
		return nil, errors.New("pubsub: subscription buffer must be at least 1")
	}
	return h.subscribe(ctx, orgID, &Subscription{filter: filter, key: o.key, ch: make(chan Message, o.buffer)})
}

// SubscribeFunc is Subscribe for a consumer that keeps its own queue, so
// that an idle subscription needs neither a buffer of Message values nor a
// goroutine waiting on C. The Hub's receive loop calls deliver for every
// message that passes filter (and for every KindResync), one call at a time
// and in order. deliver must not block and must not call back into the
// Subscription: it queues m (shared by all subscribers and read-only) and
// reports false when its queue is full, which ends the subscription with
// ErrSlowConsumer exactly as a full buffer does for Subscribe (after the
// same single yield). end is called once, when the subscription ends, with
// the reason Err reports; no deliver call starts after it. C is nil and
// WithBuffer has no effect.
func (h *Hub) SubscribeFunc(ctx context.Context, orgID string, filter func(Message) bool, deliver func(*Message) bool, end func(error), opts ...SubscribeOption) (*Subscription, error) {
	if deliver == nil || end == nil {
		return nil, errors.New("pubsub: SubscribeFunc needs deliver and end")
	}
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	return h.subscribe(ctx, orgID, &Subscription{filter: filter, key: o.key, deliver: deliver, end: end, internal: o.internal})
}

func (h *Hub) subscribe(ctx context.Context, orgID string, s *Subscription) (*Subscription, error) {
	if orgID == "" {
		return nil, errors.New("pubsub: subscribe without organisation")
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	s.hub, s.org = h, orgID
	if err := h.add(s); err != nil {
		return nil, err
	}
	// AfterFunc starts a goroutine only when ctx ends, so an idle
	// subscription costs none.
	stop := context.AfterFunc(ctx, func() { s.closeWith(context.Cause(ctx)) })
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		stop()
	} else {
		s.stop = stop
		s.mu.Unlock()
	}
	return s, nil
}

// C delivers the messages; it is closed when the subscription ends. It is
// nil for a SubscribeFunc subscription.
func (s *Subscription) C() <-chan Message { return s.ch }

// OrgID is the organisation subscribed to.
func (s *Subscription) OrgID() string { return s.org }

// Close ends the subscription; messages already queued stay readable from C.
// It is safe to call more than once and concurrently.
func (s *Subscription) Close() { s.closeWith(nil) }

// Err says why C was closed: nil after Close, the context's error (or
// cause), ErrSlowConsumer or ErrHubClosed. It is nil while C is open.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// offer queues m without waiting on the consumer; a buffer that stays full
// ends the subscription. m is shared by all subscribers of the message.
func (s *Subscription) offer(m *Message) {
	if m.Kind != KindResync && s.filter != nil && !s.filter(*m) {
		return
	}
	for attempt := range 2 {
		if attempt > 0 {
			// The receive loop can drain a burst Redis already sent without
			// ever blocking, and so without letting a runnable consumer
			// catch up (always, with GOMAXPROCS=1). One yield separates a
			// consumer that is merely behind the loop from one that stalled.
			runtime.Gosched()
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		var ok bool
		if s.deliver != nil {
			ok = s.deliver(m)
		} else {
			select {
			case s.ch <- *m:
				ok = true
			default:
			}
		}
		s.mu.Unlock()
		if ok {
			s.hub.stats.delivered.Add(1)
			return
		}
	}
	if s.closeWith(ErrSlowConsumer) {
		s.hub.stats.slow.Add(1)
	}
}

// closeWith closes C (or calls end) with reason unless already closed,
// reporting whether it did. The mutex makes closing and offer's send
// mutually exclusive, so C is never sent on after it is closed and deliver
// is never called after end.
func (s *Subscription) closeWith(reason error) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	s.err = reason
	if s.ch != nil {
		close(s.ch)
	}
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.hub.remove(s)
	if s.end != nil {
		s.end(reason)
	}
	return true
}

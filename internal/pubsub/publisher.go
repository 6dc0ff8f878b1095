package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPublishTimeout bounds a Publish whose context has no earlier
// deadline. Publishing follows a committed PostgreSQL change that is already
// durable, so a Redis hiccup must cost the caller little: better a lost live
// update (subscribers re-read state) than a stalled worker.
const DefaultPublishTimeout = time.Second

// Publisher sends messages to organisation channels. It is safe for
// concurrent use and holds no connection of its own.
//
// Give it a client with ContextTimeoutEnabled: go-redis otherwise ignores
// context deadlines and a hung Redis holds Publish for the client's
// DialTimeout/ReadTimeout (5 s/3 s by default) instead.
type Publisher struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewPublisher returns a Publisher on rdb; prefix must match the Hubs'.
func NewPublisher(rdb redis.UniversalClient, prefix string) *Publisher {
	return &Publisher{rdb: rdb, prefix: prefix}
}

// Publish sends m to its organisation's channel, setting At to now when it
// is zero. It returns when Redis has accepted the message or after ctx's
// deadline (at most DefaultPublishTimeout). Messages from one goroutine reach
// each subscriber in the order they were published.
func (p *Publisher) Publish(ctx context.Context, m Message) error {
	switch {
	case m.Kind == "":
		return errors.New("pubsub: message without kind")
	case m.Kind == KindResync:
		return errors.New("pubsub: resync messages come from the hub, not publishers")
	case m.OrgID == "":
		return errors.New("pubsub: message without organisation")
	}
	if m.At.IsZero() {
		m.At = time.Now()
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("pubsub: encode %s %s: %w", m.Kind, m.ID, err)
	}
	// go-redis turns a deadline (not a bare cancellation) into socket
	// deadlines, so a deadline is what bounds the call.
	ctx, cancel := context.WithTimeout(ctx, DefaultPublishTimeout)
	defer cancel()
	ch := Channel(p.prefix, m.OrgID)
	if err := p.rdb.Publish(ctx, ch, payload).Err(); err != nil {
		return fmt.Errorf("pubsub: publish to %s: %w", ch, err)
	}
	return nil
}

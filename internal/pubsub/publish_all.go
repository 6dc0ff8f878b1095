package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// PublishAll is Publish for many messages in one Redis round trip (a
// pipeline), in order; for workers that commit many changes at once (an
// import page). It gives the pipeline DefaultPublishTimeout per 1,000 messages.
func (p *Publisher) PublishAll(ctx context.Context, ms []Message) error {
	if len(ms) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultPublishTimeout*time.Duration(1+len(ms)/1000))
	defer cancel()
	pipe := p.rdb.Pipeline()
	now := time.Now()
	for _, m := range ms {
		if m.Kind == "" || m.Kind == KindResync || m.OrgID == "" {
			return fmt.Errorf("pubsub: message %s %s cannot be published", m.Kind, m.ID)
		}
		if m.At.IsZero() {
			m.At = now
		}
		payload, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("pubsub: encode %s %s: %w", m.Kind, m.ID, err)
		}
		pipe.Publish(ctx, Channel(p.prefix, m.OrgID), payload)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("pubsub: publish %d messages: %w", len(ms), err)
	}
	return nil
}

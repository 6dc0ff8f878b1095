// Package pubsub carries live job and event updates from the workers that
// cause them to the GraphQL subscriptions of every API process, over Redis
// pub/sub.
//
// Delivery is at most once and live only: a message published while nobody
// listens, or while a process is reconnecting to Redis, is gone. Durable state
// lives in PostgreSQL; a consumer reads it when it subscribes and again on a
// KindResync message, and treats messages only as "this changed, here is the
// new value". See docs/pubsub.md.
//
// A process runs one Hub, which holds a single pattern subscription for all
// organisations and hands each message to the local Subscriptions of its
// organisation. Publishers need only a Redis client.
package pubsub

import (
	"encoding/json"
	"errors"
	"time"
)

// Message kinds. Publishers may add kinds; KindResync is reserved for the Hub.
const (
	KindJob   = "job"
	KindEvent = "event"
	// KindResync tells a subscriber that messages may have been lost (the
	// Hub's Redis subscription dropped and is back). It bypasses filters and
	// carries only OrgID and At: the receiver must re-read current state.
	KindResync = "resync"
)

// Message is what travels on an organisation's channel, JSON-encoded.
//
// Data is the JSON of the GraphQL-visible object as it is after the change,
// so a subscriber can forward it without a database read. A Hub hands the
// same Data slice to every subscriber: treat it as read-only.
type Message struct {
	Kind  string `json:"kind"`
	OrgID string `json:"orgId"`
	// ID is the job or event id.
	ID string `json:"id,omitempty"`
	// Seq is an optional ordering hint (e.g. a job's progress counter), for
	// consumers that must discard a value older than one already shown;
	// the pub/sub path itself never reorders one publisher's messages.
	Seq  int64           `json:"seq,omitempty"`
	At   time.Time       `json:"at"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Channel is the Redis channel of an organisation. Every process must use
// the same prefix, which is also how tests sharing one Redis stay apart
// (pub/sub channels are not scoped by logical database).
func Channel(prefix, orgID string) string { return prefix + "org:" + orgID }

var (
	// ErrSlowConsumer closes a subscription whose buffer was full when a
	// message arrived: the Hub never waits for a subscriber.
	ErrSlowConsumer = errors.New("pubsub: subscriber too slow, buffer full")
	// ErrTooManySubscriptions refuses a subscription beyond the per-key cap.
	ErrTooManySubscriptions = errors.New("pubsub: too many subscriptions for this key")
	// ErrHubClosed closes every subscription when the Hub's Run returns,
	// and refuses new ones afterwards.
	ErrHubClosed = errors.New("pubsub: hub closed")
)

package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// The consumer pattern issue 5's subscription resolvers follow: subscribe
// first, then read current state, so no change falls between the two; on a
// resync read state again; treat every message as the newest value.
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()

	// API process: one Hub, started with the server.
	hub := pubsub.NewHub(pubsub.HubConfig{Client: rdb, Prefix: "dirsync:"})
	go func() { _ = hub.Run(ctx) }()

	// Per GraphQL subscription: jobUpdated(id: "job_9") for an API key.
	sub, err := hub.Subscribe(ctx, "org_1",
		func(m pubsub.Message) bool { return m.Kind == pubsub.KindJob && m.ID == "job_9" },
		pubsub.WithKey("apikey_3"))
	if err != nil {
		log.Fatal(err) // ErrTooManySubscriptions → tell the client
	}
	defer sub.Close()
	send := func(job json.RawMessage) { /* to the websocket */ }
	readJob := func() json.RawMessage { return nil /* from PostgreSQL */ }

	send(readJob())
	for m := range sub.C() {
		if m.Kind == pubsub.KindResync {
			send(readJob())
			continue
		}
		send(m.Data)
	}
	if errors.Is(sub.Err(), pubsub.ErrSlowConsumer) {
		// The client fell behind: end its subscription with an error, or
		// subscribe again and re-read state.
	}

	// Worker process: publish after the state change has committed.
	pub := pubsub.NewPublisher(rdb, "dirsync:")
	_ = pub.Publish(ctx, pubsub.Message{Kind: pubsub.KindJob, OrgID: "org_1", ID: "job_9",
		Seq: 1200, Data: json.RawMessage(`{"id":"job_9","status":"RUNNING","done":1200,"total":2000}`)})
}

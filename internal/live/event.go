package live

import (
	"context"
	"slices"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/event"
	"github.com/dirsync/dirsync/ent/predicate"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/pubsub"
)

func eventMatches(f *model.EventsSubscriptionFilter, e *ent.Event) bool {
	if f == nil {
		return true
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
		return false
	}
	if f.UserID != nil && (e.UserID == nil || *e.UserID != *f.UserID) {
		return false
	}
	if f.IntegrationID != nil && (e.IntegrationID == nil || *e.IntegrationID != *f.IntegrationID) {
		return false
	}
	return true
}

func eventPredicates(f *model.EventsSubscriptionFilter) []predicate.Event {
	if f == nil {
		return nil
	}
	var ps []predicate.Event
	if len(f.Types) > 0 {
		ps = append(ps, event.TypeIn(f.Types...))
	}
	if f.UserID != nil {
		ps = append(ps, event.UserID(*f.UserID))
	}
	if f.IntegrationID != nil {
		ps = append(ps, event.IntegrationID(*f.IntegrationID))
	}
	return ps
}

// recent remembers the last n ids it was given, so a re-read after a
// reconnect does not repeat events already sent, in bounded memory.
// Nothing is allocated up front: an idle subscription must stay cheap.
type recent struct {
	max  int
	ring []pulid.ID
	set  map[pulid.ID]struct{}
	next int
}

func newRecent(n int) *recent { return &recent{max: n} }

// add records id and reports whether it was new.
func (r *recent) add(id pulid.ID) bool {
	if _, ok := r.set[id]; ok {
		return false
	}
	if r.set == nil {
		r.set = make(map[pulid.ID]struct{})
	}
	if len(r.ring) < r.max {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[id] = struct{}{}
	return true
}

// recentEvents bounds the dedupe memory of one events stream.
const recentEvents = 256

// Events streams new events of the viewer's organisation that match filter,
// in the order they were published (so in order per user: one worker
// records and publishes one user's events in sequence). After a Redis
// reconnect it re-reads events recorded since shortly before the last one it
// received and sends those it has not sent yet.
func (s Source) Events(ctx context.Context, f *model.EventsSubscriptionFilter) (<-chan *ent.Event, error) {
	v, p, err := s.subscribe(ctx, kindIs(pubsub.KindEvent))
	if err != nil {
		return nil, err
	}
	out := make(chan *ent.Event)
	sent := newRecent(recentEvents)
	since := time.Now()
	run(ctx, p, out, func(m *pubsub.Message) bool {
		if m.Kind == pubsub.KindResync {
			es, err := s.Client.Event.Query().
				Where(append(eventPredicates(f), event.CreatedAtGTE(since.Add(-resyncWindow)))...).
				Order(ent.Asc(event.FieldCreatedAt), ent.Asc(event.FieldID)).Limit(resyncLimit).All(ctx)
			if err != nil {
				s.fail(ctx, "re-reading events", err)
				return false
			}
			for _, e := range es {
				if sent.add(e.ID) && !send(ctx, out, e) {
					return false
				}
			}
			return true
		}
		e, err := decodeEvent(*m)
		if err != nil || e.OrganizationID != v.OrgID {
			s.logger(ctx).Warn("live: undecodable or foreign event message dropped", "id", m.ID, "err", err)
			return true
		}
		if m.At.After(since) {
			since = m.At
		}
		if !eventMatches(f, e) || !sent.add(e.ID) {
			return true
		}
		return send(ctx, out, e)
	})
	return out, nil
}

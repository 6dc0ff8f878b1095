package live

import (
	"context"
	"slices"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// Terminal reports whether a job has ended: jobUpdated completes after it.
func Terminal(j *ent.Job) bool {
	switch j.Status {
	case job.StatusSUCCEEDED, job.StatusFAILED, job.StatusPARTIAL:
		return true
	}
	return false
}

func statusRank(s job.Status) int {
	switch s {
	case job.StatusQUEUED:
		return 0
	case job.StatusRUNNING, job.StatusAWAITING_APPROVAL:
		// Approval moves a job back to RUNNING: neither is later than the other.
		return 1
	}
	return 2
}

// Newer reports whether next is a later version of the job than cur.
// Concurrent workers publish the same job's progress in any order, so a
// message may carry an older state than one already shown. Status only moves
// forward and the counters only grow, which orders versions without trusting
// clocks; updated_at breaks the remaining ties. An equal version is a
// duplicate and not newer.
func Newer(cur, next *ent.Job) bool {
	if cur == nil {
		return true
	}
	if a, b := statusRank(cur.Status), statusRank(next.Status); a != b {
		return b > a
	}
	if cur.Done != next.Done {
		return next.Done > cur.Done
	}
	if cur.Failed != next.Failed {
		return next.Failed > cur.Failed
	}
	if cur.Total != next.Total {
		return true // a job grew or shrank: show it
	}
	if cur.Status != next.Status {
		return true // two terminal states: the later message decides
	}
	return next.UpdatedAt.After(cur.UpdatedAt)
}

// selectsEdges reports whether the subscription's selection asks for a Job
// field that needs the database (items). Decoded messages carry no ent
// client, so those subscribers get each version re-read by id; the common
// progress fragment (status, done, total…) costs no read at all.
func selectsEdges(ctx context.Context) bool {
	if graphql.GetFieldContext(ctx) == nil || !graphql.HasOperationContext(ctx) {
		return false
	}
	for _, f := range graphql.CollectFieldsCtx(ctx, []string{"Job", "Node"}) {
		if f.Name == "items" {
			return true
		}
	}
	return false
}

// JobUpdated streams one job: its current state first, then every newer
// version, until it reaches a terminal status; then the stream completes. A
// job that has already ended gives its final state and completes at once. An
// id of another organisation is NOT_FOUND, as in queries.
func (s Source) JobUpdated(ctx context.Context, id pulid.ID) (<-chan *ent.Job, error) {
	want := string(id)
	v, p, err := s.subscribe(ctx, func(m pubsub.Message) bool { return m.Kind == pubsub.KindJob && m.ID == want })
	if err != nil {
		return nil, err
	}
	// Read after subscribing: a change committed in between arrives as a
	// message and is then either newer (shown) or not (skipped).
	cur, err := s.Client.Job.Get(ctx, id)
	if err != nil {
		p.sub.Close()
		if ent.IsNotFound(err) {
			return nil, gqlerr.NotFoundf("id", "job %s not found", id)
		}
		return nil, err
	}
	reread := selectsEdges(ctx)
	// Room for the current state, so it is queued without a goroutine.
	out := make(chan *ent.Job, 1)
	out <- cur
	if Terminal(cur) {
		p.sub.Close()
		close(out)
		return out, nil
	}
	run(ctx, p, out, func(m *pubsub.Message) bool {
		var next *ent.Job
		var err error
		if m.Kind == pubsub.KindResync || reread {
			if next, err = s.Client.Job.Get(ctx, id); err != nil {
				s.fail(ctx, "re-reading job", err)
				return false
			}
		} else if next, err = decodeJob(*m); err != nil || next.ID != id || next.OrganizationID != v.OrgID {
			s.logger(ctx).Warn("live: undecodable or foreign job message dropped", "id", m.ID, "err", err)
			return true
		}
		if !Newer(cur, next) {
			return true
		}
		cur = next
		return send(ctx, out, cur) && !Terminal(cur)
	})
	return out, nil
}

// fail ends a stream after a database error, unless the client already left.
func (s Source) fail(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	e := gqlerr.Translate(err)
	if e.Code == gqlerr.Internal {
		s.logger(ctx).ErrorContext(ctx, "live: "+what, "err", err)
	}
	Fail(ctx, e)
}

// resyncWindow is how far before the last message a re-read after a Redis
// reconnect looks: rows are stamped before their transaction commits and
// their message is published after, and workers' clocks differ a little.
const resyncWindow = 10 * time.Second

// resyncLimit bounds a re-read after a reconnect.
const resyncLimit = 200

// maxTracked bounds the per-stream memory of job versions.
const maxTracked = 1024

func jobMatches(f *model.JobsSubscriptionFilter, j *ent.Job) bool {
	if f == nil {
		return true
	}
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, j.Kind) {
		return false
	}
	if len(f.Statuses) > 0 && !slices.Contains(f.Statuses, j.Status) {
		return false
	}
	if f.IntegrationID != nil && (j.IntegrationID == nil || *j.IntegrationID != *f.IntegrationID) {
		return false
	}
	return true
}

// Jobs streams new and changed jobs of the viewer's organisation that match
// filter (statuses apply to the new state). Older versions than one already
// seen are skipped, per job. Nothing is sent on subscribe: clients list the
// current jobs with the jobs query after subscribing.
func (s Source) Jobs(ctx context.Context, f *model.JobsSubscriptionFilter) (<-chan *ent.Job, error) {
	v, p, err := s.subscribe(ctx, kindIs(pubsub.KindJob))
	if err != nil {
		return nil, err
	}
	reread := selectsEdges(ctx)
	out := make(chan *ent.Job)
	seen := make(map[pulid.ID]*ent.Job)
	since := time.Now()
	// offer sends j when it is news and matches; fromDB says j carries an
	// ent client (decoded messages do not).
	offer := func(j *ent.Job, fromDB bool) bool {
		if !Newer(seen[j.ID], j) {
			return true
		}
		if len(seen) >= maxTracked {
			clear(seen) // forget old versions rather than grow without bound
		}
		seen[j.ID] = j
		if !jobMatches(f, j) {
			return true
		}
		if reread && !fromDB {
			var err error
			if j, err = s.Client.Job.Get(ctx, j.ID); err != nil {
				s.fail(ctx, "re-reading job", err)
				return false
			}
		}
		return send(ctx, out, j)
	}
	run(ctx, p, out, func(m *pubsub.Message) bool {
		if m.Kind == pubsub.KindResync {
			q := s.Client.Job.Query().Where(job.UpdatedAtGTE(since.Add(-resyncWindow))).
				Order(ent.Asc(job.FieldUpdatedAt), ent.Asc(job.FieldID)).Limit(resyncLimit)
			js, err := q.All(ctx)
			if err != nil {
				s.fail(ctx, "re-reading jobs", err)
				return false
			}
			for _, j := range js {
				if !offer(j, true) {
					return false
				}
			}
			return true
		}
		j, err := decodeJob(*m)
		if err != nil || j.OrganizationID != v.OrgID {
			s.logger(ctx).Warn("live: undecodable or foreign job message dropped", "id", m.ID, "err", err)
			return true
		}
		if m.At.After(since) {
			since = m.At
		}
		return offer(j, false)
	})
	return out, nil
}

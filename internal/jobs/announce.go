package jobs

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// Announcer publishes jobs from the worker side: a new job as QUEUED when the
// relay first sees its outbox rows, and a job the sweeper settled.
//
// A job is created inside the mutation's transaction, which only commits
// after every resolver returned, so the API cannot announce it safely (before
// the commit a subscriber could see a job that then rolls back; publishing
// after the commit would need a hook on every mutation). The relay sees only
// committed rows and calls Announce before it enqueues them, so the QUEUED
// message is published before any worker can mark the job RUNNING, and
// subscribers see the versions in order.
type Announcer struct {
	Client    *ent.Client
	Publisher *pubsub.Publisher
	Logger    *slog.Logger

	mu     sync.Mutex
	recent map[pulid.ID]struct{}
}

// announcedMemory bounds the set of jobs this process remembers announcing:
// a big job's rows come in many relay batches and each would otherwise
// announce it again. Forgetting only costs a duplicate, which subscribers drop
// (an equal version is not newer).
const announcedMemory = 4096

// NewAnnouncer returns an Announcer; a nil publisher announces nothing.
func NewAnnouncer(c *ent.Client, p *pubsub.Publisher, log *slog.Logger) *Announcer {
	if log == nil {
		log = slog.Default()
	}
	return &Announcer{Client: c, Publisher: p, Logger: log, recent: map[pulid.ID]struct{}{}}
}

// Announce publishes, once, each job named by rows that is still QUEUED. It
// fits outbox.Config.BeforeEnqueue. Any payload with "org" and "job" keys
// counts, whatever its kind. Failures are logged: a missed announcement only
// delays the first message to the job's first progress.
func (a *Announcer) Announce(ctx context.Context, rows []outbox.Row) {
	if a == nil || a.Publisher == nil {
		return
	}
	var ids []pulid.ID
	a.mu.Lock()
	for _, r := range rows {
		var p struct {
			Job pulid.ID `json:"job"`
		}
		if json.Unmarshal(r.Payload, &p) != nil || p.Job == "" {
			continue
		}
		if _, done := a.recent[p.Job]; done {
			continue
		}
		if len(a.recent) >= announcedMemory {
			clear(a.recent)
		}
		a.recent[p.Job] = struct{}{}
		ids = append(ids, p.Job)
	}
	a.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	js, err := a.Client.Job.Query().Where(job.IDIn(ids...), job.StatusEQ(job.StatusQUEUED)).All(auth.SystemContext(ctx))
	if err != nil {
		a.Logger.Warn("jobs: read new jobs to announce", "err", err)
		return
	}
	for _, j := range js {
		a.publish(ctx, j)
	}
}

// PublishJob publishes the job's current state (after the sweeper changed it).
func (a *Announcer) PublishJob(ctx context.Context, orgID, jobID pulid.ID) {
	if a == nil || a.Publisher == nil {
		return
	}
	j, err := a.Client.Job.Query().Where(job.ID(jobID), job.OrganizationID(orgID)).Only(auth.SystemContext(ctx))
	if err != nil {
		a.Logger.Warn("jobs: read job to publish", "job", string(jobID), "err", err)
		return
	}
	a.publish(ctx, j)
}

func (a *Announcer) publish(ctx context.Context, j *ent.Job) {
	m, err := JobMessage(j)
	if err == nil {
		err = a.Publisher.Publish(ctx, m)
	}
	if err != nil {
		a.Logger.Warn("jobs: publish job", "job", string(j.ID), "err", err)
	}
}

package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/organization"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/tenant"
)

// Defaults of HandlerConfig.
const (
	// DefaultPageSize is Graph's largest page.
	DefaultPageSize = 999
	// DefaultSlice bounds one task's run: after it the task commits its page,
	// queues its own continuation and ends, so a huge tenant never outlives
	// the worker's per-task timeout and a deploy never waits long for it.
	DefaultSlice = 5 * time.Minute
	// idsPerRequest: `id in (…)` takes at most 15 values outside advanced mode.
	idsPerRequest = 15
)

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	Ent       *ent.Client
	Tenants   *tenant.Connector
	Publisher *pubsub.Publisher // nil: no live updates
	Logger    *slog.Logger
	PageSize  int           // Graph $top of an all-users import; default 999
	Slice     time.Duration // see DefaultSlice
	Now       func() time.Time
}

// Handler runs import tasks (jobs.KindImportUsers) in the worker.
type Handler struct {
	cfg HandlerConfig
	log *slog.Logger
}

// NewHandler validates cfg.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Ent == nil || cfg.Tenants == nil {
		return nil, errors.New("importer: Ent and Tenants required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PageSize <= 0 || cfg.PageSize > DefaultPageSize {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Slice <= 0 {
		cfg.Slice = DefaultSlice
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg, log: cfg.Logger.With("component", "importer")}, nil
}

// HandleTask decodes an asynq payload and runs it (worker.TaskFunc).
func (h *Handler) HandleTask(ctx context.Context, payload []byte, final bool) error {
	var p jobs.ImportUsers
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("importer: payload: %w: %w", err, errPermanent)
	}
	return h.Handle(ctx, p, final)
}

// errPermanent marks errors retrying cannot fix.
var errPermanent = errors.New("not retryable")

// IsPermanent reports whether a HandleTask error should not be retried.
func IsPermanent(err error) bool { return errors.Is(err, errPermanent) }

// Handle runs (or resumes) one import. It reads the job's checkpoint, pages
// through the tenant from there and commits page by page; nil when the job
// ended, when another run of it went ahead, or when its slice is used up and
// a continuation is queued. An error is retried by the worker and resumes at
// the last committed page; on the final attempt the job is marked FAILED.
func (h *Handler) Handle(ctx context.Context, p jobs.ImportUsers, final bool) error {
	ctx = auth.SystemContext(ctx)
	log := h.log.With("org", string(p.OrgID), "integration", string(p.IntegrationID), "job", string(p.JobID))
	j, err := h.cfg.Ent.Job.Query().Where(job.ID(p.JobID), job.OrganizationID(p.OrgID)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("importer: load job: %w", err)
	}
	if j.FinishedAt != nil {
		return nil
	}
	r, err := h.prepare(ctx, p)
	if err != nil {
		return err
	}
	if r == nil {
		return h.abort(ctx, log, p, "the integration is gone or no longer authorized")
	}
	if changed, err := jobs.MarkRunning(ctx, h.cfg.Ent, p.OrgID, p.JobID, h.cfg.Now()); err != nil {
		return err
	} else if changed {
		h.publishJob(ctx, log, p.JobID)
	}
	client, err := h.cfg.Tenants.Client(r.in)
	if err != nil {
		return h.abort(ctx, log, p, "cannot open the integration's credentials")
	}
	if p.All {
		err = h.importAll(ctx, log, client, r, p, j.Checkpoint)
	} else {
		err = h.importSelected(ctx, log, client, r, p)
	}
	switch {
	case err == nil, errors.Is(err, errStale):
		return nil
	case final || isPermanentGraph(err):
		log.Error("importer: import failed", "err", err)
		return h.abort(ctx, log, p, "reading the tenant failed: "+err.Error())
	}
	log.Warn("importer: will retry from the last committed page", "err", err)
	return err
}

func isPermanentGraph(err error) bool {
	if ae, ok := msgraph.IsAuthError(err); ok {
		return ae.Reason() != "unavailable"
	}
	return msgraph.IsPermanent(err)
}

// prepare loads what every page needs; nil when the integration may not be read.
func (h *Handler) prepare(ctx context.Context, p jobs.ImportUsers) (*run, error) {
	in, err := h.cfg.Ent.Integration.Query().
		Where(integration.ID(p.IntegrationID), integration.OrganizationID(p.OrgID)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("importer: load integration: %w", err)
	}
	if in.Status != integration.StatusAUTHORIZED {
		return nil, nil
	}
	org, err := h.cfg.Ent.Organization.Query().Where(organization.ID(p.OrgID)).Only(ctx)
	if err != nil {
		return nil, fmt.Errorf("importer: load organization: %w", err)
	}
	return &run{orgID: p.OrgID, jobID: p.JobID, in: in, table: provision.Table(in), upnRules: provision.Rules(in),
		state: user.State(org.DefaultImportState), limit: org.UserLimit, now: h.cfg.Now}, nil
}

type fetched struct {
	users []map[string]any
	from  string // checkpoint the page was read at
	next  string
	last  bool
	count int
	err   error
}

// importAll streams every active remote user: one page in flight while the
// previous one commits, so the import runs at the pace of Graph's paging.
func (h *Handler) importAll(ctx context.Context, log *slog.Logger, client *msgraph.Client, r *run, p jobs.ImportUsers, checkpoint string) error {
	started := h.cfg.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pager := client.ListUsersRaw(msgraph.ListOptions{
		Select: SelectProperties(r.table), Filter: "accountEnabled eq true", Top: h.cfg.PageSize,
		// Advanced mode for @odata.count: the job's total from the first page.
		Advanced: true,
	})
	if checkpoint != "" {
		pager.ResumeAt(checkpoint)
	}
	pages := make(chan fetched, 1)
	go func() {
		defer close(pages)
		from := checkpoint
		for {
			users, ok, err := pager.NextPage(ctx)
			if !ok && err == nil {
				return
			}
			f := fetched{users: users, from: from, next: pager.NextLink(), last: pager.Done(), err: err}
			if c := pager.Count(); c != nil {
				f.count = *c
			}
			select {
			case pages <- f:
			case <-ctx.Done():
				return
			}
			if err != nil || f.last {
				return
			}
			from = f.next
		}
	}()
	for f := range pages {
		if f.err != nil {
			return f.err
		}
		remotes := make([]Remote, 0, len(f.users))
		for _, u := range f.users {
			remotes = append(remotes, FromGraph(u))
		}
		res, err := h.commit(ctx, r, f.from, f.next, f.last, f.count, remotes, nil)
		if err != nil {
			return err
		}
		h.publish(ctx, log, res)
		if res.done {
			log.Info("importer: import complete", "total", res.job.Total, "failed", res.job.Failed)
			return nil
		}
		if h.cfg.Now().Sub(started) >= h.cfg.Slice {
			log.Info("importer: slice used up, continuing in a new task", "done", res.job.Done)
			return h.continueLater(ctx, p)
		}
	}
	return ctx.Err()
}

// importSelected imports the listed remote ids: read in groups of 15 (`id in`),
// committed in one transaction (at most 1,000 users).
func (h *Handler) importSelected(ctx context.Context, log *slog.Logger, client *msgraph.Client, r *run, p jobs.ImportUsers) error {
	found := make(map[string]Remote, len(p.RemoteIDs))
	sel := SelectProperties(r.table)
	for i := 0; i < len(p.RemoteIDs); i += idsPerRequest {
		ids := p.RemoteIDs[i:min(i+idsPerRequest, len(p.RemoteIDs))]
		lits := make([]string, len(ids))
		for k, id := range ids {
			lits[k] = msgraph.Literal(id)
		}
		users, _, err := client.ListUsersRaw(msgraph.ListOptions{Select: sel, Top: idsPerRequest,
			Filter: "id in (" + strings.Join(lits, ",") + ")"}).NextPage(ctx)
		if err != nil {
			return err
		}
		for _, u := range users {
			rm := FromGraph(u)
			found[strings.ToLower(rm.ID)] = rm
		}
	}
	var remotes []Remote
	var missing []string
	for _, id := range p.RemoteIDs {
		if rm, ok := found[strings.ToLower(id)]; ok {
			remotes = append(remotes, rm)
		} else {
			missing = append(missing, id)
		}
	}
	res, err := h.commit(ctx, r, "", "", true, len(p.RemoteIDs), remotes, missing)
	if err != nil {
		return err
	}
	h.publish(ctx, log, res)
	return nil
}

// commit is commitPage, run again when a concurrent write took a username or
// email between the check and the insert (the next try sees it).
func (h *Handler) commit(ctx context.Context, r *run, from, next string, last bool, count int, remotes []Remote, missing []string) (*pageResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := commitPage(ctx, h.cfg.Ent, r, from, next, last, count, remotes, missing)
		if err != nil && isUniqueViolation(err) && attempt < 3 {
			continue
		}
		return res, err
	}
}

// continueLater queues the rest of the import as a new task (same payload; the
// checkpoint is on the job).
func (h *Handler) continueLater(ctx context.Context, p jobs.ImportUsers) error {
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tx, err := h.cfg.Ent.Tx(ctx)
	if err != nil {
		return fmt.Errorf("importer: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := tx.Outbox.Create().SetOrganizationID(p.OrgID).SetKind(jobs.KindImportUsers).SetPayload(payload).Exec(ctx); err != nil {
		return fmt.Errorf("importer: queue continuation: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, '')", outbox.Channel); err != nil {
		return fmt.Errorf("importer: notify relay: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("importer: commit: %w", err)
	}
	return nil
}

// abort ends the job as FAILED with an event saying why; the users committed
// so far stay imported.
func (h *Handler) abort(ctx context.Context, log *slog.Logger, p jobs.ImportUsers, why string) error {
	now := h.cfg.Now()
	tx, err := h.cfg.Ent.Tx(ctx)
	if err != nil {
		return fmt.Errorf("importer: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	n, err := tx.Job.Update().Where(job.ID(p.JobID), job.OrganizationID(p.OrgID), job.FinishedAtIsNil()).
		SetStatus(job.StatusFAILED).SetFinishedAt(now).Save(ctx)
	if err != nil {
		return fmt.Errorf("importer: fail job: %w", err)
	}
	var ev *ent.Event
	if n > 0 {
		if ev, err = tx.Event.Create().SetOrganizationID(p.OrgID).SetIntegrationID(p.IntegrationID).SetJobID(p.JobID).
			SetType(EventUserImportFailed).SetDetail(jobs.Truncate("import stopped: "+why, 4000)).Save(ctx); err != nil {
			return fmt.Errorf("importer: record event: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("importer: commit: %w", err)
	}
	if ev != nil {
		h.publish(ctx, log, &pageResult{events: []*ent.Event{ev.Unwrap()}})
		h.publishJob(ctx, log, p.JobID)
	}
	return nil
}

func (h *Handler) publishJob(ctx context.Context, log *slog.Logger, id pulid.ID) {
	if h.cfg.Publisher == nil {
		return
	}
	j, err := h.cfg.Ent.Job.Get(ctx, id)
	if err != nil {
		log.Warn("importer: read job to publish", "err", err)
		return
	}
	h.publish(ctx, log, &pageResult{job: j})
}

// publish announces a committed page: its events, then the job's progress.
// A lost message costs only liveness (subscribers re-read state).
func (h *Handler) publish(ctx context.Context, log *slog.Logger, res *pageResult) {
	if h.cfg.Publisher == nil || res == nil {
		return
	}
	msgs := make([]pubsub.Message, 0, len(res.events)+1)
	for _, ev := range res.events {
		if m, err := jobs.EventMessage(ev); err == nil {
			msgs = append(msgs, m)
		}
	}
	if res.job != nil {
		if m, err := jobs.JobMessage(res.job); err == nil {
			msgs = append(msgs, m)
		}
	}
	if err := h.cfg.Publisher.PublishAll(ctx, msgs); err != nil {
		log.Warn("importer: publish", "err", err)
	}
}

package importer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/directory/rules"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/upn"
)

// Event types of an import (J3).
const (
	EventUserImport       = "user_import"
	EventUserImportFailed = "user_import_failed"
)

// NotificationImportComplete is the kind of the notification an import of
// more than DirectResultsMax users records when it ends (M6).
const NotificationImportComplete = "import_complete"

// DirectResultsMax is the largest import whose results the mutation returns
// directly (M6); above it the client follows the job and downloads the CSV.
const DirectResultsMax = 100

// errStale: the job's checkpoint is not where this run started its page:
// another run of the same job (a recovered task next to its continuation)
// committed it first, or the job already ended. This run stops.
var errStale = errors.New("importer: the job moved on without this run")

// run is what every page of one import task shares.
type run struct {
	orgID       pulid.ID
	jobID       pulid.ID
	in          *ent.Integration
	table       mapping.Table
	upnRules    upn.Rules
	state       user.State
	limit       *int
	now         func() time.Time
	resultsPath string
}

// row is the outcome for one remote user.
type row struct {
	remote   Remote
	email    string
	username string
	status   string
	message  string
	userID   pulid.ID
	create   *ent.UserCreate
	bind     bool // in scope of the integration: link and bind
}

// pageResult is what one committed page changed.
type pageResult struct {
	job    *ent.Job
	events []*ent.Event
	done   bool
}

// commitPage imports one page of remote users in one transaction: users,
// links, bindings, job items, events, job progress and checkpoint. from is the
// checkpoint the page was read at; next the one after it ("" with last). The
// job row is locked and its checkpoint compared first, so a page is committed
// exactly once even when two runs of the job overlap. missing are requested
// ids the tenant does not have (FAILED "not found in tenant").
func commitPage(ctx context.Context, client *ent.Client, r *run, from, next string, last bool, count int,
	remotes []Remote, missing []string,
) (*pageResult, error) {
	tx, err := client.Tx(ctx)
	if err != nil {
		return nil, fmt.Errorf("importer: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	c := tx.Client()
	// One import at a time per organization: the seat count and the usernames
	// read below stay true until commit.
	if _, err := c.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("dirsync:import:"+string(r.orgID))); err != nil {
		return nil, fmt.Errorf("importer: lock: %w", err)
	}
	var checkpoint string
	var finished bool
	rows, err := c.QueryContext(ctx, `SELECT COALESCE(checkpoint, ''), finished_at IS NOT NULL FROM jobs
		WHERE id = $1 AND organization_id = $2 FOR UPDATE`, r.jobID, r.orgID)
	if err != nil {
		return nil, fmt.Errorf("importer: lock job: %w", err)
	}
	found := rows.Next()
	if found {
		err = rows.Scan(&checkpoint, &finished)
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("importer: read job: %w", err)
	}
	if !found || finished || checkpoint != from {
		return nil, errStale
	}

	out, err := plan(ctx, c, r, remotes, missing)
	if err != nil {
		return nil, err
	}
	if err := write(ctx, c, r, out); err != nil {
		return nil, err
	}
	res := &pageResult{done: last}
	if res.events, err = recordEvents(ctx, c, r, out); err != nil {
		return nil, err
	}
	failed := 0
	for _, x := range out {
		if x.status == StatusFailed {
			failed++
		}
	}
	if res.job, err = advance(ctx, c, r, len(out), failed, count, next, last); err != nil {
		return nil, err
	}
	if last && res.job.Total > DirectResultsMax {
		if err := notifyComplete(ctx, c, r, res.job); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("importer: commit: %w", err)
	}
	res.job = res.job.Unwrap()
	return res, nil
}

func lockKey(s string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return int64(h.Sum64())
}

// plan decides every remote user of the page (M3–M5) against the directory
// as it is under the import lock.
func plan(ctx context.Context, c *ent.Client, r *run, remotes []Remote, missing []string) ([]*row, error) {
	out := make([]*row, 0, len(remotes)+len(missing))
	ids := make([]string, 0, len(remotes))
	for _, rm := range remotes {
		ids = append(ids, rm.ID)
	}
	links, err := c.RemoteLink.Query().
		Where(remotelink.IntegrationID(r.in.ID), remotelink.OrganizationID(r.orgID), remotelink.RemoteIDIn(ids...)).
		WithUser(func(q *ent.UserQuery) { q.Select(user.FieldID, user.FieldUsername) }).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("importer: read links: %w", err)
	}
	linked := make(map[string]*ent.RemoteLink, len(links))
	for _, l := range links {
		linked[strings.ToLower(l.RemoteID)] = l
	}
	folded := make([]string, 0, len(remotes))
	for _, rm := range remotes {
		folded = append(folded, rules.Fold(Email(rm)))
	}
	taken, err := c.User.Query().Where(user.OrganizationID(r.orgID), user.EmailFoldedIn(folded...)).
		Select(user.FieldEmailFolded).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("importer: read emails: %w", err)
	}
	emails := make(map[string]bool, len(taken))
	for _, e := range taken {
		emails[e] = true
	}
	seats := -1 // unlimited
	if r.limit != nil {
		n, err := c.User.Query().Where(user.OrganizationID(r.orgID)).Count(ctx)
		if err != nil {
			return nil, fmt.Errorf("importer: count users: %w", err)
		}
		seats = max(*r.limit-n, 0)
	}

	var creating []*row
	for _, rm := range remotes {
		x := &row{remote: rm, email: Email(rm)}
		out = append(out, x)
		if l := linked[strings.ToLower(rm.ID)]; l != nil {
			if l.Edges.User == nil {
				x.status, x.message = StatusFailed, MsgOrphanLinked
				continue
			}
			x.status, x.userID, x.username = StatusSkipped, l.Edges.User.ID, l.Edges.User.Username
			x.message = MsgAlready + " as " + l.Edges.User.Username
			continue
		}
		if !rm.Enabled {
			x.status, x.message = StatusFailed, MsgDisabled
			continue
		}
		if err := rules.Email(x.email); err != nil {
			x.status, x.message = StatusFailed, "email "+x.email+" is not valid in the directory: "+err.Error()
			continue
		}
		if BaseUsername(rm) == "" {
			x.status, x.message = StatusFailed, "no usable username: the mail alias and the email local part hold no letters or digits"
			continue
		}
		f := rules.Fold(x.email)
		if emails[f] {
			x.status, x.message = StatusFailed, MsgEmailExists
			continue
		}
		if seats == 0 {
			x.status, x.message = StatusFailed, MsgUserLimit
			continue
		}
		if seats > 0 {
			seats--
		}
		emails[f] = true
		x.status = StatusImported
		creating = append(creating, x)
	}
	for _, id := range missing {
		out = append(out, &row{remote: Remote{ID: id}, status: StatusFailed, message: MsgNotFound})
	}
	if err := assignUsernames(ctx, c, r.orgID, creating); err != nil {
		return nil, err
	}
	for _, x := range creating {
		if x.status != StatusImported {
			continue
		}
		x.userID = pulid.New("US")
		uc := c.User.Create().SetID(x.userID).SetOrganizationID(r.orgID).
			SetUsername(x.username).SetEmail(x.email).SetState(r.state)
		attrs, dropped := Attributes(r.table, x.remote, validAttribute)
		for k, v := range attrs {
			userSetters[k].set(uc, v)
		}
		notes := dropped
		mapped := x.email
		if r.in.EmailSource == integration.EmailSourceALTERNATE { // D1
			mapped = attrs["alternateEmail"]
		}
		if d, _ := upn.Resolve(r.upnRules, mapped); d.Scope == upn.InScope {
			x.bind = true
		} else {
			notes = append(notes, "not bound to "+r.in.Name+": "+d.Reason)
		}
		if x.message != "" {
			notes = append([]string{x.message}, notes...)
		}
		x.message = strings.Join(notes, "; ")
		x.create = uc
	}
	return out, nil
}

// assignUsernames gives each row its M3 username, suffixed -2, -3… (first
// free, case-insensitively, in page order) when the directory or an earlier
// row of the import holds it. Earlier pages are committed, so the directory
// covers them.
func assignUsernames(ctx context.Context, c *ent.Client, orgID pulid.ID, xs []*row) error {
	bases := make([]string, len(xs))
	want := map[string]bool{}
	for i, x := range xs {
		bases[i] = BaseUsername(x.remote)
		if bases[i] != "" {
			want[rules.Fold(bases[i])] = true
		}
	}
	taken, err := takenUsernames(ctx, c, orgID, want)
	if err != nil {
		return err
	}
	for i, x := range xs {
		base := bases[i] // never empty: plan failed those users already
		name := base
		for n := 2; taken[rules.Fold(name)]; n++ {
			if n%20 == 2 {
				// Probe the next alternatives in one query; collisions are rare.
				probe := map[string]bool{}
				for k := n; k < n+20; k++ {
					probe[rules.Fold(Suffixed(base, k))] = true
				}
				more, err := takenUsernames(ctx, c, orgID, probe)
				if err != nil {
					return err
				}
				for k := range more {
					taken[k] = true
				}
			}
			name = Suffixed(base, n)
		}
		taken[rules.Fold(name)] = true
		x.username = name
		if name != base {
			x.message = "username " + base + " is taken: imported as " + name
		}
	}
	return nil
}

func takenUsernames(ctx context.Context, c *ent.Client, orgID pulid.ID, want map[string]bool) (map[string]bool, error) {
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	got, err := c.User.Query().Where(user.OrganizationID(orgID), user.UsernameFoldedIn(names...)).
		Select(user.FieldUsernameFolded).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("importer: read usernames: %w", err)
	}
	out := make(map[string]bool, len(got))
	for _, g := range got {
		out[g] = true
	}
	return out, nil
}

// write creates the users (ent, with the schema's hooks and validators),
// then their links, bindings and job items in one INSERT … SELECT FROM
// unnest(…) each: a page of 999 rows costs three statements with a handful of
// array parameters instead of thousands of bound values.
func write(ctx context.Context, c *ent.Client, r *run, xs []*row) error {
	now := r.now()
	var users []*ent.UserCreate
	links := &columns{}
	binds := &columns{}
	items := &columns{}
	for _, x := range xs {
		if x.create != nil && x.status == StatusImported {
			users = append(users, x.create)
			if x.bind {
				// Linked at once to the account it came from (M4): nothing is
				// written remotely, the person keeps the Microsoft 365 password;
				// taken_over keeps a STAGED user's account enabled (P2).
				links.add(string(pulid.New("RL")), string(x.userID), x.remote.ID, jobs.Truncate(x.remote.UPN, 113))
				binds.add(string(pulid.New("UB")), string(x.userID))
			}
		}
		status, code, errMsg, note := "SUCCEEDED", "", "", x.message
		if x.status == StatusFailed {
			status, code, errMsg, note = "FAILED", "IMPORT_FAILED", x.message, ""
		}
		items.add(string(pulid.New("JI")), string(x.userID), status, x.status, code, jobs.Truncate(errMsg, 2000),
			x.remote.ID, jobs.Truncate(x.remote.UPN, 256), jobs.Truncate(x.email, 256), x.username, jobs.Truncate(note, 2000))
	}
	if len(users) > 0 {
		if err := c.User.CreateBulk(users...).Exec(ctx); err != nil {
			return fmt.Errorf("importer: create users: %w", err)
		}
	}
	if err := links.insert(ctx, c, `INSERT INTO remote_links (id, user_id, remote_id, upn, organization_id, integration_id,
		kind, status, remote_enabled, taken_over, status_reason, last_synced_at, created_at, updated_at)
		SELECT a, b, c, d, $5, $6, 'USER', 'IN_SYNC', true, true, 'imported', $7, $7, $7
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(a, b, c, d)`, r.orgID, r.in.ID, now); err != nil {
		return fmt.Errorf("importer: create links: %w", err)
	}
	if err := binds.insert(ctx, c, `INSERT INTO user_bindings (id, user_id, organization_id, integration_id, created_at, updated_at)
		SELECT a, b, $3, $4, $5, $5 FROM unnest($1::text[], $2::text[]) AS t(a, b)`, r.orgID, r.in.ID, now); err != nil {
		return fmt.Errorf("importer: create bindings: %w", err)
	}
	if err := items.insert(ctx, c, `INSERT INTO job_items (id, user_id, status, result, error_code, error_message,
		remote_id, user_principal_name, email, username, note, organization_id, job_id, integration_id, created_at, updated_at)
		SELECT a, NULLIF(b, ''), c, d, NULLIF(e, ''), NULLIF(f, ''), g, NULLIF(h, ''), NULLIF(i, ''), NULLIF(j, ''), NULLIF(k, ''),
		       $12, $13, $14, $15, $15
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		            $9::text[], $10::text[], $11::text[]) AS t(a, b, c, d, e, f, g, h, i, j, k)`,
		r.orgID, r.jobID, r.in.ID, now); err != nil {
		return fmt.Errorf("importer: record results: %w", err)
	}
	return nil
}

// columns collects rows column-wise for an INSERT … SELECT FROM unnest.
type columns struct{ cols [][]string }

func (c *columns) add(vals ...string) {
	if c.cols == nil {
		c.cols = make([][]string, len(vals))
	}
	for i, v := range vals {
		c.cols[i] = append(c.cols[i], v)
	}
}

// insert runs query with the columns as $1…$n (text arrays) followed by extra.
func (c *columns) insert(ctx context.Context, client *ent.Client, query string, extra ...any) error {
	if len(c.cols) == 0 {
		return nil
	}
	args := make([]any, 0, len(c.cols)+len(extra))
	for _, col := range c.cols {
		args = append(args, pq.Array(col))
	}
	_, err := client.ExecContext(ctx, query, append(args, extra...)...)
	return err
}

// recordEvents: user_import per imported user, user_import_failed per failed
// one (skips changed nothing). Returned for publishing after commit.
func recordEvents(ctx context.Context, c *ent.Client, r *run, xs []*row) ([]*ent.Event, error) {
	now := r.now()
	var evs []*ent.Event
	cols := &columns{}
	for _, x := range xs {
		ev := &ent.Event{ID: pulid.New("EV"), CreatedAt: now, UpdatedAt: now, OrganizationID: r.orgID,
			IntegrationID: &r.in.ID, JobID: &r.jobID}
		switch x.status {
		case StatusImported:
			uid := x.userID
			ev.Type, ev.UserID = EventUserImport, &uid
			ev.Detail = jobs.Truncate(fmt.Sprintf("imported %s as %s", x.remote.UPN, x.username), 4000)
		case StatusFailed:
			who := x.remote.UPN
			if who == "" {
				who = x.remote.ID
			}
			ev.Type, ev.Detail = EventUserImportFailed, jobs.Truncate(who+": "+x.message, 4000)
		default:
			continue
		}
		uid := ""
		if ev.UserID != nil {
			uid = string(*ev.UserID)
		}
		cols.add(string(ev.ID), ev.Type, uid, ev.Detail)
		evs = append(evs, ev)
	}
	if err := cols.insert(ctx, c, `INSERT INTO events (id, type, user_id, detail, organization_id, integration_id, job_id, created_at, updated_at)
		SELECT a, b, NULLIF(c, ''), d, $5, $6, $7, $8, $8 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(a, b, c, d)`,
		r.orgID, r.in.ID, r.jobID, now); err != nil {
		return nil, fmt.Errorf("importer: record events: %w", err)
	}
	return evs, nil
}

// advance adds a page to the job's progress and moves its checkpoint; the
// last page settles it. total grows to Graph's $count as soon as it is known
// and becomes exact at the end.
func advance(ctx context.Context, c *ent.Client, r *run, n, failed, count int, next string, last bool) (*ent.Job, error) {
	now := r.now()
	_, err := c.ExecContext(ctx, `UPDATE jobs SET
		   done = done + $3,
		   failed = failed + $4,
		   total = CASE WHEN $6 THEN done + $3 ELSE GREATEST(total, $5, done + $3) END,
		   checkpoint = $7,
		   updated_at = $8,
		   started_at = COALESCE(started_at, $8),
		   status = CASE
		     WHEN NOT $6 THEN 'RUNNING'
		     WHEN failed + $4 = 0 THEN 'SUCCEEDED'
		     WHEN failed + $4 >= done + $3 THEN 'FAILED'
		     ELSE 'PARTIAL' END,
		   finished_at = CASE WHEN $6 THEN $8::timestamptz ELSE NULL END
		 WHERE id = $1 AND organization_id = $2`,
		r.jobID, r.orgID, n, failed, count, last, next, now)
	if err != nil {
		return nil, fmt.Errorf("importer: advance job: %w", err)
	}
	return c.Job.Get(ctx, r.jobID)
}

// notifyComplete records the "import complete" notification (M6): the
// summary and where the results are.
func notifyComplete(ctx context.Context, c *ent.Client, r *run, j *ent.Job) error {
	var counts []struct {
		Result string `json:"result"`
		Count  int    `json:"count"`
	}
	if err := c.JobItem.Query().Where(jobitemJob(j.ID)).GroupBy("result").Aggregate(ent.Count()).Scan(ctx, &counts); err != nil {
		return fmt.Errorf("importer: summarize: %w", err)
	}
	by := map[string]int{}
	for _, x := range counts {
		by[x.Result] = x.Count
	}
	msg := fmt.Sprintf("Import from %s complete: %d imported, %d skipped, %d failed of %d. Results: %s",
		r.in.Name, by[StatusImported], by[StatusSkipped], by[StatusFailed], j.Total, ResultsPath(j.ID))
	return c.Notification.Create().SetOrganizationID(r.orgID).SetKind(NotificationImportComplete).
		SetJobID(j.ID).SetMessage(jobs.Truncate(msg, 2000)).Exec(ctx)
}

// ResultsPath is where a job's results CSV is served, relative to the API's
// base URL.
func ResultsPath(jobID pulid.ID) string { return "/jobs/" + string(jobID) + "/results.csv" }

// isUniqueViolation: a concurrent write (a createUser racing the import)
// took a username or email between the check and the insert.
func isUniqueViolation(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23505"
}

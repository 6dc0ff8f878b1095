package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/outbox"
	"github.com/dirsync/dirsync/internal/tenant"
)

// MaxRemoteIDs bounds one importUsers call with remoteIDs.
const MaxRemoteIDs = 1000

// DefaultWait is how long importUsers waits for a small import to finish so
// it can return the results directly (M6).
const DefaultWait = 5 * time.Second

// Status is a result status (GraphQL ImportStatus).
type Status string

// MarshalGQL implements graphql.Marshaler.
func (s Status) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(s))) }

// UnmarshalGQL implements graphql.Unmarshaler.
func (s *Status) UnmarshalGQL(v any) error {
	str, ok := v.(string)
	if !ok || (str != StatusImported && str != StatusSkipped && str != StatusFailed) {
		return fmt.Errorf("%v is not a valid ImportStatus", v)
	}
	*s = Status(str)
	return nil
}

// Result is one remote user's outcome (GraphQL ImportResult).
type Result struct {
	RemoteID          pulid.ID
	UserPrincipalName *string
	Status            Status
	User              *ent.User
	Message           *string
}

// Payload is what importUsers returns (GraphQL ImportUsersPayload): the job,
// and the results when the import was small and quick enough (M6).
type Payload struct {
	Job     *ent.Job
	Results []*Result
}

// Service is the API side of imports: listing remote users and starting
// imports. Nothing here writes to Microsoft 365.
type Service struct {
	client  *ent.Client
	tenants *tenant.Connector
	// Wait bounds how long Import waits for the results; 0 = DefaultWait,
	// negative = never wait.
	Wait time.Duration
}

// NewService returns a Service; tenants builds Graph clients for remoteUsers.
func NewService(client *ent.Client, tenants *tenant.Connector) *Service {
	return &Service{client: client, tenants: tenants}
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Import starts an import of the listed remote users or of all (M2) and
// returns its job.
//
// Unlike other mutations it commits its job and outbox row in its own
// transaction, before returning: the results of a small import can only be
// awaited once the worker can see the job, and the request's transaction
// commits only after every resolver returned. A request that combines
// importUsers with other mutations therefore does not undo the import when a
// later mutation fails. After committing it waits (at most Wait) for the job
// to end and returns the results when it covers at most 100 users.
func (s *Service) Import(ctx context.Context, integrationID pulid.ID, remoteIDs []pulid.ID, all *bool) (*Payload, error) {
	everyone := all != nil && *all
	ids, err := checkImportInput(remoteIDs, everyone)
	if err != nil {
		return nil, err
	}
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return nil, fmt.Errorf("importer: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	in, err := authorized(ctx, tx.Client(), integrationID)
	if err != nil {
		return nil, err
	}
	j, err := tx.Job.Create().SetOrganizationID(in.OrganizationID).SetKind(jobs.JobImportUsers).
		SetIntegrationID(in.ID).SetTotal(len(ids)).Save(ctx)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(jobs.ImportUsers{OrgID: in.OrganizationID, IntegrationID: in.ID, JobID: j.ID,
		All: everyone, RemoteIDs: ids})
	if err != nil {
		return nil, err
	}
	if err := tx.Outbox.Create().SetOrganizationID(in.OrganizationID).SetKind(jobs.KindImportUsers).
		SetPayload(payload).Exec(ctx); err != nil {
		return nil, fmt.Errorf("importer: write outbox: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, '')", outbox.Channel); err != nil {
		return nil, fmt.Errorf("importer: notify relay: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("importer: commit: %w", err)
	}
	return s.await(ctx, j.ID)
}

func checkImportInput(remoteIDs []pulid.ID, all bool) ([]string, error) {
	switch {
	case all && remoteIDs != nil:
		return nil, gqlerr.BadInput("remoteIDs", "give either remoteIDs or all: true, not both")
	case all:
		return nil, nil
	case remoteIDs == nil:
		return nil, gqlerr.BadInput("remoteIDs", "give remoteIDs (1 to %d ids) or all: true", MaxRemoteIDs)
	case len(remoteIDs) == 0 || len(remoteIDs) > MaxRemoteIDs:
		return nil, gqlerr.BadInput("remoteIDs", "give 1 to %d remote ids (got %d); use all: true for more", MaxRemoteIDs, len(remoteIDs))
	}
	seen := make(map[string]bool, len(remoteIDs))
	out := make([]string, 0, len(remoteIDs))
	for i, id := range remoteIDs {
		s := strings.ToLower(string(id))
		if !guid.MatchString(s) {
			return nil, gqlerr.BadInput("remoteIDs", "remoteIDs[%d] is not a Microsoft 365 object id (a GUID)", i)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// authorized loads the caller's integration, which must be authorized.
func authorized(ctx context.Context, c *ent.Client, id pulid.ID) (*ent.Integration, error) {
	in, err := c.Integration.Query().Where(integration.ID(id)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, gqlerr.NotFoundf("integrationID", "integration %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	if in.Status != integration.StatusAUTHORIZED {
		return nil, gqlerr.Newf(gqlerr.FailedPrecondition, "integrationID", "integration %q is not authorized: authorize it first", in.Name)
	}
	return in, nil
}

// await polls the committed job until it ends or the wait is over, and
// returns it with its results when it ended covering at most 100 users.
// Polling, not pub/sub: it cannot miss the end, and a few reads per second
// for a few seconds cost less than a subscription per request.
func (s *Service) await(ctx context.Context, id pulid.ID) (*Payload, error) {
	wait := s.Wait
	if wait == 0 {
		wait = DefaultWait
	}
	deadline := time.Now().Add(wait)
	delay := 25 * time.Millisecond
	for {
		j, err := s.client.Job.Query().Where(job.ID(id)).Only(ctx)
		if err != nil {
			return nil, err
		}
		if j.FinishedAt != nil {
			if j.Total > DirectResultsMax {
				return &Payload{Job: j}, nil
			}
			rs, err := s.results(ctx, id)
			return &Payload{Job: j, Results: rs}, err
		}
		if wait < 0 || time.Now().Add(delay).After(deadline) {
			return &Payload{Job: j}, nil
		}
		select {
		case <-ctx.Done():
			return &Payload{Job: j}, nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

func (s *Service) results(ctx context.Context, id pulid.ID) ([]*Result, error) {
	items, err := s.client.JobItem.Query().Where(jobitem.JobID(id)).Order(ent.Asc(jobitem.FieldID)).All(ctx)
	if err != nil {
		return nil, err
	}
	var uids []pulid.ID
	for _, it := range items {
		if it.UserID != nil {
			uids = append(uids, *it.UserID)
		}
	}
	users, err := s.client.User.Query().Where(user.IDIn(uids...)).All(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[pulid.ID]*ent.User, len(users))
	for _, u := range users {
		byID[u.ID] = u
	}
	out := make([]*Result, len(items))
	for i, it := range items {
		r := &Result{RemoteID: pulid.ID(it.RemoteID), Status: Status(it.Result), Message: nonEmpty(Message(it))}
		r.UserPrincipalName = nonEmpty(it.UserPrincipalName)
		if it.UserID != nil {
			r.User = byID[*it.UserID]
		}
		out[i] = r
	}
	return out, nil
}

// Message is an item's message: the error of a failed one, the note otherwise.
func Message(it *ent.JobItem) string {
	if it.Status == jobitem.StatusFAILED {
		return it.ErrorMessage
	}
	return it.Note
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

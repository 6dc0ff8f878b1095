// Package preview answers "what would this change do?" (issue 14) without
// doing it. It runs the real change — a binding change or an integration
// settings update through internal/integrations, with all its validation —
// on a transaction that is always rolled back, plans every user and group
// the change's job would reconcile with the reconcile's own planning
// (provision.PlanStored), and only then reads the tenant, in $batch calls, to
// tell a create from a takeover and to show the attribute differences. No row,
// job, outbox row or notification survives, and only GET requests reach Graph.
//
// This relies on internal/integrations' promise that its binding and
// settings writes touch nothing but the transaction (no Graph call, no Redis,
// the relay woken by pg_notify, which a rollback drops): a side effect added
// there would leak into every preview, and the stacktest previews, which
// fingerprint every table and check the emulator's request log, would fail.
package preview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/groupbinding"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/groupsync"
	"github.com/dirsync/dirsync/internal/guard"
	"github.com/dirsync/dirsync/internal/integrations"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
	"github.com/dirsync/dirsync/internal/tenant"
)

// upnsPerFilter is how many UPNs one `userPrincipalName in (…)` carries:
// Graph refuses a $filter with more than 15 alternatives.
const upnsPerFilter = 15

// Service computes previews.
type Service struct {
	client  *ent.Client
	integ   *integrations.Service
	tenants *tenant.Connector
	now     func() time.Time
}

// New returns a Service; tenants builds the Graph clients (nil: previews that
// need Graph answer with ERROR items).
func New(client *ent.Client, tenants *tenant.Connector) *Service {
	return &Service{client: client, integ: integrations.New(client, tenants), tenants: tenants, now: time.Now}
}

// Binding previews bindUsers/bindUserGroups (unbind false) or
// unbindUsers/unbindUserGroups (unbind true) of the given ids together.
func (s *Service) Binding(ctx context.Context, integrationID pulid.ID, userIDs, groupIDs []pulid.ID, unbind bool) (*model.BindingPlan, error) {
	return s.dryRun(ctx, integrationID, "integrationID", func(ctx context.Context) ([]*ent.Job, error) {
		var out []*ent.Job
		run := func(ids []pulid.ID, f func(context.Context, pulid.ID, []pulid.ID, ...integrations.BindOption) (*ent.Integration, *ent.Job, error)) error {
			if ids == nil {
				return nil
			}
			_, j, err := f(ctx, integrationID, ids)
			if j != nil {
				out = append(out, j)
			}
			return err
		}
		bindU, bindG := s.integ.BindUsers, s.integ.BindUserGroups
		if unbind {
			bindU, bindG = s.integ.UnbindUsers, s.integ.UnbindUserGroups
		}
		if err := run(userIDs, bindU); err != nil {
			return nil, err
		}
		if err := run(groupIDs, bindG); err != nil {
			return nil, err
		}
		return out, nil
	})
}

// IntegrationChanges previews updateIntegration(id, in).
func (s *Service) IntegrationChanges(ctx context.Context, id pulid.ID, in model.UpdateIntegrationInput) (*model.BindingPlan, error) {
	return s.dryRun(ctx, id, "id", func(ctx context.Context) ([]*ent.Job, error) {
		_, j, err := s.integ.Update(ctx, id, in)
		if j == nil {
			return nil, err
		}
		return []*ent.Job{j}, err
	})
}

// entry is one planned item before the tenant is read.
type entry struct {
	item   *model.PlanItem
	in     *ent.Integration
	stored provision.Stored
	// lookup: the UPN to find (create or take over); read: the linked remote
	// id whose properties to compare; group: the display name to find.
	lookup, read, group string
	groupLink           *ent.RemoteLink
}

// dryRun runs change on a transaction that is rolled back whatever happens,
// plans the items of the jobs it started, then reads the tenant.
func (s *Service) dryRun(ctx context.Context, integrationID pulid.ID, field string, change func(ctx context.Context) ([]*ent.Job, error)) (*model.BindingPlan, error) {
	v, ok := auth.ViewerFrom(ctx)
	if !ok || v.IsPortal() || v.OrgID == "" {
		return nil, gqlerr.Newf(gqlerr.Forbidden, "", "previews need an API key")
	}
	in, err := s.client.Integration.Query().Where(integration.ID(integrationID)).Only(ctx)
	if err != nil {
		if ent.IsNotFound(err) {
			return nil, gqlerr.NotFoundf(field, "integration %s not found", integrationID)
		}
		return nil, err
	}
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return nil, fmt.Errorf("preview: begin: %w", err)
	}
	// The change runs as an admin of the caller's organization: a read-only
	// key may preview, and nothing it did is ever committed.
	wctx := auth.WithViewer(ctx, auth.Viewer{OrgID: v.OrgID, KeyID: v.KeyID, Role: auth.RoleAdmin})
	wctx = ent.NewContext(ent.NewTxContext(wctx, tx), tx.Client())
	entries, err := s.plan(wctx, tx.Client(), change)
	if rerr := tx.Rollback(); rerr != nil && err == nil {
		err = fmt.Errorf("preview: rollback: %w", rerr)
	}
	if err != nil {
		return nil, err
	}
	out := &model.BindingPlan{Integration: in, Counts: &model.PlanCounts{}}
	calls, err := s.readTenant(ctx, entries)
	if err != nil {
		return nil, err
	}
	out.GraphRequests = calls
	disables := map[pulid.ID]int{}
	for _, e := range entries {
		out.Items = append(out.Items, e.item)
		count(out.Counts, e.item.Action)
		if e.item.Action == model.PlanActionDisable {
			disables[e.in.ID]++
		}
	}
	for id, n := range disables {
		x, err := s.client.Integration.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		th, err := guard.ThresholdOf(ctx, s.client, x)
		if err != nil {
			return nil, err
		}
		window, err := guard.WindowDisables(auth.SystemContext(ctx), s.client, id, s.now())
		if err != nil {
			return nil, err
		}
		if th.Exceeds(n, window) {
			out.WouldAwaitApproval = true
		}
	}
	return out, nil
}

func count(c *model.PlanCounts, a model.PlanAction) {
	c.Total++
	switch a {
	case model.PlanActionUnchanged:
		c.Unchanged++
	case model.PlanActionCreate:
		c.Create++
	case model.PlanActionTakeover:
		c.Takeover++
	case model.PlanActionUpdate:
		c.Update++
	case model.PlanActionEnable:
		c.Enable++
	case model.PlanActionDisable:
		c.Disable++
	case model.PlanActionOutOfScope:
		c.OutOfScope++
	case model.PlanActionError:
		c.Error++
	}
}

// plan runs the change on the rolled-back transaction c and plans its jobs' items.
func (s *Service) plan(ctx context.Context, c *ent.Client, change func(ctx context.Context) ([]*ent.Job, error)) ([]*entry, error) {
	started, err := change(ctx)
	if err != nil {
		return nil, err
	}
	var ids []pulid.ID
	for _, j := range started {
		ids = append(ids, j.ID)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	items, err := c.JobItem.Query().Where(jobitem.JobIDIn(ids...)).Order(ent.Asc(jobitem.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("preview: read items: %w", err)
	}
	ins := map[pulid.ID]*ent.Integration{}
	now := s.now()
	var out []*entry
	for _, it := range items {
		in, ok := ins[it.IntegrationID]
		if !ok {
			if in, err = c.Integration.Get(ctx, it.IntegrationID); err != nil {
				return nil, fmt.Errorf("preview: read integration: %w", err)
			}
			// Unwrap changes the entity in place: once, when it is cached.
			in = in.Unwrap()
			ins[it.IntegrationID] = in
		}
		var e *entry
		if it.GroupID != nil {
			e, err = planGroup(ctx, c, in, *it.GroupID)
		} else {
			e, err = planUser(ctx, c, in, it, now)
		}
		if err != nil {
			return nil, err
		}
		if e != nil {
			e.item.IntegrationID = in.ID
			e.in = in
			out = append(out, e)
		}
	}
	return out, nil
}

func planUser(ctx context.Context, c *ent.Client, in *ent.Integration, it *ent.JobItem, now time.Time) (*entry, error) {
	var u *ent.User
	var l *ent.RemoteLink
	var err error
	if it.UserID != nil {
		if u, err = c.User.Query().Where(user.ID(*it.UserID)).Only(ctx); err != nil && !ent.IsNotFound(err) {
			return nil, fmt.Errorf("preview: read user: %w", err)
		}
	}
	q := c.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.KindEQ(remotelink.KindUSER))
	switch {
	case u != nil:
		q = q.Where(remotelink.UserID(u.ID))
	case it.LinkID != nil:
		q = q.Where(remotelink.ID(*it.LinkID))
	default:
		return nil, nil
	}
	if l, err = q.Only(ctx); err != nil && !ent.IsNotFound(err) {
		return nil, fmt.Errorf("preview: read link: %w", err)
	}
	if u == nil && l == nil {
		return nil, nil
	}
	st, err := provision.PlanStored(ctx, c, in, u, l, now)
	if err != nil {
		return nil, err
	}
	e := &entry{stored: st, item: &model.PlanItem{Changes: []*model.AttributeDiff{}}}
	if u != nil {
		e.item.User = u.Unwrap()
	}
	p := st.Plan
	name := st.Desired.Decision.UPN
	if name == "" && l != nil {
		name = l.Upn
	}
	if name != "" {
		e.item.Name = &name
	}
	if st.Link.RemoteID != "" {
		e.item.RemoteID = ptr(st.Link.RemoteID)
	}
	if p.Reason != "" && p.Reason != "unchanged" {
		e.item.Reason = ptr(p.Reason)
	}
	switch p.Action {
	case provision.Nothing:
		switch p.StatusAfter {
		case provision.StatusOutOfScope:
			e.item.Action = model.PlanActionOutOfScope
		case provision.StatusError:
			e.item.Action, e.item.ErrorCode = model.PlanActionError, ptr(st.ErrorCode)
		default:
			e.item.Action = model.PlanActionUnchanged
		}
	case provision.Disable:
		e.item.Action = model.PlanActionDisable
	case provision.Patch:
		e.read = st.Link.RemoteID
		enable, has := p.Body["accountEnabled"].(bool)
		switch {
		case provision.IsDisable(p, st.Link):
			e.item.Action = model.PlanActionDisable
		case has && enable && (st.Link.RemoteEnabled == nil || !*st.Link.RemoteEnabled):
			e.item.Action = model.PlanActionEnable
		default:
			e.item.Action = model.PlanActionUpdate
		}
	case provision.LookupThenCreateOrTakeOver:
		e.lookup = st.Desired.Decision.UPN
		e.item.Action = model.PlanActionCreate
	}
	return e, nil
}

func planGroup(ctx context.Context, c *ent.Client, in *ent.Integration, groupID pulid.ID) (*entry, error) {
	g, err := c.UserGroup.Query().Where(usergroup.ID(groupID)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, fmt.Errorf("preview: read group: %w", err)
	}
	l, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.KindEQ(remotelink.KindGROUP),
		remotelink.GroupID(groupID)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, fmt.Errorf("preview: read group link: %w", err)
	}
	bound := false
	if g != nil {
		if bound, err = c.GroupBinding.Query().Where(groupbinding.IntegrationID(in.ID), groupbinding.GroupID(groupID)).Exist(ctx); err != nil {
			return nil, fmt.Errorf("preview: read group binding: %w", err)
		}
	}
	e := &entry{groupLink: l, item: &model.PlanItem{Changes: []*model.AttributeDiff{}}}
	if g != nil {
		e.item.Group = g.Unwrap()
		e.item.Name = ptr(g.Name)
	}
	if l != nil && l.RemoteID != "" {
		e.item.RemoteID = ptr(l.RemoteID)
	}
	switch {
	case g == nil || !bound || !in.GroupManagement:
		// G1, G4: stop managing; the remote group is never deleted.
		e.item.Action = model.PlanActionOutOfScope
		e.item.Reason = ptr("no longer managed: the remote group and its members are left as they are")
	case l != nil && l.RemoteID != "":
		e.item.Action = model.PlanActionUnchanged
		if l.AppliedHash != groupsync.Hash(g.Name, g.Description) {
			e.item.Action = model.PlanActionUpdate
			e.item.Changes = append(e.item.Changes, &model.AttributeDiff{Property: "displayName",
				RemoteValue: jsonPtr(l.DisplayName), NewValue: jsonPtr(g.Name)})
		}
		e.item.Reason = ptr("membership follows the directory")
	default:
		e.group = g.Name
		e.item.Action = model.PlanActionCreate
	}
	return e, nil
}

// readTenant reads, per integration, what the plans need from the tenant
// in $batch calls of GET requests, and settles CREATE versus TAKEOVER and
// the attribute differences. It returns the number of HTTP calls.
func (s *Service) readTenant(ctx context.Context, entries []*entry) (int, error) {
	byIn := map[pulid.ID][]*entry{}
	var order []pulid.ID
	for _, e := range entries {
		if e.lookup == "" && e.read == "" && e.group == "" {
			continue
		}
		if _, ok := byIn[e.in.ID]; !ok {
			order = append(order, e.in.ID)
		}
		byIn[e.in.ID] = append(byIn[e.in.ID], e)
	}
	calls := 0
	for _, id := range order {
		es := byIn[id]
		in := es[0].in
		var gc *msgraph.Client
		var err error
		if s.tenants == nil {
			err = errors.New("preview: no tenant connector configured")
		} else {
			gc, err = s.tenants.Client(in)
		}
		if err != nil {
			for _, e := range es {
				fail(e, provision.CodeIntegrationSettings, err.Error())
			}
			continue
		}
		n, err := s.readIntegration(ctx, gc, in, es)
		calls += n
		if err != nil {
			for _, e := range es {
				fail(e, "GRAPH_UNAVAILABLE", err.Error())
			}
		}
	}
	return calls, nil
}

func fail(e *entry, code, msg string) {
	e.item.Action, e.item.ErrorCode, e.item.Reason = model.PlanActionError, ptr(code), ptr(msg)
}

// userSelect is what a lookup reads: the properties the plans write plus
// what a TAKEOVER shows.
func userSelect(es []*entry) []string {
	set := map[string]bool{"id": true, "userPrincipalName": true, "displayName": true, "accountEnabled": true}
	for _, e := range es {
		for k := range e.stored.Plan.Body {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Service) readIntegration(ctx context.Context, gc *msgraph.Client, in *ent.Integration, es []*entry) (int, error) {
	sel := strings.Join(userSelect(es), ",")
	var reqs []msgraph.BatchRequest
	var upns []string
	seen := map[string]bool{}
	for _, e := range es {
		switch {
		case e.lookup != "":
			if k := strings.ToLower(e.lookup); !seen[k] {
				seen[k] = true
				upns = append(upns, e.lookup)
			}
		case e.read != "":
			reqs = append(reqs, msgraph.BatchRequest{ID: "u" + fmt.Sprint(len(reqs)), Method: "GET",
				URL: "/users/" + url.PathEscape(e.read) + "?$select=" + sel})
		case e.group != "":
			f := msgraph.Eq("displayName", e.group)
			reqs = append(reqs, msgraph.BatchRequest{ID: "g" + fmt.Sprint(len(reqs)), Method: "GET",
				URL: "/groups?$filter=" + url.QueryEscape(f) + "&$select=id,displayName,description,mailEnabled,securityEnabled,groupTypes&$top=999"})
		}
	}
	readIdx := len(reqs)
	for chunk := range slices.Chunk(upns, upnsPerFilter) {
		lits := make([]string, len(chunk))
		for i, u := range chunk {
			lits[i] = msgraph.Literal(u)
		}
		f := "userPrincipalName in (" + strings.Join(lits, ",") + ")"
		reqs = append(reqs, msgraph.BatchRequest{ID: "l" + fmt.Sprint(len(reqs)), Method: "GET",
			URL: "/users?$filter=" + url.QueryEscape(f) + "&$select=" + sel + "&$top=999"})
	}
	if len(reqs) == 0 {
		return 0, nil
	}
	calls := (len(reqs) + 19) / 20
	res, err := gc.Batch(ctx, reqs)
	if err != nil {
		return calls, err
	}
	found := map[string]map[string]any{}
	var lookupErr error
	for i, r := range res {
		switch {
		case i >= readIdx:
			var page struct {
				Value []map[string]any `json:"value"`
			}
			if err := r.Decode(&page); err != nil {
				lookupErr = err
				continue
			}
			for _, u := range page.Value {
				if upn, _ := u["userPrincipalName"].(string); upn != "" {
					found[strings.ToLower(upn)] = u
				}
			}
		}
	}
	// Which remote ids are linked already (a TAKEOVER of a linked account is
	// refused per item, REMOTE_USER_LINKED).
	var foundIDs []string
	for _, u := range found {
		if id, _ := u["id"].(string); id != "" {
			foundIDs = append(foundIDs, id)
		}
	}
	held := map[string]*ent.RemoteLink{}
	if len(foundIDs) > 0 {
		ls, err := s.client.RemoteLink.Query().Where(remotelink.IntegrationID(in.ID), remotelink.RemoteIDIn(foundIDs...)).All(ctx)
		if err != nil {
			return calls, fmt.Errorf("preview: read links: %w", err)
		}
		for _, l := range ls {
			held[l.RemoteID] = l
		}
	}
	ri := 0
	for _, e := range es {
		switch {
		case e.lookup != "":
			if lookupErr != nil {
				failGraph(e, lookupErr)
				continue
			}
			u, ok := found[strings.ToLower(e.lookup)]
			if !ok {
				continue // CREATE
			}
			id, _ := u["id"].(string)
			dn, _ := u["displayName"].(string)
			e.item.RemoteID, e.item.RemoteDisplayName = ptr(id), ptr(dn)
			if h := held[id]; h != nil && (e.item.User == nil || h.UserID == nil || *h.UserID != e.item.User.ID) {
				fail(e, provision.CodeRemoteUserLinked, fmt.Sprintf("the remote user %s (%s) is already provisioned for another directory user", id, e.lookup))
				continue
			}
			e.item.Action = model.PlanActionTakeover
			// The plan a takeover writes (P2: a staged user's accountEnabled is left alone).
			en, _ := u["accountEnabled"].(bool)
			l := e.stored.Link
			l.RemoteID, l.TakenOver, l.AppliedHash, l.RemoteEnabled = id, true, "", &en
			p := provision.Decide(e.stored.Desired, l)
			e.item.Changes = diffs(p.Body, u)
		case e.read != "":
			r := res[ri]
			ri++
			var remote map[string]any
			if err := r.Decode(&remote); err != nil {
				if msgraph.IsNotFound(err) {
					e.item.Action = model.PlanActionCreate
					e.item.Reason = ptr("the linked remote user no longer exists: it would be looked up and created again")
					continue
				}
				failGraph(e, err)
				continue
			}
			e.item.Changes = diffs(e.stored.Plan.Body, remote)
		case e.group != "":
			r := res[ri]
			ri++
			var page struct {
				Value []msgraph.Group `json:"value"`
			}
			if err := r.Decode(&page); err != nil {
				failGraph(e, err)
				continue
			}
			var security []msgraph.Group
			for _, g := range page.Value {
				if g.DisplayName == e.group && groupsync.IsSecurityGroup(g) {
					security = append(security, g)
				}
			}
			switch len(security) {
			case 0:
			case 1:
				e.item.Action = model.PlanActionTakeover
				e.item.RemoteID, e.item.RemoteDisplayName = ptr(security[0].ID), ptr(security[0].DisplayName)
			default:
				e.item.Reason = ptr(fmt.Sprintf("%d security groups named %q exist: a new one would be created", len(security), e.group))
			}
		}
	}
	return calls, nil
}

func failGraph(e *entry, err error) {
	code := "GRAPH_ERROR"
	var ge *msgraph.Error
	if errors.As(err, &ge) && ge.Code != "" {
		code = ge.Code
	}
	fail(e, code, err.Error())
}

// diffs lists the properties of body whose remote value differs (the
// reconcile's own provision.Drift), with both values as JSON.
func diffs(body, remote map[string]any) []*model.AttributeDiff {
	out := []*model.AttributeDiff{}
	for _, k := range provision.Drift(body, remote) {
		out = append(out, &model.AttributeDiff{Property: k, RemoteValue: jsonValue(remote[k]), NewValue: jsonValue(body[k])})
	}
	return out
}

func jsonValue(v any) *string {
	if v == nil {
		return nil
	}
	if s, ok := v.(string); ok && s == "" {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	s := string(b)
	return &s
}

func jsonPtr(s string) *string { return jsonValue(s) }

func ptr(s string) *string { return &s }

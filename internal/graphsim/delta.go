package graphsim

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

const defaultDeltaPageSize = 100

// deltaState is what a delta or skip token stands for: the changes of one
// kind of object after seq since (a deltaLink) or the rest of a round in
// progress (a nextLink: ids left to send, and the watermark the round ends at).
type deltaState struct {
	kind    objKind
	since   int64
	upto    int64
	ids     []string // nil for a deltaLink
	skip    int      // members@delta entries of ids[0] already sent (a big group split over pages)
	sel     []string // nil: default properties
	members bool     // groups: members@delta wanted
	filter  []string // ids of an `id eq` filter; nil: all
	issued  time.Time
}

func (c *call) userDelta() (*reply, *graphError)  { return c.delta(userDef) }
func (c *call) groupDelta() (*reply, *graphError) { return c.delta(groupDef) }

// resync answers an unknown or expired delta/skip token.
func (c *call) resync(d *entityDef) *graphError {
	if c.s.cfg.DeltaResync400 {
		return gerr(http.StatusBadRequest, codeSyncStateNotFound, "The sync state generation is not found. Please perform a full resync.")
	}
	e := gerr(http.StatusGone, codeResyncRequired, "Resync required. Replace any local cached data with the full delta sync from the provided Location header.")
	e.header = http.Header{"Location": {c.base + "/" + d.set + "/delta"}}
	return e
}

func (c *call) delta(d *entityDef) (*reply, *graphError) {
	q := c.query
	for _, opt := range []string{"$top", "$expand", "$orderby", "$search", "$count", "$skip"} {
		if _, ok := q[opt]; ok {
			return nil, unsupportedQuery("The query parameter '" + opt + "' is not supported with change tracking over the '" + d.set + "' resource.")
		}
	}
	if err := rejectOptions(q, "$select", "$filter", "$deltatoken", "$skiptoken"); err != nil {
		return nil, err
	}
	pageSize := defaultDeltaPageSize
	if v := c.r.Header.Get("Prefer"); v != "" {
		for _, p := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(strings.TrimSpace(p), "odata.maxpagesize="); ok {
				if k, err := strconv.Atoi(n); err == nil && k >= 1 && k <= maxPageSize {
					pageSize = k
				}
			}
		}
	}
	t := c.t
	c.pruneDelta()
	var st *deltaState
	switch {
	case q.Get("$skiptoken") != "":
		st = t.deltas[q.Get("$skiptoken")]
		if st == nil || st.kind != d.kind || st.ids == nil || c.now.Sub(st.issued) > c.s.cfg.DeltaTokenLifetime {
			return nil, c.resync(d)
		}
	case q.Get("$deltatoken") == "latest":
		sel, members, err := deltaSelect(q, d)
		if err != nil {
			return nil, err
		}
		link := c.newDeltaLink(&deltaState{kind: d.kind, since: t.seq, sel: sel, members: members})
		return jsonReply(http.StatusOK, map[string]any{"@odata.context": c.context(d.set, sel, false),
			"value": []any{}, "@odata.deltaLink": link}), nil
	case q.Get("$deltatoken") != "":
		prev := t.deltas[q.Get("$deltatoken")]
		if prev == nil || prev.kind != d.kind || prev.ids != nil || c.now.Sub(prev.issued) > c.s.cfg.DeltaTokenLifetime {
			return nil, c.resync(d)
		}
		st = c.startRound(d, prev.since, prev.sel, prev.members, prev.filter)
	default:
		sel, members, err := deltaSelect(q, d)
		if err != nil {
			return nil, err
		}
		var filter []string
		if v := q.Get("$filter"); v != "" {
			e, err := parseFilter(v)
			if err != nil {
				return nil, err
			}
			if e, err = checkFilter(e, d, false, true); err != nil {
				return nil, err
			}
			filter = filterIDs(e)
		}
		st = c.startRound(d, 0, sel, members, filter)
	}

	values := []map[string]any{}
	queue, skip := st.ids, st.skip
	for len(values) < pageSize && len(queue) > 0 {
		v, more := c.deltaItem(d, st, queue[0], skip)
		if v != nil {
			values = append(values, v)
		}
		if more > 0 { // the rest of this group's members goes on the next page
			skip = more
			break
		}
		queue, skip = queue[1:], 0
	}
	body := map[string]any{"@odata.context": c.context(d.set, st.sel, false), "value": values}
	if len(queue) > 0 {
		next := *st
		next.ids, next.skip = slices.Clone(queue), skip
		body["@odata.nextLink"] = c.base + "/" + d.set + "/delta?$skiptoken=" + c.storeDelta(&next)
	} else {
		body["@odata.deltaLink"] = c.newDeltaLink(&deltaState{kind: d.kind, since: st.upto, sel: st.sel,
			members: st.members, filter: st.filter})
	}
	return jsonReply(http.StatusOK, body), nil
}

// deltaSelect parses $select of a delta query; for groups "members" asks for
// members@delta (also sent when $select is absent).
func deltaSelect(q map[string][]string, d *entityDef) ([]string, bool, *graphError) {
	raw, ok := q["$select"]
	if !ok {
		return nil, d.kind == kindGroup, nil
	}
	members := false
	var rest []string
	for _, p := range strings.Split(strings.Join(raw, ","), ",") {
		if d.kind == kindGroup && strings.EqualFold(strings.TrimSpace(p), "members") {
			members = true
			continue
		}
		rest = append(rest, p)
	}
	sel, err := parseSelect(map[string][]string{"$select": {strings.Join(rest, ",")}}, d)
	if err != nil {
		return nil, false, err
	}
	if sel == nil {
		sel = []string{"id"}
	} else if !slices.Contains(sel, "id") {
		sel = append(sel, "id")
	}
	return sel, members, nil
}

func filterIDs(e expr) []string {
	switch x := e.(type) {
	case boolExpr:
		return append(filterIDs(x.l), filterIDs(x.r)...)
	case cmpExpr:
		return []string{strings.ToLower(x.val.s)}
	}
	return nil
}

// startRound lists the objects of kind d changed after since (all live ones
// when since is 0), in change order. Objects hidden by replication delay are
// left out and the round's watermark stops before them, so the next round
// brings them (with possible replays, which Graph allows).
func (c *call) startRound(d *entityDef, since int64, sel []string, members bool, filter []string) *deltaState {
	t := c.t
	st := &deltaState{kind: d.kind, since: since, upto: t.seq, sel: sel, members: members, filter: filter, ids: []string{}}
	type item struct {
		id  string
		seq int64
	}
	var items []item
	consider := func(o *object) {
		if o.kind != d.kind || o.seq <= since || filter != nil && !slices.Contains(filter, o.id) {
			return
		}
		if !o.deleted && !o.visible(c.now) {
			st.upto = min(st.upto, o.seq-1)
			return
		}
		items = append(items, item{o.id, o.seq})
	}
	live := t.users
	if d.kind == kindGroup {
		live = t.groups
	}
	for _, o := range live {
		consider(o)
	}
	if since > 0 {
		for _, o := range t.tombs {
			consider(o)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	for _, it := range items {
		st.ids = append(st.ids, it.id)
	}
	return st
}

// deltaItem renders one object of a delta page. A group whose members@delta
// would exceed Config.DeltaMembersPerPage gets only a slice of it, starting
// at skip; more is where the next slice starts (0: none left).
func (c *call) deltaItem(d *entityDef, st *deltaState, id string, skip int) (item map[string]any, more int) {
	t := c.t
	o := t.object(id)
	if o == nil || o.kind != d.kind {
		tomb := t.tombs[id]
		if tomb == nil {
			return nil, 0
		}
		reason := "changed" // users go to deleted items, restorable for 30 days
		if d.kind == kindGroup {
			reason = "deleted" // security groups are deleted for good
		}
		return map[string]any{"id": id, "@removed": map[string]any{"reason": reason}}, 0
	}
	m := o.render(st.sel)
	if d.kind == kindGroup && st.members {
		all := c.membersDelta(o, st)
		skip = min(skip, len(all))
		end := min(skip+c.s.cfg.DeltaMembersPerPage, len(all))
		m["members@delta"] = all[skip:end]
		if end < len(all) {
			more = end
		}
	}
	return m, more
}

// membersDelta lists a group's members for members@delta: all of them in an
// initial round, else the additions and removals since the watermark.
func (c *call) membersDelta(g *object, st *deltaState) []map[string]any {
	typeOf := func(id string) string {
		o := c.t.object(id)
		if o == nil {
			o = c.t.tombs[id]
		}
		if o != nil && o.kind == kindGroup {
			return "#microsoft.graph.group"
		}
		return "#microsoft.graph.user"
	}
	out := []map[string]any{}
	if st.since == 0 {
		for _, id := range g.members {
			out = append(out, map[string]any{"@odata.type": typeOf(id), "id": id})
		}
		return out
	}
	last := map[string]bool{} // id → removed
	var order []string
	for _, ev := range g.memberLog {
		if ev.seq <= st.since {
			continue
		}
		if _, seen := last[ev.id]; !seen {
			order = append(order, ev.id)
		}
		last[ev.id] = ev.removed
	}
	for _, id := range order {
		m := map[string]any{"@odata.type": typeOf(id), "id": id}
		if last[id] {
			m["@removed"] = map[string]any{"reason": "deleted"}
		}
		out = append(out, m)
	}
	return out
}

func (c *call) storeDelta(st *deltaState) string {
	st.issued = c.now
	tok := strings.ReplaceAll(c.s.newSecret(), "~", "") + strings.ReplaceAll(c.s.newID(), "-", "")
	c.t.deltas[tok] = st
	return tok
}

func (c *call) newDeltaLink(st *deltaState) string {
	return c.base + "/" + defOf(st.kind).set + "/delta?$deltatoken=" + c.storeDelta(st)
}

// pruneDelta forgets tokens past their lifetime, so state stays bounded.
func (c *call) pruneDelta() {
	if len(c.t.deltas) < 1024 {
		return
	}
	for k, st := range c.t.deltas {
		if c.now.Sub(st.issued) > c.s.cfg.DeltaTokenLifetime {
			delete(c.t.deltas, k)
		}
	}
}

// ExpireDeltaTokens makes every delta and skip token issued so far unknown,
// so the next use answers the resync error (410 Gone, or 400 syncStateNotFound).
func (s *Sim) ExpireDeltaTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tenants {
		t.deltas = map[string]*deltaState{}
	}
}

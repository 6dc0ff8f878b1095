package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

const (
	maxAdvancedURL  = 2048
	defaultPageSize = 100
	maxPageSize     = 999
)

// listQuery is a parsed collection query.
type listQuery struct {
	def     *entityDef
	sel     []string // nil: default properties
	top     int
	filter  expr
	search  []searchClause
	orderBy string
	desc    bool
	count   bool
	cursor  *cursor
}

type cursor struct {
	Key string `json:"k"`
	ID  string `json:"i"`
}

// parseSelect parses $select against d; nil when absent.
func parseSelect(q url.Values, d *entityDef) ([]string, *graphError) {
	raw, ok := q["$select"]
	if !ok {
		return nil, nil
	}
	var sel []string
	for _, part := range strings.Split(strings.Join(raw, ","), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, _, found := d.canonical(part)
		if !found {
			return nil, badRequest("Parsing OData Select and Expand failed: Could not find a property named '" + part + "' on type '" + d.typeName + "'.")
		}
		if !slices.Contains(sel, n) {
			sel = append(sel, n)
		}
	}
	if len(sel) == 0 {
		return nil, nil
	}
	return sel, nil
}

// rejectOptions answers 400 for system query options the endpoint does not take.
func rejectOptions(q url.Values, allowed ...string) *graphError {
	for k := range q {
		if !strings.HasPrefix(k, "$") || slices.Contains(allowed, k) {
			continue
		}
		switch k {
		case "$skip":
			return badRequest("'$skip' is not supported by the service.")
		case "$expand":
			return badRequest("Parsing OData Select and Expand failed: $expand is not supported by this endpoint of the emulator.")
		}
		return odataBadRequest("Query option '" + k + "' is not allowed. The query specified in the URI is not valid.")
	}
	return nil
}

// parseListQuery parses the query options of GET /users, /groups and
// /groups/{id}/members.
func (c *call) parseListQuery(d *entityDef) (*listQuery, *graphError) {
	q := c.query
	if err := rejectOptions(q, "$select", "$top", "$filter", "$search", "$orderby", "$count", "$skiptoken", "$format"); err != nil {
		return nil, err
	}
	lq := &listQuery{def: d, top: defaultPageSize}
	var err *graphError
	if lq.sel, err = parseSelect(q, d); err != nil {
		return nil, err
	}
	if v, ok := q["$top"]; ok {
		n, perr := strconv.Atoi(strings.TrimSpace(v[0]))
		if perr != nil || n < 1 || n > maxPageSize {
			return nil, badRequest("Invalid page size specified: '" + v[0] + "'. Must be between 1 and 999 inclusive.")
		}
		lq.top = n
	}
	if v, ok := q["$count"]; ok {
		switch strings.ToLower(v[0]) {
		case "true":
			lq.count = c.eventual // silently ignored without ConsistencyLevel
		case "false":
		default:
			return nil, odataBadRequest("'" + v[0] + "' is not a valid count option.")
		}
	}
	advanced := c.eventual && lq.count
	if advanced && len(c.r.URL.RequestURI())+len(c.base) > maxAdvancedURL {
		// Graph's known limit for advanced queries: the URL, not the clause count.
		return nil, badRequest("The request URL exceeds the maximum length of 2048 characters for advanced queries.")
	}
	if v := q.Get("$filter"); v != "" {
		e, err := parseFilter(v)
		if err != nil {
			return nil, err
		}
		if lq.filter, err = checkFilter(e, d, advanced, false); err != nil {
			return nil, err
		}
	}
	if v, ok := q["$search"]; ok {
		if !c.eventual {
			return nil, unsupportedQuery("Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
		}
		if lq.search, err = parseSearch(v[0], d); err != nil {
			return nil, err
		}
	}
	if v := strings.TrimSpace(q.Get("$orderby")); v != "" {
		name, dir, _ := strings.Cut(v, " ")
		n, def, ok := d.canonical(strings.TrimSpace(name))
		if !ok {
			return nil, d.noSuchProperty(name)
		}
		switch strings.ToLower(strings.TrimSpace(dir)) {
		case "", "asc":
		case "desc":
			lq.desc = true
		default:
			return nil, odataBadRequest("Syntax error at position " + strconv.Itoa(len(name)+1) + " in '" + v + "'.")
		}
		if !advanced && (!def.orderBy || lq.filter != nil || lq.desc) {
			return nil, unsupportedQuery("Sorting not supported for current query.")
		}
		if def.typ != pString && def.typ != pDateTime {
			return nil, unsupportedQuery("Sorting not supported for current query.")
		}
		lq.orderBy = n
	}
	if v := q.Get("$skiptoken"); v != "" {
		b, derr := base64.RawURLEncoding.DecodeString(v)
		var cur cursor
		if derr != nil || json.Unmarshal(b, &cur) != nil || cur.ID == "" {
			return nil, badRequest("Invalid continuation token '" + v + "'.")
		}
		lq.cursor = &cur
	}
	return lq, nil
}

func (lq *listQuery) key(o *object) string {
	if lq.orderBy == "" {
		return ""
	}
	s, _ := o.props[lq.orderBy].(string)
	return strings.ToLower(s)
}

// page filters, orders and pages objs and builds the collection answer.
func (c *call) page(lq *listQuery, objs []*object, context string, typed bool) *reply {
	matched := objs[:0:0]
	for _, o := range objs {
		if !o.visible(c.now) {
			continue
		}
		if lq.filter != nil && !matches(lq.filter, o) {
			continue
		}
		if lq.search != nil && !searchMatches(lq.search, o) {
			continue
		}
		matched = append(matched, o)
	}
	less := func(a, b *object) bool {
		ka, kb := lq.key(a), lq.key(b)
		if ka != kb {
			return (ka < kb) != lq.desc
		}
		return (a.id < b.id) != lq.desc
	}
	sort.Slice(matched, func(i, j int) bool { return less(matched[i], matched[j]) })
	start := 0
	if cur := lq.cursor; cur != nil {
		start = sort.Search(len(matched), func(i int) bool {
			k, id := lq.key(matched[i]), matched[i].id
			if k != cur.Key {
				return (k > cur.Key) != lq.desc
			}
			return (id > cur.ID) != lq.desc
		})
	}
	end := min(start+lq.top, len(matched))
	values := make([]map[string]any, 0, end-start)
	for _, o := range matched[start:end] {
		m := o.render(lq.sel)
		if typed {
			m["@odata.type"] = "#" + defOf(o.kind).typeName
		}
		values = append(values, m)
	}
	body := map[string]any{"@odata.context": context, "value": values}
	if lq.count {
		body["@odata.count"] = len(matched)
	}
	if end < len(matched) {
		last := matched[end-1]
		tok, _ := json.Marshal(cursor{Key: lq.key(last), ID: last.id})
		body["@odata.nextLink"] = c.link(map[string]string{"$skiptoken": base64.RawURLEncoding.EncodeToString(tok)})
	}
	return jsonReply(http.StatusOK, body)
}

// link is the absolute URL of this request with the given query options
// replaced, keeping '$' literal as Graph does.
func (c *call) link(set map[string]string) string {
	keys := make([]string, 0, len(c.query))
	for k := range c.query {
		if _, replaced := set[k]; !replaced {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(c.base)
	for _, s := range c.segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	sep := byte('?')
	add := func(k, v string) {
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(strings.ReplaceAll(url.QueryEscape(k), "%24", "$"))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	for _, k := range keys {
		for _, v := range c.query[k] {
			add(k, v)
		}
	}
	setKeys := make([]string, 0, len(set))
	for k := range set {
		setKeys = append(setKeys, k)
	}
	sort.Strings(setKeys)
	for _, k := range setKeys {
		add(k, set[k])
	}
	return b.String()
}

// searchClause is one "property:term" of $search; clauses are ANDed unless
// joined by OR (or: true starts a new alternative).
type searchClause struct {
	prop  string
	terms []string
	or    bool
}

func parseSearch(raw string, d *entityDef) ([]searchClause, *graphError) {
	bad := func() *graphError {
		return badRequest("Syntax error: character '" + raw + "' is not valid in a $search query. Use \"property:value\" clauses in double quotes.")
	}
	var out []searchClause
	rest := strings.TrimSpace(raw)
	or := false
	for rest != "" {
		if !strings.HasPrefix(rest, "\"") {
			return nil, bad()
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, bad()
		}
		clause := rest[1 : end+1]
		rest = strings.TrimSpace(rest[end+2:])
		prop, term, ok := strings.Cut(clause, ":")
		if !ok {
			return nil, bad()
		}
		n, def, found := d.canonical(strings.TrimSpace(prop))
		if !found {
			return nil, d.noSuchProperty(prop)
		}
		if !def.search {
			return nil, unsupportedQuery("Unsupported or invalid query filter clause specified for property '" + n + "' of resource '" + d.resource + "'.")
		}
		out = append(out, searchClause{prop: n, terms: searchTokens(term), or: or})
		or = false
		if rest == "" {
			break
		}
		word, after, _ := strings.Cut(rest, " ")
		switch word {
		case "AND":
		case "OR":
			or = true
		default:
			return nil, bad()
		}
		rest = strings.TrimSpace(after)
		if rest == "" {
			return nil, bad()
		}
	}
	return out, nil
}

// searchTokens splits text the way Graph's directory search tokenizes it:
// on spaces and symbols and on lower→upper case changes.
func searchTokens(s string) []string {
	var toks []string
	var cur []rune
	var prev rune
	flush := func() {
		if len(cur) > 0 {
			toks = append(toks, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	for _, r := range s {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
		prev = r
	}
	flush()
	return toks
}

func searchMatches(clauses []searchClause, o *object) bool {
	result := false
	cur := true
	for i, c := range clauses {
		if i > 0 && c.or {
			result = result || cur
			cur = true
		}
		cur = cur && clauseMatches(c, o)
	}
	return result || cur
}

func clauseMatches(c searchClause, o *object) bool {
	s, _ := o.props[c.prop].(string)
	if s == "" {
		return false
	}
	have := searchTokens(s)
	for _, t := range c.terms {
		ok := strings.HasPrefix(strings.ToLower(s), t)
		for _, h := range have {
			ok = ok || strings.HasPrefix(h, t)
		}
		if !ok {
			return false
		}
	}
	return true
}

package graphsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func itoa(i int) string { return strconv.Itoa(i) }

// call is one Graph request being served.
type call struct {
	s        *Sim
	r        *http.Request
	t        *tenant
	a        *app
	now      time.Time
	base     string // scheme://host/v1.0, for @odata.nextLink
	eventual bool   // ConsistencyLevel: eventual
	segs     []string
	query    url.Values
	body     []byte
}

// reply is a handler's successful answer, written after the state lock is released.
type reply struct {
	status int
	body   any    // JSON body; nil for none
	text   string // text/plain body when body is nil
	header http.Header
}

func jsonReply(status int, body any) *reply { return &reply{status: status, body: body} }

var noContent = &reply{status: http.StatusNoContent}

// route is a resolved Graph endpoint.
type route struct {
	handle func(c *call) (*reply, *graphError)
	write  bool
	ru     int      // base cost in resource units
	perms  []string // any one of them grants access
}

// RequestLog is one entry of the request log.
type RequestLog struct {
	Time            time.Time `json:"time"`
	Method          string    `json:"method"`
	Path            string    `json:"path"`
	Query           string    `json:"query,omitempty"`
	Status          int       `json:"status"`
	Throttled       bool      `json:"throttled,omitempty"`
	Fault           string    `json:"fault,omitempty"` // "5xx", "429" when injected
	Batch           bool      `json:"batch,omitempty"` // an inner request of a $batch
	TenantID        string    `json:"tenantId,omitempty"`
	ClientID        string    `json:"clientId,omitempty"`
	RequestID       string    `json:"requestId,omitempty"`
	ClientRequestID string    `json:"clientRequestId,omitempty"`
	ResourceUnits   int       `json:"resourceUnits,omitempty"`
}

func (s *Sim) logRequest(rec RequestLog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqLog) < s.cfg.RequestLogSize {
		s.reqLog = append(s.reqLog, rec)
		return
	}
	s.reqLog[s.reqNext] = rec
	s.reqNext = (s.reqNext + 1) % len(s.reqLog)
}

// Requests returns the request log, oldest first (token and Graph requests,
// inner $batch requests included; admin requests are not logged).
func (s *Sim) Requests() []RequestLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RequestLog, 0, len(s.reqLog))
	out = append(out, s.reqLog[s.reqNext:]...)
	return append(out, s.reqLog[:s.reqNext]...)
}

// ClearRequests empties the request log.
func (s *Sim) ClearRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqLog, s.reqNext = nil, 0
}

// serveGraphOuter serves a Graph request arriving over HTTP (as opposed to
// an inner request of a $batch).
func (s *Sim) serveGraphOuter(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	if f.LatencyBase > 0 || f.LatencyJitter > 0 {
		d := f.LatencyBase
		if f.LatencyJitter > 0 {
			d += time.Duration(s.randFloat() * float64(f.LatencyJitter))
		}
		sleep(r.Context(), d)
	}
	base := "http://" + r.Host + "/v1.0"
	if r.TLS != nil {
		base = "https://" + r.Host + "/v1.0"
	}
	if segs := splitPath(strings.TrimPrefix(r.URL.EscapedPath(), "/v1.0")); len(segs) == 1 && segs[0] == "$batch" {
		s.serveBatch(w, r, base)
		return
	}
	s.serveGraph(w, r, base, false)
}

// serveGraph runs the Graph pipeline: ids, auth, routing, faults,
// throttling, permissions, the handler, the request log.
func (s *Sim) serveGraph(w http.ResponseWriter, r *http.Request, base string, inBatch bool) {
	reqID := s.newID()
	clientReqID := r.Header.Get("client-request-id")
	if clientReqID == "" {
		clientReqID = reqID
	}
	h := w.Header()
	h.Set("request-id", reqID)
	h.Set("client-request-id", clientReqID)
	rec := RequestLog{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Batch: inBatch,
		RequestID: reqID, ClientRequestID: clientReqID}

	body, err := readBody(r)
	var rep *reply
	if err == nil {
		rep, err = s.handleGraph(r, base, body, &rec)
	}
	rec.Time = s.now()
	if err != nil {
		rec.Status = err.status
		s.writeGraphError(w, err, rec)
	} else {
		rec.Status = rep.status
		for k, v := range rep.header {
			h[k] = v
		}
		switch {
		case rep.body != nil:
			writeJSON(w, rep.status, rep.body)
		case rep.text != "":
			h.Set("Content-Type", "text/plain")
			w.WriteHeader(rep.status)
			_, _ = io.WriteString(w, rep.text)
		default:
			w.WriteHeader(rep.status)
		}
	}
	s.logRequest(rec)
}

func (s *Sim) writeGraphError(w http.ResponseWriter, e *graphError, rec RequestLog) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	writeJSON(w, e.status, errorBody{Error: errorObject{Code: e.code, Message: e.message, Details: e.details,
		InnerError: innerError{Date: rec.Time.UTC().Format("2006-01-02T15:04:05"), RequestID: rec.RequestID,
			ClientRequestID: rec.ClientRequestID}}})
}

// handleGraph does the work of serveGraph under the state lock.
func (s *Sim) handleGraph(r *http.Request, base string, body []byte, rec *RequestLog) (*reply, *graphError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, a, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	rec.TenantID, rec.ClientID = t.id, a.clientID
	c := &call{s: s, r: r, t: t, a: a, now: s.now(), base: base, body: body,
		eventual: strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual")}
	c.segs = splitPath(strings.TrimPrefix(r.URL.EscapedPath(), "/v1.0"))
	q, perr := url.ParseQuery(r.URL.RawQuery)
	if perr != nil {
		return nil, odataBadRequest("The query specified in the URI is not valid. " + perr.Error())
	}
	c.query = normalizeQuery(q)

	rt, rerr := c.route()
	if rerr != nil {
		return nil, rerr
	}
	if f := s.injectFault(t, a); f != nil {
		rec.Fault = f.fault
		if f.err.status == http.StatusTooManyRequests {
			rec.Throttled = true
		}
		return nil, f.err
	}
	ru := c.cost(rt)
	rec.ResourceUnits = ru
	hdr, terr := s.throttle.take(t, a, ru, rt.write, c.now)
	if terr != nil {
		rec.Throttled = true
		return nil, terr
	}
	if len(rt.perms) > 0 && !a.has(rt.perms...) {
		return nil, &graphError{status: http.StatusForbidden, code: codeDenied, message: msgDenied, header: hdr}
	}
	rep, herr := rt.handle(c)
	if herr != nil {
		herr.header = withHeaders(herr.header, hdr)
		return nil, herr
	}
	rep.header = withHeaders(rep.header, hdr)
	return rep, nil
}

// withHeaders adds the throttling headers of a request to an answer's own.
func withHeaders(own, add http.Header) http.Header {
	if own == nil {
		return add
	}
	for k, v := range add {
		own[k] = v
	}
	return own
}

// splitPath splits an escaped path into unescaped segments.
func splitPath(p string) []string {
	var segs []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		if s == "" {
			continue
		}
		u, err := url.PathUnescape(s)
		if err != nil {
			u = s
		}
		segs = append(segs, u)
	}
	return segs
}

// normalizeQuery lower-cases system query option names ($TOP → $top), as
// Graph treats them case-insensitively.
func normalizeQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if strings.HasPrefix(k, "$") {
			k = strings.ToLower(k)
		}
		out[k] = append(out[k], v...)
	}
	return out
}

// decodeBody parses the JSON request body into an object.
func (c *call) decodeBody() (map[string]any, *graphError) {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return nil, odataBadRequest("Empty Payload. JSON content expected.")
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, odataBadRequest("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
	}
	return m, nil
}

func methodNotAllowed() *graphError {
	return gerr(http.StatusMethodNotAllowed, codeBadRequest, "Specified HTTP method is not allowed for the request target.")
}

func segmentNotFound(seg string) *graphError {
	return odataBadRequest("Resource not found for the segment '" + seg + "'.")
}

// route resolves the request path and method to an endpoint.
func (c *call) route() (route, *graphError) {
	segs, m := c.segs, c.r.Method
	if len(segs) == 0 {
		return route{}, odataBadRequest("Invalid request.")
	}
	userRead := []string{PermUserReadAll, PermUserReadWriteAll, PermDirectoryReadAll, PermDirectoryReadWriteAll}
	userWrite := []string{PermUserReadWriteAll, PermDirectoryReadWriteAll}
	groupRead := []string{PermGroupReadAll, PermGroupReadWriteAll, PermDirectoryReadAll, PermDirectoryReadWriteAll}
	groupWrite := []string{PermGroupReadWriteAll, PermDirectoryReadWriteAll}
	memberRead := append([]string{PermGroupMemberReadAll, PermGroupMemberReadWriteAll}, groupRead...)
	memberWrite := []string{PermGroupMemberReadWriteAll, PermGroupReadWriteAll, PermDirectoryReadWriteAll}
	get := func(h func(*call) (*reply, *graphError), ru int, perms []string) (route, *graphError) {
		if m != http.MethodGet {
			return route{}, methodNotAllowed()
		}
		return route{handle: h, ru: ru, perms: perms}, nil
	}
	switch strings.ToLower(segs[0]) {
	case "users":
		switch {
		case len(segs) == 1:
			switch m {
			case http.MethodGet:
				return route{handle: (*call).listUsers, ru: 2, perms: userRead}, nil
			case http.MethodPost:
				return route{handle: (*call).createUser, write: true, ru: 1, perms: userWrite}, nil
			}
			return route{}, methodNotAllowed()
		case len(segs) == 2 && segs[1] == "$count":
			return get((*call).countUsers, 1, userRead)
		case len(segs) == 2 && isDelta(segs[1]):
			return get((*call).userDelta, 1, userRead)
		case len(segs) == 2:
			switch m {
			case http.MethodGet:
				return route{handle: (*call).getUser, ru: 1, perms: userRead}, nil
			case http.MethodPatch:
				return route{handle: (*call).updateUser, write: true, ru: 1, perms: userWrite}, nil
			case http.MethodDelete:
				return route{handle: (*call).deleteUser, write: true, ru: 1, perms: userWrite}, nil
			}
			return route{}, methodNotAllowed()
		case strings.EqualFold(segs[2], "extensions"):
			return c.extensionRoute(userRead, userWrite)
		}
		return route{}, segmentNotFound(segs[2])
	case "groups":
		switch {
		case len(segs) == 1:
			switch m {
			case http.MethodGet:
				return route{handle: (*call).listGroups, ru: 1, perms: groupRead}, nil
			case http.MethodPost:
				return route{handle: (*call).createGroup, write: true, ru: 1, perms: groupWrite}, nil
			}
			return route{}, methodNotAllowed()
		case len(segs) == 2 && segs[1] == "$count":
			return get((*call).countGroups, 1, groupRead)
		case len(segs) == 2 && isDelta(segs[1]):
			return get((*call).groupDelta, 1, groupRead)
		case len(segs) == 2:
			switch m {
			case http.MethodGet:
				return route{handle: (*call).getGroup, ru: 1, perms: groupRead}, nil
			case http.MethodPatch:
				// members@odata.bind needs a membership permission; checked in the handler.
				return route{handle: (*call).updateGroup, write: true, ru: 1,
					perms: append(groupWrite, PermGroupMemberReadWriteAll)}, nil
			case http.MethodDelete:
				return route{handle: (*call).deleteGroup, write: true, ru: 1, perms: groupWrite}, nil
			}
			return route{}, methodNotAllowed()
		case strings.EqualFold(segs[2], "members"):
			switch {
			case len(segs) == 3:
				return get((*call).listMembers, 3, memberRead)
			case len(segs) == 4 && segs[3] == "$count":
				return get((*call).countMembers, 1, memberRead)
			case len(segs) == 4 && segs[3] == "$ref":
				if m != http.MethodPost {
					return route{}, methodNotAllowed()
				}
				return route{handle: (*call).addMemberRef, write: true, ru: 1, perms: memberWrite}, nil
			case len(segs) == 5 && segs[4] == "$ref":
				if m != http.MethodDelete {
					return route{}, methodNotAllowed()
				}
				return route{handle: (*call).removeMemberRef, write: true, ru: 1, perms: memberWrite}, nil
			case len(segs) == 4:
				return route{}, segmentNotFound(segs[3])
			}
			return route{}, segmentNotFound(segs[len(segs)-1])
		case strings.EqualFold(segs[2], "extensions"):
			return c.extensionRoute(groupRead, groupWrite)
		}
		return route{}, segmentNotFound(segs[2])
	case "domains":
		perms := []string{PermDomainReadAll, PermDirectoryReadAll, PermDirectoryReadWriteAll}
		switch len(segs) {
		case 1:
			return get((*call).listDomains, 1, perms)
		case 2:
			return get((*call).getDomain, 1, perms)
		}
		return route{}, segmentNotFound(segs[2])
	case "organization":
		perms := []string{PermOrganizationReadAll, PermDirectoryReadAll, PermDirectoryReadWriteAll, PermUserReadAll, PermUserReadWriteAll}
		switch len(segs) {
		case 1:
			return get((*call).listOrganization, 1, perms)
		case 2:
			return get((*call).getOrganization, 1, perms)
		}
		return route{}, segmentNotFound(segs[2])
	}
	return route{}, segmentNotFound(segs[0])
}

// isDelta matches the delta function segment in both forms Graph accepts:
// "delta" (the documentation's) and "delta()" (what the Graph SDKs send, as
// OData function-call syntax).
func isDelta(seg string) bool {
	return strings.EqualFold(seg, "delta") || strings.EqualFold(seg, "delta()")
}

// cost is the request's price in resource units (GRAPH.md "Throttling").
func (c *call) cost(rt route) int {
	if rt.ru == 0 {
		return 0
	}
	if rt.write {
		return 1
	}
	ru := rt.ru
	if c.query.Get("$select") != "" {
		ru--
	}
	if c.query.Get("$expand") != "" {
		ru++
	}
	if top, err := strconv.Atoi(c.query.Get("$top")); err == nil && top < 20 {
		ru--
	}
	return max(ru, 1)
}

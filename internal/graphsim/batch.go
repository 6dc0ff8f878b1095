package graphsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxBatch is how many requests one $batch may hold.
const maxBatch = 20

type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      json.RawMessage   `json:"body,omitempty"`
	DependsOn []string          `json:"dependsOn,omitempty"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// recorder captures an inner response of a $batch.
type recorder struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.buf.Write(b)
}

// innerHeaders are the response headers a $batch answer carries per request.
var innerHeaders = []string{"Content-Type", "Retry-After", "Location", "x-ms-resource-unit",
	"x-ms-throttle-scope", "x-ms-throttle-information", "x-ms-throttle-limit-percentage"}

// serveBatch answers POST /v1.0/$batch: validates the whole payload, then
// runs each inner request through the Graph pipeline on its own (auth,
// faults, throttling, permissions), honouring dependsOn.
func (s *Sim) serveBatch(w http.ResponseWriter, r *http.Request, base string) {
	reqID := s.newID()
	clientReqID := r.Header.Get("client-request-id")
	if clientReqID == "" {
		clientReqID = reqID
	}
	w.Header().Set("request-id", reqID)
	w.Header().Set("client-request-id", clientReqID)
	rec := RequestLog{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, RequestID: reqID, ClientRequestID: clientReqID}
	status := s.batch(w, r, base, &rec)
	rec.Status = status
	rec.Time = s.now()
	s.logRequest(rec)
}

func (s *Sim) batch(w http.ResponseWriter, r *http.Request, base string, rec *RequestLog) int {
	fail := func(e *graphError) int {
		rec.Time = s.now()
		s.writeGraphError(w, e, *rec)
		return e.status
	}
	s.mu.Lock()
	t, a, err := s.authenticate(r)
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	rec.TenantID, rec.ClientID = t.id, a.clientID
	if r.Method != http.MethodPost {
		return fail(methodNotAllowed())
	}
	body, berr := readBody(r)
	if berr != nil {
		return fail(berr)
	}
	var payload struct {
		Requests []batchRequest `json:"requests"`
	}
	if json.Unmarshal(body, &payload) != nil {
		return fail(odataBadRequest("Invalid batch payload format."))
	}
	reqs := payload.Requests
	switch {
	case len(reqs) == 0:
		return fail(odataBadRequest("Invalid batch payload format."))
	case len(reqs) > maxBatch:
		return fail(odataBadRequest("The number of requests in the batch exceeds the limit of 20."))
	}
	byID := map[string]int{}
	for i, q := range reqs {
		if q.ID == "" {
			return fail(odataBadRequest("Invalid batch payload format: a request has no id."))
		}
		if _, dup := byID[q.ID]; dup {
			return fail(odataBadRequest("Request with Id '" + q.ID + "' is duplicated in the batch."))
		}
		byID[q.ID] = i
		if q.Method == "" || q.URL == "" || strings.Contains(q.URL, "://") {
			return fail(odataBadRequest("Invalid request in batch: request id '" + q.ID + "' needs a method and a relative url."))
		}
		if len(q.Body) > 0 && string(q.Body) != "null" && contentType(q.Headers) == "" {
			return fail(odataBadRequest("Write request id : " + q.ID + " does not contain Content-Type header or body."))
		}
	}
	for _, q := range reqs {
		for _, d := range q.DependsOn {
			if _, ok := byID[d]; !ok || d == q.ID {
				return fail(odataBadRequest("Request with Id '" + q.ID + "' depends on unknown request Id '" + d + "'."))
			}
		}
	}

	// Run in order; a request waits for the ones it depends on.
	results := make([]*batchResponse, len(reqs))
	throttled := false
	for done := 0; done < len(reqs); {
		progress := false
		for i, q := range reqs {
			if results[i] != nil {
				continue
			}
			ready, failed := true, false
			for _, d := range q.DependsOn {
				res := results[byID[d]]
				if res == nil {
					ready = false
					break
				}
				failed = failed || res.Status >= 400
			}
			if !ready {
				continue
			}
			if failed {
				results[i] = failedDependency(q.ID)
			} else {
				results[i] = s.runInner(r, base, q)
				throttled = throttled || results[i].Status == http.StatusTooManyRequests
			}
			done++
			progress = true
		}
		if !progress { // a dependency cycle
			return fail(odataBadRequest("Invalid batch payload format: the dependsOn chain contains a cycle."))
		}
	}
	outer := http.StatusOK
	if throttled && s.cfg.BatchThrottled424 {
		outer = http.StatusFailedDependency
	}
	writeJSON(w, outer, map[string]any{"responses": results})
	return outer
}

func contentType(h map[string]string) string {
	for k, v := range h {
		if strings.EqualFold(k, "Content-Type") {
			return v
		}
	}
	return ""
}

func failedDependency(id string) *batchResponse {
	b, _ := json.Marshal(errorBody{Error: errorObject{Code: "FailedDependency",
		Message: "The request could not be executed because a request it depends on failed."}})
	return &batchResponse{ID: id, Status: http.StatusFailedDependency,
		Headers: map[string]string{"Content-Type": "application/json"}, Body: b}
}

// runInner executes one inner request as if it had arrived on its own.
func (s *Sim) runInner(outer *http.Request, base string, q batchRequest) *batchResponse {
	u := "/v1.0/" + strings.TrimPrefix(q.URL, "/")
	parsed, err := url.Parse(u)
	if err != nil {
		b, _ := json.Marshal(errorBody{Error: errorObject{Code: codeODataBadRequest, Message: "Invalid request URL '" + q.URL + "'."}})
		return &batchResponse{ID: q.ID, Status: http.StatusBadRequest, Body: b}
	}
	var body io.Reader
	if len(q.Body) > 0 && string(q.Body) != "null" {
		body = bytes.NewReader(q.Body)
	}
	in, _ := http.NewRequestWithContext(outer.Context(), strings.ToUpper(q.Method), parsed.String(), body)
	in.URL = parsed
	in.Host = outer.Host
	in.Header.Set("Authorization", outer.Header.Get("Authorization"))
	for k, v := range q.Headers {
		in.Header.Set(k, v)
	}
	rec := &recorder{h: http.Header{}}
	s.serveGraph(rec, in, base, true)
	res := &batchResponse{ID: q.ID, Status: rec.status, Headers: map[string]string{}}
	for _, k := range innerHeaders {
		if v := rec.h.Get(k); v != "" {
			res.Headers[k] = v
		}
	}
	if rec.buf.Len() > 0 {
		if json.Valid(rec.buf.Bytes()) {
			res.Body = append(json.RawMessage(nil), rec.buf.Bytes()...)
		} else {
			res.Body, _ = json.Marshal(rec.buf.String())
		}
	}
	return res
}

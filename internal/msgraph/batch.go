package msgraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxBatch is Graph's limit of requests per $batch.
const maxBatch = 20

// BatchRequest is one request of a $batch. URL is relative to the Graph base
// ("/users/{id}"); DependsOn names earlier requests that must succeed first.
type BatchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      any               `json:"body,omitempty"`
	DependsOn []string          `json:"dependsOn,omitempty"`
}

// BatchResponse is the final answer to one BatchRequest.
type BatchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// Err is the *Error of a failed response, nil for 1xx–3xx.
func (r BatchResponse) Err() error {
	if r.Status < 400 {
		return nil
	}
	h := http.Header{}
	for k, v := range r.Headers {
		h.Set(k, v)
	}
	e := parseError(r.Status, h, r.Body, time.Now())
	e.Method, e.Path = "$batch", "#"+r.ID
	return e
}

// Decode unmarshals a successful response body into v.
func (r BatchResponse) Decode(v any) error {
	if err := r.Err(); err != nil {
		return err
	}
	if len(r.Body) == 0 {
		return nil
	}
	return json.Unmarshal(r.Body, v)
}

// Batch sends reqs through POST /$batch, 20 per call, and returns one response
// per request in the order of reqs. Inner 429/503/504 answers (Graph throttles
// inner requests one by one and no SDK retries them) are re-sent after their
// Retry-After together with the dependants they held back; a request whose
// dependency failed for good gets a 424 without being sent again. The error is
// for the batch as a whole (bad input, transport, outer failure); per-request
// failures are in the responses (BatchResponse.Err).
// https://learn.microsoft.com/graph/json-batching
func (c *Client) Batch(ctx context.Context, reqs []BatchRequest) ([]BatchResponse, error) {
	pos := make(map[string]int, len(reqs))
	for i, r := range reqs {
		if r.ID == "" {
			return nil, fmt.Errorf("msgraph: batch request %d has no id", i)
		}
		if !strings.HasPrefix(r.URL, "/") || strings.HasPrefix(r.URL, "//") {
			// Graph resolves inner URLs against its own base; an absolute URL
			// here is a caller bug, not something to forward.
			return nil, fmt.Errorf("msgraph: batch request %q: url %q must be relative, like /users/{id}", r.ID, r.URL)
		}
		if _, dup := pos[r.ID]; dup {
			return nil, fmt.Errorf("msgraph: batch request id %q is not unique", r.ID)
		}
		for _, d := range r.DependsOn {
			if _, ok := pos[d]; !ok {
				return nil, fmt.Errorf("msgraph: batch request %q depends on %q, which is not an earlier request", r.ID, d)
			}
		}
		pos[r.ID] = i
	}
	bodies := make([]json.RawMessage, len(reqs))
	for i, r := range reqs {
		if r.Body == nil {
			continue
		}
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("msgraph: encode batch request %q: %w", r.ID, err)
		}
		bodies[i] = b
	}

	results := make([]BatchResponse, len(reqs))
	final := make([]bool, len(reqs))
	pending := make([]int, len(reqs))
	for i := range reqs {
		pending[i] = i
	}
	pol := &c.cfg.Retry
	for round := 0; len(pending) > 0; round++ {
		lastRound := round+1 >= pol.MaxAttempts
		deferred := map[int]bool{}
		var wait time.Duration
		throttled := false
		var chunk []int
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			got, err := c.sendBatch(ctx, reqs, bodies, chunk, final, pos)
			if err != nil {
				return err
			}
			retry := map[string]bool{}
			for _, i := range chunk {
				r, ok := got[reqs[i].ID]
				if !ok {
					return fmt.Errorf("msgraph: $batch answer lacks response %q", reqs[i].ID)
				}
				results[i] = r
				if !lastRound && pol.retryable(r.Status, "", false) {
					retry[r.ID] = true
					if ra := parseRetryAfter(headerValue(r.Headers, "Retry-After"), c.cfg.Clock()); ra > wait {
						wait = ra
					}
					throttled = throttled || r.Status == http.StatusTooManyRequests
				}
			}
			// A 424 caused by a request we are about to re-send is not final:
			// re-send the dependant with it (dependencies come earlier in chunk).
			for _, i := range chunk {
				if results[i].Status != http.StatusFailedDependency {
					continue
				}
				for _, d := range reqs[i].DependsOn {
					if retry[d] || deferred[pos[d]] {
						retry[reqs[i].ID] = true
						break
					}
				}
			}
			for _, i := range chunk {
				if retry[reqs[i].ID] {
					deferred[i] = true
				} else {
					final[i] = true
				}
			}
			chunk = chunk[:0]
			return nil
		}
		for _, i := range pending {
			// Flush first so every dependency in an earlier chunk is settled
			// before this request's dependsOn is judged: Graph resolves
			// dependsOn only inside one batch.
			if len(chunk) == maxBatch {
				if err := flush(); err != nil {
					return results, err
				}
			}
			blocked, failed := false, ""
			for _, d := range reqs[i].DependsOn {
				j := pos[d]
				switch {
				case deferred[j]:
					blocked = true
				case final[j] && results[j].Status >= 400:
					failed = d
				}
			}
			switch {
			case blocked:
				deferred[i] = true
				continue
			case failed != "":
				results[i] = failedDependency(reqs[i].ID, failed)
				final[i] = true
				continue
			}
			chunk = append(chunk, i)
		}
		if err := flush(); err != nil {
			return results, err
		}
		pending = pending[:0]
		for i := range reqs {
			if deferred[i] {
				pending = append(pending, i)
			}
		}
		if len(pending) == 0 {
			break
		}
		if wait <= 0 {
			wait = pol.backoff(round)
		}
		if wait > pol.MaxRetryAfter {
			break
		}
		if throttled && c.cfg.Limiter != nil {
			c.cfg.Limiter.Penalize(ctx, wait)
		}
		c.cfg.Logger.DebugContext(ctx, "msgraph $batch retry", "requests", len(pending), "wait", wait, "round", round+1)
		if err := c.cfg.Sleep(ctx, wait); err != nil {
			return results, err
		}
	}
	return results, nil
}

func failedDependency(id, dep string) BatchResponse {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{
		"code":    "FailedDependency",
		"message": fmt.Sprintf("Dependent request %q failed; request not sent.", dep),
	}})
	return BatchResponse{ID: id, Status: http.StatusFailedDependency, Body: body}
}

// sendBatch posts one chunk. dependsOn entries already settled (successful,
// in an earlier chunk or round) are dropped because Graph resolves them only
// within one batch.
func (c *Client) sendBatch(ctx context.Context, reqs []BatchRequest, bodies []json.RawMessage, chunk []int, final []bool, pos map[string]int) (map[string]BatchResponse, error) {
	type wireReq struct {
		ID        string            `json:"id"`
		Method    string            `json:"method"`
		URL       string            `json:"url"`
		Headers   map[string]string `json:"headers,omitempty"`
		Body      json.RawMessage   `json:"body,omitempty"`
		DependsOn []string          `json:"dependsOn,omitempty"`
	}
	inChunk := make(map[int]bool, len(chunk))
	for _, i := range chunk {
		inChunk[i] = true
	}
	wire := make([]wireReq, 0, len(chunk))
	for _, i := range chunk {
		r := reqs[i]
		w := wireReq{ID: r.ID, Method: r.Method, URL: r.URL, Body: bodies[i]}
		if len(bodies[i]) > 0 || len(r.Headers) > 0 {
			w.Headers = map[string]string{}
			for k, v := range r.Headers {
				w.Headers[k] = v
			}
			if len(bodies[i]) > 0 && headerValue(w.Headers, "Content-Type") == "" {
				w.Headers["Content-Type"] = "application/json"
			}
		}
		for _, d := range r.DependsOn {
			if inChunk[pos[d]] {
				w.DependsOn = append(w.DependsOn, d)
			}
		}
		wire = append(wire, w)
	}
	writes := 0
	for _, w := range wire {
		if w.Method != http.MethodGet {
			writes++
		}
	}
	var out struct {
		Responses []BatchResponse `json:"responses"`
	}
	resp, err := c.request(ctx, call{method: http.MethodPost, path: "/$batch",
		body: map[string]any{"requests": wire}, accept424: true, writes: max(writes, 1)})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return nil, fmt.Errorf("msgraph: decode $batch answer: %w", err)
	}
	if len(out.Responses) == 0 && resp.status != http.StatusOK {
		return nil, errors.New("msgraph: $batch answered 424 without responses")
	}
	got := make(map[string]BatchResponse, len(out.Responses))
	for _, r := range out.Responses {
		got[r.ID] = r
	}
	return got, nil
}

// headerValue reads a $batch header map case-insensitively.
func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Package msgraph is a thin typed client for the part of Microsoft Graph v1.0
// dirsync uses: users, security groups and their members, domains, the
// organization, delta queries and $batch. Every call goes through one request
// path that adds the token and a client-request-id, honours Retry-After, backs
// off on 429/503/504, retries 404s on objects this client just created, and
// turns Graph error bodies into *Error. See docs/msgraph.md.
package msgraph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/dirsync/dirsync/internal/egress"
)

// Client talks to one tenant as one app. It is safe for concurrent use.
type Client struct {
	cfg       Config
	graphBase *url.URL
	cc        *clientcredentials.Config

	tokMu sync.Mutex
	tok   *oauth2.Token

	freshMu sync.Mutex
	fresh   map[string]time.Time // object id → creation time (replication window)
}

// New validates cfg (after defaults) and builds a Client. It does no I/O:
// call Token or any endpoint to check the credentials.
func New(cfg Config) (*Client, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	gb, err := url.Parse(cfg.GraphBaseURL)
	if err != nil {
		return nil, fmt.Errorf("msgraph: graph base URL: %w", err)
	}
	// Whatever client the caller hands in, a redirect is never followed: a
	// token request would re-post the client secret to the redirect's host,
	// and a Graph call would re-send the bearer token there.
	hc := *cfg.HTTPClient
	hc.CheckRedirect = egress.NoRedirect
	cfg.HTTPClient = &hc
	return &Client{
		cfg:       cfg,
		graphBase: gb,
		cc: &clientcredentials.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			TokenURL:     cfg.LoginBaseURL + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token",
			Scopes:       []string{cfg.Scope},
			// Entra accepts both styles; pinning one saves the auto-detect
			// round trip and keeps the secret out of an Authorization header
			// that proxies tend to log.
			AuthStyle: oauth2.AuthStyleInParams,
		},
		fresh: map[string]time.Time{},
	}, nil
}

// tokenLeeway renews a token this long before it expires so an in-flight
// request does not arrive with a token that just lapsed.
const tokenLeeway = 30 * time.Second

// Token returns a valid access token, fetching one when needed. A refusal is an
// *AuthError; the authorize flow (I2) calls this to check credentials.
func (c *Client) Token(ctx context.Context) (string, error) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if c.tok != nil && c.tok.AccessToken != "" && time.Until(c.tok.Expiry) > tokenLeeway {
		return c.tok.AccessToken, nil
	}
	tctx := context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTPClient)
	tok, err := c.cc.Token(tctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", toAuthError(err)
	}
	if tok.AccessToken == "" {
		return "", &AuthError{Err: errors.New("token endpoint answered without an access token")}
	}
	c.tok = tok
	return tok.AccessToken, nil
}

// dropToken forgets a token Graph refused, unless another goroutine already
// replaced it.
func (c *Client) dropToken(access string) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if c.tok != nil && c.tok.AccessToken == access {
		c.tok = nil
	}
}

// markFresh records ids this client just created.
func (c *Client) markFresh(id string) {
	if id == "" {
		return
	}
	now := c.cfg.Clock()
	c.freshMu.Lock()
	defer c.freshMu.Unlock()
	c.fresh[strings.ToLower(id)] = now // ids and UPNs compare case-insensitively
	if len(c.fresh) > 4096 {
		for k, t := range c.fresh {
			if now.Sub(t) > c.cfg.ReplicationWindow {
				delete(c.fresh, k)
			}
		}
	}
}

// forget ends the replication window of an object we deleted: a 404 about it
// is now the truth.
func (c *Client) forget(ids ...string) {
	c.freshMu.Lock()
	defer c.freshMu.Unlock()
	for _, id := range ids {
		delete(c.fresh, strings.ToLower(id))
	}
}

func (c *Client) isFresh(ids ...string) bool {
	now := c.cfg.Clock()
	c.freshMu.Lock()
	defer c.freshMu.Unlock()
	for _, id := range ids {
		if t, ok := c.fresh[strings.ToLower(id)]; ok && now.Sub(t) <= c.cfg.ReplicationWindow {
			return true
		}
	}
	return false
}

type freshKey struct{}

// WithRetryNotFound marks calls made with ctx as being about objects created
// moments ago (perhaps by another process), so 404s are retried as replication
// delay. The client does this on its own for objects it created itself.
func WithRetryNotFound(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// writeCount is what the request costs against the write quota.
func (cl *call) writeCount() int {
	if cl.writes > 0 {
		return cl.writes
	}
	if cl.method == http.MethodGet {
		return 0
	}
	return 1
}

// call describes one logical Graph request.
type call struct {
	method string
	path   string     // relative to the Graph base, e.g. "/users/" + id (already escaped)
	query  url.Values // encoded by encodeQuery
	link   string     // absolute @odata.nextLink/deltaLink; replaces path+query
	body   any
	header http.Header
	fresh  bool // retry 404 as replication delay
	// writes overrides the write count of the request for the Limiter ($batch);
	// 0 means: 1 for any method but GET.
	writes int
	// accept424 treats 424 as an answer, not an error: older $batch docs let
	// the outer status be 424 when inner requests failed.
	accept424 bool
}

// response is the successful answer of a call.
type response struct {
	status int
	header http.Header
	body   []byte
}

// encodeQuery keeps "$" in OData option names literal and encodes spaces as
// %20: Graph documents its examples that way and "+" is not a space everywhere.
func encodeQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	var b strings.Builder
	for k, vs := range q {
		for _, v := range vs {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(strings.ReplaceAll(url.QueryEscape(k), "%24", "$"))
			b.WriteByte('=')
			b.WriteString(strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	return b.String()
}

// checkLink refuses links whose scheme, host or base path differ from the
// configured Graph base, so the bearer token never leaves for another host.
func (c *Client) checkLink(link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrForeignLink, err)
	}
	if !strings.EqualFold(u.Scheme, c.graphBase.Scheme) || !strings.EqualFold(u.Host, c.graphBase.Host) ||
		!strings.HasPrefix(u.Path, c.graphBase.Path+"/") || u.User != nil {
		return nil, fmt.Errorf("%w: %s://%s", ErrForeignLink, u.Scheme, u.Host)
	}
	return u, nil
}

func (c *Client) target(cl *call) (*url.URL, error) {
	if cl.link != "" {
		return c.checkLink(cl.link)
	}
	raw := c.cfg.GraphBaseURL + cl.path
	if q := encodeQuery(cl.query); q != "" {
		raw += "?" + q
	}
	return url.Parse(raw)
}

// request is the one path every Graph call takes.
func (c *Client) request(ctx context.Context, cl call) (*response, error) {
	u, err := c.target(&cl)
	if err != nil {
		return nil, err
	}
	var body []byte
	if cl.body != nil {
		if raw, ok := cl.body.(json.RawMessage); ok {
			body = raw
		} else if body, err = json.Marshal(cl.body); err != nil {
			return nil, fmt.Errorf("msgraph: encode %s %s: %w", cl.method, u.Path, err)
		}
	}
	fresh := cl.fresh
	if v, _ := ctx.Value(freshKey{}).(bool); v {
		fresh = true
	}
	crid := uuid.NewString()
	pol := &c.cfg.Retry
	refreshed := false
	var last error
	for attempt := 0; attempt < pol.MaxAttempts; attempt++ {
		if c.cfg.Limiter != nil {
			if err := c.cfg.Limiter.Wait(ctx, cl.writeCount()); err != nil {
				return nil, fmt.Errorf("msgraph: limiter: %w", err)
			}
		}
		// answered tells an adaptive limiter how this attempt went, once.
		answered := func(status int, h http.Header) {
			if fb, ok := c.cfg.Limiter.(Feedback); ok {
				fb.Answered(ctx, cl.writeCount(), status, h)
			}
		}
		tok, err := c.Token(ctx)
		if err != nil {
			answered(0, nil)
			if ae, ok := IsAuthError(err); ok && ae.temporary() && attempt+1 < pol.MaxAttempts {
				last = err
				if err := c.cfg.Sleep(ctx, pol.backoff(attempt)); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), bytes.NewReader(body))
		if err != nil {
			answered(0, nil)
			return nil, fmt.Errorf("msgraph: build request: %w", err)
		}
		if body == nil {
			req.Body, req.ContentLength = http.NoBody, 0
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		for k, vs := range cl.header {
			req.Header[http.CanonicalHeaderKey(k)] = vs
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(clientRequestIDHeader, crid)

		sent := time.Now()
		resp, err := c.cfg.HTTPClient.Do(req)
		if c.cfg.Observer != nil {
			status := 0
			if err == nil {
				status = resp.StatusCode
			}
			c.cfg.Observer.ObserveRequest(ctx, cl.method, status, time.Since(sent))
		}
		if err != nil {
			answered(0, nil)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, egress.ErrBlocked) {
				return nil, fmt.Errorf("msgraph: %s %s: %w", cl.method, u.Path, err)
			}
			// Transport errors are retried like a 503: the request may not have
			// reached Graph, and every call we make is safe to repeat or
			// converges (a repeated create surfaces as a conflict).
			last = fmt.Errorf("msgraph: %s %s: %w", cl.method, u.Path, err)
			if attempt+1 < pol.MaxAttempts {
				if err := c.cfg.Sleep(ctx, pol.serverBackoff(attempt)); err != nil {
					return nil, err
				}
			}
			continue
		}
		rb, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered(resp.StatusCode, resp.Header)
		if rerr != nil {
			last = fmt.Errorf("msgraph: read %s %s: %w", cl.method, u.Path, rerr)
			continue
		}
		if resp.StatusCode < 300 || (cl.accept424 && resp.StatusCode == http.StatusFailedDependency) {
			return &response{status: resp.StatusCode, header: resp.Header, body: rb}, nil
		}
		if resp.StatusCode < 400 {
			return nil, &RedirectError{Status: resp.StatusCode, Method: cl.method, Path: u.Path}
		}
		ge := parseError(resp.StatusCode, resp.Header, rb, c.cfg.Clock())
		ge.Method, ge.Path = cl.method, u.Path
		if ge.ClientRequestID == "" {
			ge.ClientRequestID = crid
		}
		last = ge
		if ge.Status == http.StatusUnauthorized && !refreshed {
			// A token Graph no longer accepts (expired early, revoked, clock
			// skew): fetch a new one once and try again at no backoff cost.
			refreshed = true
			c.dropToken(tok)
			attempt--
			continue
		}
		if !pol.retryable(ge.Status, ge.Code, fresh) || attempt+1 >= pol.MaxAttempts {
			return nil, ge
		}
		wait := ge.RetryAfter
		if wait > pol.MaxRetryAfter {
			return nil, ge
		}
		switch {
		case wait > 0:
		case ge.Status >= 500:
			wait = pol.serverBackoff(attempt)
		default:
			wait = pol.backoff(attempt)
		}
		if ge.Status == http.StatusTooManyRequests && c.cfg.Limiter != nil {
			c.cfg.Limiter.Penalize(ctx, wait)
		}
		c.cfg.Logger.DebugContext(ctx, "msgraph retry",
			"method", cl.method, "path", u.Path, "status", ge.Status, "code", ge.Code,
			"attempt", attempt+1, "wait", wait, "request_id", ge.RequestID, "client_request_id", crid)
		if err := c.cfg.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	if last == nil {
		last = errors.New("msgraph: no attempt made")
	}
	return nil, last
}

// roundtrip sends cl and decodes a JSON answer into T (zero T for 204).
func roundtrip[T any](ctx context.Context, c *Client, cl call) (T, error) {
	var out T
	resp, err := c.request(ctx, cl)
	if err != nil {
		return out, err
	}
	if resp.status == http.StatusNoContent || len(bytes.TrimSpace(resp.body)) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return out, fmt.Errorf("msgraph: decode %s %s answer: %w", cl.method, cl.path, err)
	}
	return out, nil
}

// seg escapes one path segment (ids, UPNs with '#', '$' or '/').
func seg(s string) string { return url.PathEscape(s) }

package live_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/apikey"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/pubsub"
)

const (
	createKeyQ = `mutation($in: CreateAPIKeyInput!) { createAPIKey(input: $in) { secret apiKey { id name role keyPrefix expiresAt revokedAt } } }`
	revokeKeyQ = `mutation($id: ID!) { revokeAPIKey(id: $id) { apiKey { id revokedAt } } }`
	listKeysQ  = `{ apiKeys { totalCount edges { node { id name role keyPrefix createdAt lastUsedAt expiresAt revokedAt } } } }`
)

type gqlAnswer struct {
	status int
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (a gqlAnswer) code() string {
	if len(a.Errors) == 0 {
		return ""
	}
	s, _ := a.Errors[0].Extensions["code"].(string)
	return s
}

func post(t testing.TB, url, key, query string, vars map[string]any) gqlAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	a := gqlAnswer{status: res.StatusCode}
	require.NoError(t, json.Unmarshal(raw, &a), "%s", raw)
	return a
}

type createdKey struct {
	CreateAPIKey struct {
		Secret string `json:"secret"`
		APIKey struct {
			ID        string  `json:"id"`
			Name      string  `json:"name"`
			Role      string  `json:"role"`
			KeyPrefix string  `json:"keyPrefix"`
			ExpiresAt *string `json:"expiresAt"`
		} `json:"apiKey"`
	} `json:"createAPIKey"`
}

func createKey(t testing.TB, url, admin string, in map[string]any) createdKey {
	t.Helper()
	var out createdKey
	gql(t, url, admin, createKeyQ, map[string]any{"in": in}, &out)
	return out
}

// subscribed opens a websocket with key and starts a jobs subscription.
func subscribed(t testing.TB, ws, key string) *wsClient {
	t.Helper()
	c, err := dial(t, ws, dialOpts{init: map[string]any{"Authorization": "Bearer " + key}})
	require.NoError(t, err)
	c.ack()
	c.subscribe("j", jobsQ, nil)
	return c
}

// Issue 13: the key lifecycle through GraphQL. An admin creates a key (the
// secret is in the payload once), the key works over HTTP and a websocket on
// two API processes, and revoking it on one process refuses it at once over
// HTTP and closes the open subscriptions of both processes with 4403.
func TestAPIKeyLifecycleRevocationCutsOpenSubscriptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.api(api.Config{Deps: graph.Deps{Publisher: e.pub}}, pubsub.HubConfig{})
	b := e.api(api.Config{Deps: graph.Deps{Publisher: e.pub}}, pubsub.HubConfig{})
	o := e.org("acme")

	k := createKey(t, a.url, o.admin, map[string]any{"name": "ci", "role": "READONLY"})
	secret := k.CreateAPIKey.Secret
	require.Regexp(t, `^dsk_[A-Za-z0-9_-]{43}$`, secret)
	require.Equal(t, "READONLY", k.CreateAPIKey.APIKey.Role)
	require.Equal(t, secret[:10], k.CreateAPIKey.APIKey.KeyPrefix)

	require.Equal(t, http.StatusOK, post(t, a.url, secret, `{ users { totalCount } }`, nil).status)
	onA, onB := subscribed(t, a.ws, secret), subscribed(t, b.ws, secret)
	admin := subscribed(t, b.ws, o.admin) // another key's stream stays open

	// The list shows the key, its prefix and that it was used; never a secret.
	var list struct {
		APIKeys struct {
			TotalCount int `json:"totalCount"`
			Edges      []struct {
				Node map[string]any `json:"node"`
			} `json:"edges"`
		} `json:"apiKeys"`
	}
	gql(t, a.url, secret, listKeysQ, nil, &list) // read-only keys may list
	require.Equal(t, 3, list.APIKeys.TotalCount)
	newest := list.APIKeys.Edges[0].Node
	require.Equal(t, k.CreateAPIKey.APIKey.ID, newest["id"])
	require.NotNil(t, newest["lastUsedAt"])
	raw, _ := json.Marshal(list)
	require.NotContains(t, string(raw), secret)

	var rev struct {
		RevokeAPIKey struct {
			APIKey struct {
				RevokedAt *string `json:"revokedAt"`
			} `json:"apiKey"`
		} `json:"revokeAPIKey"`
	}
	gql(t, a.url, o.admin, revokeKeyQ, map[string]any{"id": k.CreateAPIKey.APIKey.ID}, &rev)
	require.NotNil(t, rev.RevokeAPIKey.APIKey.RevokedAt)

	require.Equal(t, websocket.StatusCode(4403), closedWithin(t, onA, 30*time.Second))
	require.Equal(t, websocket.StatusCode(4403), closedWithin(t, onB, 30*time.Second))
	r := post(t, b.url, secret, `{ users { totalCount } }`, nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "UNAUTHENTICATED", r.code())
	late, err := dial(t, a.ws, dialOpts{init: map[string]any{"Authorization": "Bearer " + secret}})
	require.NoError(t, err)
	require.Equal(t, websocket.StatusCode(4403), closedWithin(t, late, 30*time.Second))

	// Revoking again changes nothing; the admin's own stream is untouched.
	gql(t, a.url, o.admin, revokeKeyQ, map[string]any{"id": k.CreateAPIKey.APIKey.ID}, &rev)
	admin.send(wsMsg{Type: "ping"})
	m, ok := admin.next(10 * time.Second)
	require.True(t, ok)
	require.Equal(t, "pong", m.Type)
}

// A read-only key lists keys but may neither create nor revoke one; another
// organisation's key is not found; bad input changes nothing.
func TestAPIKeyManagementRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{})
	o, other := e.org("acme"), e.org("globex")
	otherKey, err := e.client.APIKey.Query().Where(apikey.Name("admin")).All(auth.SystemContext(context.Background()))
	require.NoError(t, err)

	r := post(t, p.url, o.readOnly, createKeyQ, map[string]any{"in": map[string]any{"name": "x", "role": "ADMIN"}})
	require.Equal(t, "FORBIDDEN", r.code())
	for _, k := range otherKey {
		if k.OrganizationID == other.id {
			require.Equal(t, "FORBIDDEN", post(t, p.url, o.readOnly, revokeKeyQ, map[string]any{"id": k.ID}).code())
			require.Equal(t, "NOT_FOUND", post(t, p.url, o.admin, revokeKeyQ, map[string]any{"id": k.ID}).code())
		}
	}
	past := time.Now().Add(-time.Hour).Format(time.RFC3339)
	r = post(t, p.url, o.admin, createKeyQ, map[string]any{"in": map[string]any{"name": "x", "role": "ADMIN", "expiresAt": past}})
	require.Equal(t, "BAD_USER_INPUT", r.code())
	r = post(t, p.url, o.admin, createKeyQ, map[string]any{"in": map[string]any{"name": "", "role": "ADMIN"}})
	require.Equal(t, "BAD_USER_INPUT", r.code())
	n, err := e.client.APIKey.Query().Count(auth.SystemContext(context.Background()))
	require.NoError(t, err)
	require.Equal(t, 4, n, "nothing created")
	// Both other-organisation keys still work.
	require.Equal(t, http.StatusOK, post(t, p.url, other.admin, `{ users { totalCount } }`, nil).status)
}

// An expiring key works until its time, then is refused and its open
// subscription is closed with 4403 without anyone revoking it.
func TestExpiredKeyIsRefusedAndItsStreamClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	expires := time.Now().Add(2 * time.Second)
	k := createKey(t, p.url, o.admin, map[string]any{"name": "short", "role": "ADMIN", "expiresAt": expires.Format(time.RFC3339Nano)})
	c := subscribed(t, p.ws, k.CreateAPIKey.Secret)
	require.Equal(t, websocket.StatusCode(4403), closedWithin(t, c, 30*time.Second))
	require.False(t, time.Now().Before(expires), "closed at expiry, not before")
	require.Equal(t, http.StatusUnauthorized, post(t, p.url, k.CreateAPIKey.Secret, `{ users { totalCount } }`, nil).status)
}

// A revocation whose announcement never arrived (written straight to the
// database here) still closes open streams: they re-read their key.
func TestRevocationWithoutAnnouncementIsFoundByRecheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{KeyRecheck: 100 * time.Millisecond}, pubsub.HubConfig{})
	o := e.org("acme")
	k := createKey(t, p.url, o.admin, map[string]any{"name": "k", "role": "ADMIN"})
	c := subscribed(t, p.ws, k.CreateAPIKey.Secret)
	_, err := e.client.APIKey.UpdateOneID(pulid.ID(k.CreateAPIKey.APIKey.ID)).SetRevokedAt(time.Now()).Save(auth.SystemContext(context.Background()))
	require.NoError(t, err)
	require.Equal(t, websocket.StatusCode(4403), closedWithin(t, c, 30*time.Second))
}

// closedWithin waits for the server to close c and returns its close code;
// a socket still open after limit fails the test instead of hanging it.
func closedWithin(t testing.TB, c *wsClient, limit time.Duration) websocket.StatusCode {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(limit):
		t.Fatalf("socket still open after %s", limit)
	}
	return websocket.CloseStatus(c.err)
}

// An SSE stream of a revoked key ends at once; another key's stream goes on.
func TestRevocationEndsSSEStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.api(api.Config{Deps: graph.Deps{Publisher: e.pub}}, pubsub.HubConfig{})
	o := e.org("acme")
	k := createKey(t, p.url, o.admin, map[string]any{"name": "sse", "role": "READONLY"})

	stream := func(key string) chan struct{} {
		body, _ := json.Marshal(map[string]any{"query": jobsQ})
		req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		t.Cleanup(func() { _ = res.Body.Close() })
		ended := make(chan struct{})
		go func() { defer close(ended); _, _ = io.Copy(io.Discard, res.Body) }()
		return ended
	}
	revoked, other := stream(k.CreateAPIKey.Secret), stream(o.readOnly)
	waitFor(t, 10*time.Second, func() bool { return p.hub.Stats().Subscriptions == 2 })

	gql(t, p.url, o.admin, revokeKeyQ, map[string]any{"id": k.CreateAPIKey.APIKey.ID}, nil)
	select {
	case <-revoked:
	case <-time.After(30 * time.Second):
		t.Fatal("the revoked key's SSE stream is still open")
	}
	select {
	case <-other:
		t.Fatal("another key's stream ended")
	default:
	}
	waitFor(t, 10*time.Second, func() bool { return p.hub.Stats().Subscriptions == 1 })
}

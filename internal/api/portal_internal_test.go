package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Only a POST made of public portal mutations passes without a credential,
// and the body is left intact for gqlgen.
func TestPublicOperation(t *testing.T) {
	t.Parallel()
	req := func(method string, body map[string]any) *http.Request {
		b, _ := json.Marshal(body)
		return httptest.NewRequest(method, "/graphql", strings.NewReader(string(b)))
	}
	login := `mutation { portalLogin(organization: "a", login: "b", password: "c") { token } }`
	for name, c := range map[string]struct {
		method string
		body   map[string]any
		want   bool
	}{
		"login":               {http.MethodPost, map[string]any{"query": login}, true},
		"aliased public":      {http.MethodPost, map[string]any{"query": `mutation { a: resetPassword(token: "t", newPassword: "p") { ok } b: requestPasswordReset(organization: "o", login: "l") { ok } }`}, true},
		"GET":                 {http.MethodGet, map[string]any{"query": login}, false},
		"query":               {http.MethodPost, map[string]any{"query": `{ users { totalCount } }`}, false},
		"alias hides admin":   {http.MethodPost, map[string]any{"query": `mutation { portalLogin: createUser(input: {username: "x", email: "x@y.z"}) { user { id } } }`}, false},
		"mixed":               {http.MethodPost, map[string]any{"query": `mutation { portalLogin(organization: "a", login: "b", password: "c") { token } deleteUser(id: "US1") { deletedID } }`}, false},
		"fragment at root":    {http.MethodPost, map[string]any{"query": `mutation { ...F } fragment F on Mutation { portalLogin(organization: "a", login: "b", password: "c") { token } }`}, false},
		"picked other op":     {http.MethodPost, map[string]any{"query": login + ` query Q { users { totalCount } }`, "operationName": "Q"}, false},
		"two ops, no name":    {http.MethodPost, map[string]any{"query": `mutation A { portalLogin(organization: "a", login: "b", password: "c") { token } } query Q { users { totalCount } }`}, false},
		"persisted hash only": {http.MethodPost, map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": "ab"}}}, false},
		"portal session call": {http.MethodPost, map[string]any{"query": `mutation { changeMyPassword(currentPassword: "a", newPassword: "b") { user { id } } }`}, false},
		"syntax error":        {http.MethodPost, map[string]any{"query": `mutation { portalLogin(`}, false},
	} {
		r := req(c.method, c.body)
		require.Equal(t, c.want, publicOperation(r, 1<<20), name)
		if c.method == http.MethodPost {
			rest, err := io.ReadAll(r.Body)
			require.NoError(t, err)
			require.NotEmpty(t, rest, "%s: body kept for gqlgen", name)
		}
	}
	big := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"`+login+strings.Repeat(" ", 100)+`"}`))
	require.False(t, publicOperation(big, 50), "over the body limit")
}

package graphsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// env is a bootstrapped emulator behind an httptest server.
type env struct {
	t     testing.TB
	sim   *Sim
	srv   *httptest.Server
	creds Credentials
	tok   string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	sim := New(cfg)
	srv := newServer(t, sim)
	creds, err := sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)
	e := &env{t: t, sim: sim, srv: srv, creds: creds}
	e.tok = e.token(creds.TenantID, creds.ClientID, creds.ClientSecret)
	return e
}

func newBenchServer(b *testing.B, sim *Sim) *httptest.Server {
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	return srv
}

func newServer(t *testing.T, sim *Sim) *httptest.Server {
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv
}

func (e *env) token(tenant, client, secret string) string {
	e.t.Helper()
	res, body := e.tokenRequest(tenant, url.Values{"grant_type": {"client_credentials"}, "client_id": {client},
		"client_secret": {secret}, "scope": {graphScope}})
	require.Equal(e.t, http.StatusOK, res.StatusCode, "%s", body)
	return body["access_token"].(string)
}

func (e *env) tokenRequest(tenant string, form url.Values) (*http.Response, map[string]any) {
	e.t.Helper()
	res, err := http.PostForm(e.srv.URL+"/"+tenant+"/oauth2/v2.0/token", form)
	require.NoError(e.t, err)
	defer res.Body.Close()
	var m map[string]any
	require.NoError(e.t, json.NewDecoder(res.Body).Decode(&m))
	return res, m
}

// do sends a Graph request; path is relative to /v1.0 and body is JSON-encoded when not nil.
func (e *env) do(method, path string, body any, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			r = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			require.NoError(e.t, err)
			r = strings.NewReader(string(b))
		}
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = e.srv.URL + "/v1.0" + path
	}
	req, err := http.NewRequest(method, u, r)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+e.tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return res, b
}

// json sends a request and decodes the JSON answer, checking the status.
func (e *env) json(status int, method, path string, body any, hdr ...string) map[string]any {
	e.t.Helper()
	res, b := e.do(method, path, body, hdr...)
	require.Equal(e.t, status, res.StatusCode, "%s %s: %s", method, path, b)
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	require.NoError(e.t, json.Unmarshal(b, &m), "%s", b)
	return m
}

// graphErr asserts a Graph error answer and returns error.code and error.message.
func (e *env) graphErr(status int, method, path string, body any, hdr ...string) (code, msg string, m map[string]any) {
	e.t.Helper()
	m = e.json(status, method, path, body, hdr...)
	eo := m["error"].(map[string]any)
	inner := eo["innerError"].(map[string]any)
	require.NotEmpty(e.t, inner["request-id"])
	require.NotEmpty(e.t, inner["date"])
	return eo["code"].(string), eo["message"].(string), eo
}

func newUserBody(upn string) map[string]any {
	local, _, _ := strings.Cut(upn, "@")
	return map[string]any{
		"accountEnabled": true, "displayName": "User " + local, "mailNickname": local,
		"userPrincipalName": upn,
		"passwordProfile":   map[string]any{"password": "xWwvJ]6NMw+bWH-d", "forceChangePasswordNextSignIn": false},
	}
}

func sortStrings(s []string) { sort.Strings(s) }

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func newGroupBody(name string) map[string]any {
	nick := strings.ToLower(strings.ReplaceAll(name, " ", "-"))
	return map[string]any{"displayName": name, "mailEnabled": false, "mailNickname": nick,
		"securityEnabled": true, "groupTypes": []string{}}
}

func TestSmokeCreateAndListUsers(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.json(201, "POST", "/users", newUserBody("ada@contoso.com"))
	require.Equal(t, e.srv.URL+"/v1.0/$metadata#users/$entity", u["@odata.context"])
	require.Equal(t, "ada@contoso.com", u["userPrincipalName"])
	code, msg, eo := e.graphErr(400, "POST", "/users", newUserBody("ADA@contoso.com"))
	require.Equal(t, codeBadRequest, code)
	require.Equal(t, msgUPNConflict, msg)
	require.Equal(t, []any{map[string]any{"code": "ObjectConflict", "target": "userPrincipalName"}}, eo["details"])
	l := e.json(200, "GET", "/users", nil)
	require.Len(t, l["value"], 1)
}

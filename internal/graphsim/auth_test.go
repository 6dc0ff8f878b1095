package graphsim

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// I2: bad credentials must be told apart (unknown tenant, client, secret, scope).
func TestTokenEndpoint(t *testing.T) {
	e := newEnv(t, Config{})
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {e.creds.ClientID},
		"client_secret": {e.creds.ClientSecret}, "scope": {graphScope}}

	res, body := e.tokenRequest(e.creds.TenantID, good)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "Bearer", body["token_type"])
	require.EqualValues(t, 3599, body["expires_in"])
	require.EqualValues(t, 3599, body["ext_expires_in"])
	require.NotEmpty(t, body["access_token"])

	// The tenant may be named by a verified domain too.
	res, _ = e.tokenRequest("contoso.onmicrosoft.com", good)
	require.Equal(t, http.StatusOK, res.StatusCode)

	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	cases := []struct {
		name, tenant string
		form         url.Values
		status       int
		err          string
		code         float64
	}{
		{"unknown tenant", "11111111-1111-4111-8111-111111111111", good, 400, "invalid_request", 90002},
		{"unknown client", e.creds.TenantID, with("client_id", "22222222-2222-4222-8222-222222222222"), 400, "unauthorized_client", 700016},
		{"bad secret", e.creds.TenantID, with("client_secret", "nope"), 401, "invalid_client", 7000215},
		{"no secret", e.creds.TenantID, with("client_secret", ""), 401, "invalid_client", 7000218},
		{"bad scope", e.creds.TenantID, with("scope", "https://graph.microsoft.com/User.Read"), 400, "invalid_scope", 1002012},
		{"bad grant", e.creds.TenantID, with("grant_type", "password"), 400, "unsupported_grant_type", 70003},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, body := e.tokenRequest(tc.tenant, tc.form)
			require.Equal(t, tc.status, res.StatusCode)
			require.Equal(t, tc.err, body["error"])
			require.Equal(t, []any{tc.code}, body["error_codes"])
			require.Contains(t, body["error_description"], "AADSTS")
			require.NotEmpty(t, body["trace_id"])
			require.NotEmpty(t, body["correlation_id"])
			require.NotEmpty(t, body["timestamp"])
		})
	}
}

func TestTokenBasicAuth(t *testing.T) {
	e := newEnv(t, Config{})
	req, _ := http.NewRequest("POST", e.srv.URL+"/"+e.creds.TenantID+"/oauth2/v2.0/token",
		stringsReader(url.Values{"grant_type": {"client_credentials"}, "scope": {graphScope}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e.creds.ClientID, e.creds.ClientSecret)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

func TestBearerChecked(t *testing.T) {
	clk := newFakeClock()
	e := newEnv(t, Config{Now: clk.Now})

	tok := e.tok
	e.tok = ""
	code, msg, _ := e.graphErr(401, "GET", "/users", nil)
	require.Equal(t, codeInvalidToken, code)
	require.Equal(t, "Access token is empty.", msg)

	e.tok = "garbage"
	code, _, _ = e.graphErr(401, "GET", "/users", nil)
	require.Equal(t, codeInvalidToken, code)

	e.tok = tok
	e.json(200, "GET", "/users", nil)
	clk.Advance(DefaultTokenLifetime)
	code, msg, _ = e.graphErr(401, "GET", "/users", nil)
	require.Equal(t, codeInvalidToken, code)
	require.Contains(t, msg, "expired")

	// A fresh token works again; ExpireTokens (the token-expiry fault) kills it.
	e.tok = e.token(e.creds.TenantID, e.creds.ClientID, e.creds.ClientSecret)
	e.json(200, "GET", "/users", nil)
	e.sim.ExpireTokens()
	e.graphErr(401, "GET", "/users", nil)

	// Faults.TokenLifetime shortens tokens issued from then on.
	e.sim.SetFaults(Faults{TokenLifetime: time.Minute})
	res, body := e.tokenRequest(e.creds.TenantID, url.Values{"grant_type": {"client_credentials"},
		"client_id": {e.creds.ClientID}, "client_secret": {e.creds.ClientSecret}, "scope": {graphScope}})
	require.Equal(t, 200, res.StatusCode)
	require.EqualValues(t, 60, body["expires_in"])
	e.tok = body["access_token"].(string)
	e.json(200, "GET", "/users", nil)
	clk.Advance(time.Minute)
	e.graphErr(401, "GET", "/users", nil)
}

func TestPermissionsEnforced(t *testing.T) {
	e := newEnv(t, Config{})
	e.json(201, "POST", "/users", newUserBody("ada@contoso.com"))
	g := e.json(201, "POST", "/groups", newGroupBody("Staff"))

	// A read-only app reads but cannot write.
	ro, err := e.sim.AddApp(e.creds.TenantID, AppSpec{Name: "ro", Permissions: []string{PermUserReadAll, PermGroupReadAll}})
	require.NoError(t, err)
	e.tok = e.token(e.creds.TenantID, ro.ClientID, ro.ClientSecret)
	e.json(200, "GET", "/users", nil)
	for _, c := range []struct{ method, path string }{
		{"POST", "/users"}, {"PATCH", "/users/ada@contoso.com"}, {"DELETE", "/users/ada@contoso.com"},
		{"POST", "/groups"}, {"POST", "/groups/" + g["id"].(string) + "/members/$ref"}, {"GET", "/domains"},
	} {
		code, msg, _ := e.graphErr(403, c.method, c.path, map[string]any{"displayName": "x"})
		require.Equal(t, codeDenied, code, "%s %s", c.method, c.path)
		require.Equal(t, msgDenied, msg)
	}

	// GroupMember.ReadWrite.All alone may add members but not rename groups.
	gm, err := e.sim.AddApp(e.creds.TenantID, AppSpec{Name: "gm", Permissions: []string{PermGroupMemberReadWriteAll, PermUserReadAll}})
	require.NoError(t, err)
	e.tok = e.token(e.creds.TenantID, gm.ClientID, gm.ClientSecret)
	uid := e.sim.Users(e.creds.TenantID)[0].ID
	e.json(204, "POST", "/groups/"+g["id"].(string)+"/members/$ref", map[string]any{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/" + uid})
	e.graphErr(403, "PATCH", "/groups/"+g["id"].(string), map[string]any{"displayName": "Renamed"})
}

// W1: pushing a password to an existing user needs the permission and the role.
func TestPasswordProfileNeedsRoleAndPermission(t *testing.T) {
	e := newEnv(t, Config{})
	e.json(201, "POST", "/users", newUserBody("ada@contoso.com"))
	patch := map[string]any{"passwordProfile": map[string]any{"password": "N3w-Passw0rd!x", "forceChangePasswordNextSignIn": false}}

	// User.ReadWrite.All creates users with a password…
	a, err := e.sim.AddApp(e.creds.TenantID, AppSpec{Name: "w", Permissions: []string{PermUserReadWriteAll}, UserAdministrator: true})
	require.NoError(t, err)
	e.tok = e.token(e.creds.TenantID, a.ClientID, a.ClientSecret)
	e.json(201, "POST", "/users", newUserBody("bob@contoso.com"))
	// …but cannot change the password of an existing one, role or not.
	code, _, _ := e.graphErr(403, "PATCH", "/users/ada@contoso.com", patch)
	require.Equal(t, codeDenied, code)
	// Other properties are fine.
	e.json(204, "PATCH", "/users/ada@contoso.com", map[string]any{"jobTitle": "Countess"})

	b, err := e.sim.AddApp(e.creds.TenantID, AppSpec{Name: "p", Permissions: []string{PermUserReadWriteAll, PermUserPasswordProfileReadWrite}})
	require.NoError(t, err)
	e.tok = e.token(e.creds.TenantID, b.ClientID, b.ClientSecret)
	e.graphErr(403, "PATCH", "/users/ada@contoso.com", patch) // permission without the role

	e.tok = e.token(e.creds.TenantID, e.creds.ClientID, e.creds.ClientSecret) // Bootstrap: both
	e.json(204, "PATCH", "/users/ada@contoso.com", patch)
	require.Equal(t, "N3w-Passw0rd!x", e.sim.Users(e.creds.TenantID)[0].Password)
}

package graphsim

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func adminDo(t *testing.T, base, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, base+path, r)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func TestAdminAPI(t *testing.T) {
	sim := New(Config{})
	srv := newServer(t, sim)

	st, b := adminDo(t, srv.URL, "POST", "/_sim/bootstrap", map[string]any{"name": "contoso", "domains": []string{"contoso.com"}})
	require.Equal(t, 201, st, "%s", b)
	var creds Credentials
	require.NoError(t, json.Unmarshal(b, &creds))
	require.NotEmpty(t, creds.ClientSecret)

	st, b = adminDo(t, srv.URL, "POST", "/_sim/tenants/"+creds.TenantID+"/seed", map[string]any{"users": 12, "groups": 2, "membersPerGroup": 5})
	require.Equal(t, 200, st, "%s", b)
	require.Len(t, sim.Users(creds.TenantID), 12)
	groups := sim.Groups(creds.TenantID)
	require.Len(t, groups, 2)
	require.Len(t, groups[0].Members, 5)

	st, b = adminDo(t, srv.URL, "PUT", "/_sim/faults", map[string]any{"replicationDelayMs": 1500, "force429": 2})
	require.Equal(t, 200, st, "%s", b)
	require.Equal(t, Faults{ReplicationDelay: 1500 * time.Millisecond, Force429: 2}, sim.Faults())
	st, _ = adminDo(t, srv.URL, "PUT", "/_sim/faults", map[string]any{"nonsense": 1})
	require.Equal(t, 400, st)
	sim.SetFaults(Faults{})

	e := &env{t: t, sim: sim, srv: srv, creds: creds}
	e.tok = e.token(creds.TenantID, creds.ClientID, creds.ClientSecret)
	e.json(200, "GET", "/users?$top=5", nil)
	st, b = adminDo(t, srv.URL, "GET", "/_sim/requests", nil)
	require.Equal(t, 200, st)
	var log []RequestLog
	require.NoError(t, json.Unmarshal(b, &log))
	require.Len(t, log, 2) // token + GET
	require.Equal(t, "/v1.0/users", log[1].Path)
	require.Equal(t, 200, log[1].Status)
	require.Equal(t, creds.ClientID, log[1].ClientID)
	st, _ = adminDo(t, srv.URL, "DELETE", "/_sim/requests", nil)
	require.Equal(t, 204, st)
	require.Empty(t, sim.Requests())

	st, b = adminDo(t, srv.URL, "GET", "/_sim/state", nil)
	require.Equal(t, 200, st)
	require.Contains(t, string(b), "seed.user.0@contoso.com")

	st, _ = adminDo(t, srv.URL, "POST", "/_sim/tokens/expire", nil)
	require.Equal(t, 204, st)
	e.graphErr(401, "GET", "/users", nil)

	st, _ = adminDo(t, srv.URL, "POST", "/_sim/reset", nil)
	require.Equal(t, 204, st)
	require.Empty(t, sim.Tenants())
}

func TestRunStandalone(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sim.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"seed": 3, "disableThrottling": true,
		"tenants": [{"name": "fabrikam", "domains": ["fabrikam.com"], "seedUsers": 3,
		  "apps": [{"name": "dirsync", "permissions": ["User.ReadWrite.All"], "clientId": "cid", "clientSecret": "sec"}]}]}`), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- RunStandalone(ctx, "127.0.0.1:0", 2, cfg, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base, tenantID string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "graphsim listening on "); ok {
			base = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tenant id:"); ok {
			tenantID = strings.TrimSpace(v)
		}
		if strings.Contains(line, "client secret:") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	require.NotEmpty(t, base)

	res, err := http.PostForm(base+"/"+tenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"cid"}, "client_secret": {"sec"}, "scope": {graphScope}})
	require.NoError(t, err)
	var tok map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&tok))
	res.Body.Close()
	req, _ := http.NewRequest("GET", base+"/v1.0/users", nil)
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var list map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&list))
	res.Body.Close()
	require.Len(t, list["value"], 5, "3 from the config, 2 from seedUsers")

	cancel()
	require.NoError(t, <-done)
}

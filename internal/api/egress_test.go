package api_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/egress"
	tenantconn "github.com/dirsync/dirsync/internal/tenant"
)

// With custom URLs allowed, the token endpoint an admin names answers 307
// to a third host. Authorizing never follows it: the third host never
// receives the client secret, and the error names the login URL. The same
// for a Graph endpoint that redirects (the bearer token would follow).
func TestAuthorizeNeverFollowsRedirects(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")

	var thirdHits, secretSeen atomic.Int32
	third := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		thirdHits.Add(1)
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), creds.ClientSecret) || r.Header.Get("Authorization") != "" {
			secretSeen.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"x","value":[]}`)
	}))
	t.Cleanup(third.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, third.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)

	for field, extra := range map[string]map[string]any{
		"loginBaseURL": {"loginBaseURL": redirector.URL},
		"graphBaseURL": {"graphBaseURL": redirector.URL + "/v1.0"},
	} {
		in := s.createIntegration(org.admin, s.input("via "+field, creds, extra))
		e := s.fails(org.admin, authorizeIntegration, map[string]any{"id": in.ID}, "BAD_USER_INPUT", field)
		assert.Contains(t, e.Message, "redirect")
		assert.NotContains(t, e.Message, creds.ClientSecret)
		assert.Equal(t, "UNAUTHORIZED", s.integration(org.admin, in.ID).Status)
	}
	require.Zero(t, thirdHits.Load(), "the third host received nothing")
	require.Zero(t, secretSeen.Load())
}

// Custom URLs allowed but insecure ones not (production with a sovereign
// cloud or a proxy): plain http, literal loopback/private/link-local
// addresses and "localhost" are refused when saved; a name that resolves to
// such an address is refused when dialled, before anything is sent.
func TestPrivateGraphURLsRefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	s := newSimEnvWith(t, tenantconn.Config{AllowCustomURLs: true}) // production HTTP client
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")
	for url, field := range map[string]string{
		"http://graph.example.com/v1.0":         "graphBaseURL",
		"https://127.0.0.1:9/v1.0":              "graphBaseURL",
		"https://10.0.0.5/v1.0":                 "graphBaseURL",
		"https://169.254.169.254/metadata/v1.0": "graphBaseURL",
		"https://[fd00::1]/v1.0":                "graphBaseURL",
		"https://localhost:9":                   "loginBaseURL",
		s.simURL:                                "loginBaseURL", // the emulator itself: http://127.0.0.1
	} {
		in := s.input("x", creds, map[string]any{field: url})
		if field == "graphBaseURL" {
			in["loginBaseURL"] = nil
		} else {
			in["graphBaseURL"] = nil
		}
		e := s.fails(org.admin, createIntegration, map[string]any{"in": in}, "BAD_USER_INPUT", field)
		assert.Contains(t, e.Message, "not allowed", url)
	}

	// A name (not a literal address) that resolves to a non-public address:
	// this machine's own host name. Refused at dial time, typed.
	host, err := os.Hostname()
	require.NoError(t, err)
	addrs, err := net.LookupHost(host)
	if err != nil || len(addrs) == 0 || !nonPublic(addrs[0]) {
		t.Skipf("host name %q does not resolve to a non-public address here", host)
	}
	var hits atomic.Int32
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	target.Listener, err = net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
	require.NoError(t, err)
	target.StartTLS()
	t.Cleanup(target.Close)
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	base := "https://" + net.JoinHostPort(host, port)
	in := s.createIntegration(org.admin, s.input("rebound", creds, map[string]any{"loginBaseURL": base, "graphBaseURL": base + "/v1.0"}))
	e := s.fails(org.admin, authorizeIntegration, map[string]any{"id": in.ID}, "BAD_USER_INPUT", "loginBaseURL")
	assert.Contains(t, e.Message, "not allowed")
	require.Zero(t, hits.Load(), "nothing reached the private address")
}

func nonPublic(a string) bool {
	addr, err := netip.ParseAddr(a)
	return err == nil && (egress.Policy{}).CheckAddr(addr) != nil
}

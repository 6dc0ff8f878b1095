package egress_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/egress"
)

func TestCheckURL(t *testing.T) {
	strict := egress.Policy{}
	for raw, ok := range map[string]bool{
		"https://graph.microsoft.com/v1.0": true,
		"https://login.example.org":        true,
		"https://20.190.160.1":             true,
		"http://graph.microsoft.com/v1.0":  false, // plain http
		"https://127.0.0.1:8443":           false,
		"https://[::1]/v1.0":               false,
		"https://10.1.2.3":                 false,
		"https://172.16.0.9":               false,
		"https://192.168.1.1":              false,
		"https://169.254.169.254/latest":   false, // cloud metadata
		"https://[fe80::1]":                false,
		"https://[fd00::1]":                false,
		"https://100.64.0.1":               false,
		"https://0.0.0.0":                  false,
		"https://[::ffff:127.0.0.1]":       false,
		"https://localhost:8443":           false,
		"https://api.localhost":            false,
		"ftp://example.org":                false,
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		err = strict.CheckURL(u)
		if ok {
			require.NoError(t, err, raw)
			continue
		}
		require.Error(t, err, raw)
		require.ErrorIs(t, err, egress.ErrBlocked, raw)
		var be *egress.BlockedError
		require.True(t, errors.As(err, &be), raw)
	}
	dev := egress.Policy{AllowInsecure: true}
	for _, raw := range []string{"http://127.0.0.1:8081/v1.0", "https://10.1.2.3", "http://localhost"} {
		u, _ := url.Parse(raw)
		require.NoError(t, dev.CheckURL(u), raw)
	}
}

func TestCheckAddr(t *testing.T) {
	p := egress.Policy{}
	for a, ok := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "127.0.0.2": false, "10.0.0.1": false,
		"169.254.1.1": false, "224.0.0.1": false, "::": false, "198.18.0.1": false,
	} {
		err := p.CheckAddr(netip.MustParseAddr(a))
		require.Equal(t, ok, err == nil, a)
	}
}

// The address is checked when the connection is made, after name
// resolution: "localhost" (a name) is refused like 127.0.0.1, and the server
// never sees a connection. This is what defeats a name that resolved to a
// public address when the URL was saved and resolves to an internal one now.
func TestClientRefusesNonPublicAddressesWhenDialling(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	c := egress.Policy{}.Client(5 * time.Second)
	for _, u := range []string{srv.URL, "http://localhost:" + port} {
		_, err := c.Get(u)
		require.Error(t, err, u)
		require.ErrorIs(t, err, egress.ErrBlocked, u)
	}
	require.Zero(t, hits.Load())

	res, err := egress.Policy{AllowInsecure: true}.Client(5 * time.Second).Get(srv.URL)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.EqualValues(t, 1, hits.Load())
}

// A redirect is handed back, not followed.
func TestClientFollowsNoRedirect(t *testing.T) {
	var third atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { third.Add(1) }))
	t.Cleanup(target.Close)
	redirector := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirector.Close)
	res, err := egress.Policy{AllowInsecure: true}.Client(5*time.Second).Post(redirector.URL, "text/plain", nil)
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusTemporaryRedirect, res.StatusCode)
	require.Zero(t, third.Load())
}

package msgraph

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// thirdHost records everything it receives; a redirect points at it.
type thirdHost struct {
	srv      *httptest.Server
	requests atomic.Int32
	secret   atomic.Bool
	bearer   atomic.Bool
}

func newThirdHost(t *testing.T) *thirdHost {
	h := &thirdHost{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		b, _ := io.ReadAll(r.Body)
		h.secret.Store(strings.Contains(string(b), "s3cr3t-value"))
		h.bearer.Store(r.Header.Get("Authorization") != "")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"stolen","value":[]}`)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// With custom login URLs an admin (or whoever controls that host) could
// answer the token request with a 307 to a third host; following it would
// re-post the client secret there. The client never follows it, the third
// host receives nothing, and the error is typed and not retried.
func TestTokenRedirectIsNeverFollowed(t *testing.T) {
	third := newThirdHost(t)
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound, http.StatusMovedPermanently} {
		f, c, sl := newFake(t, func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"value": []any{}})
		})
		f.token = func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, third.srv.URL+"/steal", status)
		}
		_, err := c.Token(t.Context())
		require.Error(t, err)
		require.ErrorIs(t, err, ErrRedirect, "%d", status)
		ae, ok := IsAuthError(err)
		require.True(t, ok)
		require.Equal(t, status, ae.Status)
		require.NotContains(t, err.Error(), "s3cr3t-value")
		_, err = c.ListDomains(t.Context())
		require.ErrorIs(t, err, ErrRedirect)
		require.EqualValues(t, 2, f.tokenCalls.Load(), "one token request per call, no retries of a redirect")
		require.Empty(t, sl.Waits())
	}
	require.Zero(t, third.requests.Load(), "the third host received nothing")
	require.False(t, third.secret.Load())
}

// The same for Graph calls, which carry the bearer token.
func TestGraphRedirectIsNeverFollowed(t *testing.T) {
	third := newThirdHost(t)
	var graphCalls atomic.Int32
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		graphCalls.Add(1)
		http.Redirect(w, r, third.srv.URL+"/v1.0/domains", http.StatusTemporaryRedirect)
	})
	_, err := c.ListDomains(t.Context())
	require.Error(t, err)
	require.ErrorIs(t, err, ErrRedirect)
	var re *RedirectError
	require.True(t, errors.As(err, &re))
	require.Equal(t, http.StatusTemporaryRedirect, re.Status)
	require.EqualValues(t, 1, graphCalls.Load(), "not retried")
	require.Zero(t, third.requests.Load())
	require.False(t, third.bearer.Load())
}

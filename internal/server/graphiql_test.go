package server

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Issue 13: GraphiQL works offline. The page names no external URL, every
// file it loads is served by the binary with a matching integrity hash, and
// its CSP allows this origin only.
func TestGraphiQLIsServedFromTheBinary(t *testing.T) {
	ts := newTest(t, Config{Playground: true})
	resp, page := get(t, ts.URL+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotRegexp(t, `(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`, page, "no external URL in the page")
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "script-src 'self';")
	require.Contains(t, csp, "connect-src 'self';")
	require.NotContains(t, csp, "http")
	require.NotContains(t, csp, "unsafe-eval")

	refs := regexp.MustCompile(`(?:src|href)="([^"]+)" integrity="([^"]+)"`).FindAllStringSubmatch(page, -1)
	require.Len(t, refs, 6, "GraphiQL, its CSS, React, React DOM, page CSS and init.js")
	for _, m := range refs {
		require.True(t, strings.HasPrefix(m[1], "/graphiql/"), m[1])
		resp, body := get(t, ts.URL+m[1])
		require.Equal(t, http.StatusOK, resp.StatusCode, m[1])
		sum := sha256.Sum256([]byte(body))
		require.Equal(t, "sha256-"+base64.StdEncoding.EncodeToString(sum[:]), html.UnescapeString(m[2]), m[1])
		ct := resp.Header.Get("Content-Type")
		require.True(t, strings.Contains(ct, "javascript") || strings.Contains(ct, "css"), "%s: %s", m[1], ct)
	}
	resp, _ = get(t, ts.URL+"/graphiql/")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "no listing")

	resp, _ = get(t, newTest(t, Config{}).URL+"/graphiql/init.js")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "nothing without DIRSYNC_PLAYGROUND")
	_, js := get(t, ts.URL+"/graphiql/init.js")
	require.Contains(t, js, "subscriptionUrl", "subscriptions over graphql-ws")
	require.Contains(t, js, "Authorization", "the page offers the API-key header")
}

// The page really runs under its CSP in a headless browser: GraphiQL renders
// (the "Loading…" placeholder is replaced). Skipped without chromium
// (apt-get install -y chromium); scripts/graphiql-check.sh does the same
// against a running `dirsync dev` including the schema.
func TestGraphiQLRendersInHeadlessChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" || os.Getenv("DIRSYNC_SKIP_BROWSER") != "" {
		t.Skip("no chromium on PATH")
	}
	// The GraphQL endpoint records the schema request GraphiQL sends on load.
	introspected := make(chan string, 8)
	gql := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "__schema") {
			introspected <- r.Header.Get("Authorization")
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"errors":[{"message":"invalid API key","extensions":{"code":"UNAUTHENTICATED"}}]}`)
	})
	ts := newTest(t, Config{Playground: true, GraphQL: gql})
	out, err := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
		"--dump-dom", ts.URL+"/").Output()
	require.NoError(t, err)
	dom := string(out)
	require.Contains(t, dom, "graphiql-container", "GraphiQL rendered")
	require.NotContains(t, dom, "Loading…")
	var seen []string
	for len(introspected) > 0 {
		seen = append(seen, <-introspected)
	}
	require.NotEmpty(t, seen, "GraphiQL did not request the schema (blocked by its CSP?)")
	require.Contains(t, seen, "Bearer dsk_your_API_key", "the schema request carries the headers editor's key")
}

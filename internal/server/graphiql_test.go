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

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/graph"
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
// (the "Loading…" placeholder is replaced) and loads dirsync's schema with
// the key of its Headers editor; with another key it shows the API's
// refusal. Skipped without chromium (apt-get install -y chromium).
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
	// The GraphQL endpoint is dirsync's real schema (introspection only, no
	// database) behind a key check, and records the schema requests.
	schema := handler.New(graph.NewSchema(nil, 100, graph.Deps{}))
	schema.AddTransport(transport.POST{})
	schema.Use(extension.Introspection{})
	introspected := make(chan string, 8)
	gql := func(key string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if strings.Contains(string(b), "__schema") {
				introspected <- r.Header.Get("Authorization")
			}
			if r.Header.Get("Authorization") != "Bearer "+key {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"message":"invalid API key","extensions":{"code":"UNAUTHENTICATED"}}]}`)
				return
			}
			r.Body = io.NopCloser(strings.NewReader(string(b)))
			schema.ServeHTTP(w, r)
		})
	}
	render := func(key string) string {
		ts := newTest(t, Config{Playground: true, GraphQL: gql(key)})
		out, err := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
			"--dump-dom", ts.URL+"/").Output()
		require.NoError(t, err)
		return string(out)
	}
	// A wrong key: the page shows the API's refusal of the schema request.
	dom := render("dsk_another")
	require.Contains(t, dom, "graphiql-container", "GraphiQL rendered")
	require.NotContains(t, dom, "Loading…")
	require.Contains(t, dom, "invalid API key")
	// The key in the Headers editor: the schema loads, no error shown.
	dom = render("dsk_your_API_key")
	require.NotContains(t, dom, "invalid API key")
	require.NotContains(t, strings.ToLower(dom), "introspection failed")
	var seen []string
	for len(introspected) > 0 {
		seen = append(seen, <-introspected)
	}
	require.NotEmpty(t, seen, "GraphiQL did not request the schema (blocked by its CSP?)")
	require.Contains(t, seen, "Bearer dsk_your_API_key", "the schema request carries the headers editor's key")
}

package server

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// GraphiQL is served entirely from the binary: the pinned GraphiQL, React and
// React DOM builds (internal/server/graphiql, see LICENSES.txt there) and a
// start-up script file, so the page works offline and behind proxies that
// block CDNs, and its Content-Security-Policy allows this origin only.

//go:embed graphiql
var graphiqlFiles embed.FS

// graphiqlAssetPath is where the embedded files are served.
const graphiqlAssetPath = "/graphiql/"

var graphiqlPage = template.Must(template.New("graphiql").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dirsync GraphiQL</title>
<link rel="stylesheet" href="{{.Base}}graphiql.min.css" integrity="{{index .SRI "graphiql.min.css"}}">
<link rel="stylesheet" href="{{.Base}}page.css" integrity="{{index .SRI "page.css"}}">
<script src="{{.Base}}react.production.min.js" integrity="{{index .SRI "react.production.min.js"}}"></script>
<script src="{{.Base}}react-dom.production.min.js" integrity="{{index .SRI "react-dom.production.min.js"}}"></script>
</head>
<body>
<div id="graphiql"><div class="loading">Loading…</div></div>
<script src="{{.Base}}graphiql.min.js" integrity="{{index .SRI "graphiql.min.js"}}"></script>
<script src="{{.Base}}init.js" integrity="{{index .SRI "init.js"}}"></script>
</body>
</html>
`))

// graphiqlCSP allows only this origin. Styles also allow 'unsafe-inline'
// because React and GraphiQL set style attributes, which no hash can cover;
// styles cannot run code. 'self' in connect-src covers same-origin ws: and
// wss: (subscriptions).
const graphiqlCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// graphiQL renders the page once, with a Subresource Integrity hash for each
// embedded file, and returns it with its Content-Security-Policy.
func graphiQL() ([]byte, string, error) {
	sub, err := fs.Sub(graphiqlFiles, "graphiql")
	if err != nil {
		return nil, "", err
	}
	sri := map[string]string{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		sri[p] = "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	if err := graphiqlPage.Execute(&buf, map[string]any{"Base": graphiqlAssetPath, "SRI": sri}); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), graphiqlCSP, nil
}

// graphiqlAssets serves the embedded files. They change only with the
// binary, so caches may keep them for a day.
func graphiqlAssets() http.Handler {
	sub, _ := fs.Sub(graphiqlFiles, "graphiql")
	files := http.StripPrefix(graphiqlAssetPath, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || path.Ext(r.URL.Path) == "" {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

func (s *Server) serveGraphiQL(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", s.graphiqlCSP)
	_, _ = w.Write(s.graphiql)
}

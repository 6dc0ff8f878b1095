package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// apiCSP is the policy of every answer but the GraphiQL page: JSON needs no
// script, style or frame, so a browser that is tricked into rendering one
// runs nothing.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// securityHeaders sets the headers every answer carries (OWASP secure
// headers): no MIME sniffing, no Referer leaking URLs to other sites, no
// caching of API answers (they carry directory data under a bearer key), no
// framing. The GraphiQL handler replaces the CSP with its own.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", apiCSP)
		next.ServeHTTP(w, r)
	})
}

// queuesPolicy is the CSP of the asynq dashboard (asynqmon), a page we do not
// write: it runs an inline bootstrap script and loads its fonts from Google.
// Everything else stays same-origin and unframeable.
const queuesPolicy = "default-src 'self'; script-src 'self' 'unsafe-inline'; " +
	"style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; font-src 'self' data: https://fonts.gstatic.com; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// queuesCSP replaces the API's script-less policy for the dashboard's pages.
func queuesCSP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", queuesPolicy)
		next.ServeHTTP(w, r)
	})
}

// isEventStream matches what gqlgen's SSE transport accepts: a POST asking
// for text/event-stream.
func isEventStream(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// streams lifts the server's write deadline (WriteTimeout) for a
// subscription over SSE, which lives far longer than it, but only after the
// whole body has arrived within ReadTimeout and MaxStreamBodyBytes: a slow
// client cannot use the Accept header to escape the limits. (The read
// deadline needs nothing: net/http clears it itself once the body is read.)
// Websocket upgrades need nothing either: net/http clears a hijacked
// connection's deadlines.
func streams(l Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isEventStream(r) {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.MaxStreamBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, "BAD_REQUEST", fmt.Sprintf("request body larger than %d bytes", l.MaxStreamBodyBytes))
				return
			}
			// A client that stops sending has its connection closed by the
			// read deadline; nothing useful can be written back.
			return
		}
		_ = r.Body.Close()
		// An error means the writer cannot change deadlines (not a net/http
		// server, e.g. in unit tests): then there is none to lift.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		next.ServeHTTP(&noStoreWriter{ResponseWriter: w}, r2)
	})
}

// noStoreWriter keeps Cache-Control at no-store on a stream: gqlgen's SSE
// transport sets no-cache, which still lets a cache keep the events.
type noStoreWriter struct {
	http.ResponseWriter
	wrote bool
}

var _ http.Flusher = (*noStoreWriter)(nil)

func (w *noStoreWriter) header() {
	if !w.wrote {
		w.wrote = true
		w.Header().Set("Cache-Control", "no-store")
	}
}

func (w *noStoreWriter) WriteHeader(code int) {
	w.header()
	w.ResponseWriter.WriteHeader(code)
}

func (w *noStoreWriter) Write(b []byte) (int, error) {
	w.header()
	return w.ResponseWriter.Write(b)
}

func (w *noStoreWriter) Flush() {
	w.header()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *noStoreWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{
		"errors": []map[string]any{{"message": msg, "extensions": map[string]string{"code": code}}},
	})
}

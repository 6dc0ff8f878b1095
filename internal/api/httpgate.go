package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/dirsync/dirsync/internal/gqlerr"
)

// httpGate answers requests gqlgen's transports cannot serve with a typed
// error (extensions.code BAD_REQUEST) instead of gqlgen's untyped one or, for
// an undecodable body, a panic in an extension: a method other than GET, POST
// or OPTIONS (405), a POST that is not application/json (415), a body that
// is not a GraphQL request object (400) or too large (413), and a mutation
// or subscription sent as GET (405: GET must be safe, so browsers and
// proxies may repeat or prefetch it). Websocket upgrades pass through.
func httpGate(maxTokens int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodOptions:
		case http.MethodGet:
			if msg := getProblem(r, maxTokens); msg != "" {
				status := http.StatusBadRequest
				if msg == getNotQuery {
					w.Header().Set("Allow", "POST")
					status = http.StatusMethodNotAllowed
				}
				writeError(w, status, gqlerr.BadRequest, msg)
				return
			}
		case http.MethodPost:
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, gqlerr.BadRequest, "Content-Type must be application/json")
				return
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
					writeError(w, http.StatusRequestEntityTooLarge, gqlerr.BadRequest, fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
					return
				}
				writeError(w, http.StatusBadRequest, gqlerr.BadRequest, "the request body could not be read")
				return
			}
			// Decoded as gqlgen's POST transport will decode it, so what
			// passes here cannot fail there.
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var params graphql.RawParams
			if err := dec.Decode(&params); err != nil {
				writeError(w, http.StatusBadRequest, gqlerr.BadRequest,
					"the request body must be a JSON object {query, operationName, variables, extensions}: "+jsonProblem(err))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		default:
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, gqlerr.BadRequest, "method not allowed: use POST (or GET for queries)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

const getNotQuery = "only queries may be sent as GET: send mutations and subscriptions as POST"

// getProblem checks a GET request's parameters; "" means gqlgen may serve it.
// The query is parsed (up to the token limit) only to find the operation's
// type; syntax errors are left to gqlgen, which reports their position.
func getProblem(r *http.Request, maxTokens int) string {
	q := r.URL.Query()
	for _, name := range []string{"variables", "extensions"} {
		if v := q.Get(name); v != "" {
			var m map[string]any
			if err := json.Unmarshal([]byte(v), &m); err != nil {
				return name + " must be a JSON object: " + jsonProblem(err)
			}
		}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: q.Get("query")}, max(maxTokens, 0))
	if err != nil {
		return ""
	}
	if op := doc.Operations.ForName(q.Get("operationName")); op != nil && op.Operation != ast.Query {
		return getNotQuery
	}
	return ""
}

// jsonProblem names what is wrong without echoing the body back.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s must not be a JSON %s", typ.Field, typ.Value)
		}
		return fmt.Sprintf("a JSON %s is not an object", typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	return "invalid JSON"
}

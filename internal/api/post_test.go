package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// postServer is a gqlgen server with one transport, whose operations answer
// resp whatever they ask.
func postServer(t transport.POST, ours bool, resp func() *graphql.Response) http.Handler {
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: `type Query { name: String! }`})
	srv := handler.New(&graphql.ExecutableSchemaMock{
		SchemaFunc: func() *ast.Schema { return schema },
		ComplexityFunc: func(context.Context, string, string, int, map[string]any) (int, bool) {
			return 1, false
		},
		ExecFunc: func(ctx context.Context) graphql.ResponseHandler {
			done := false
			return func(context.Context) *graphql.Response {
				if done {
					return nil
				}
				done = true
				return resp()
			}
		},
	})
	if ours {
		srv.AddTransport(postTransport{t})
	} else {
		srv.AddTransport(t)
	}
	return srv
}

// Every answer of postTransport is byte for byte gqlgen's: status, content
// type and body, for answers with data, errors and extensions, characters
// json.Marshal escapes, and each of the transport's own error paths.
func TestPOSTWritesWhatGqlgenWrites(t *testing.T) {
	hasNext := false
	answers := map[string]func() *graphql.Response{
		"data": func() *graphql.Response {
			return &graphql.Response{Data: []byte(`{"name":"a"}`)}
		},
		"escaped": func() *graphql.Response {
			return &graphql.Response{Data: []byte("{\"name\":\"<b>Tom & Jerry</b> \u2028\u2029 é \u2027 \\u0026\",\"n\":[1,2.5,null,true]}")}
		},
		"errors and extensions": func() *graphql.Response {
			return &graphql.Response{
				Data:       []byte(`{"name":null}`),
				Errors:     gqlerror.List{{Message: "no <name> & no luck", Path: ast.Path{ast.PathName("name")}, Extensions: map[string]any{"code": "NOT_FOUND"}}},
				Extensions: map[string]any{"b": 1, "a": "<x>"},
			}
		},
		"null data": func() *graphql.Response {
			return &graphql.Response{Errors: gqlerror.List{{Message: "failed"}}}
		},
		"incremental": func() *graphql.Response {
			return &graphql.Response{Data: []byte(`{"name":"a"}`), HasNext: &hasNext, Label: "l", Path: ast.Path{ast.PathName("x")}}
		},
	}
	requests := map[string]struct{ body, accept string }{
		"query":                  {`{"query":"{ name }"}`, ""},
		"query, graphql accept":  {`{"query":"{ name }"}`, "application/graphql-response+json"},
		"query, any accept":      {`{"query":"{ name }"}`, "text/html, */*;q=0.8"},
		"query, unknown accept":  {`{"query":"{ name }"}`, "text/html"},
		"syntax error":           {`{"query":"{ name "}`, ""},
		"syntax error, graphql":  {`{"query":"{ name "}`, "application/graphql-response+json"},
		"unknown field":          {`{"query":"{ nom }"}`, ""},
		"not json":               {`{"query":`, ""},
		"no query":               {`{}`, ""},
		"variables, operation":   {`{"query":"query Q { name }","operationName":"Q","variables":{"a":1}}`, ""},
		"unknown operation name": {`{"query":"query Q { name }","operationName":"R"}`, ""},
	}
	for an, answer := range answers {
		gqlgen := postServer(transport.POST{}, false, answer)
		ours := postServer(transport.POST{}, true, answer)
		for rn, req := range requests {
			t.Run(an+"/"+rn, func(t *testing.T) {
				do := func(h http.Handler) *httptest.ResponseRecorder {
					r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(req.body))
					r.Header.Set("Content-Type", "application/json")
					if req.accept != "" {
						r.Header.Set("Accept", req.accept)
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					return w
				}
				want, got := do(gqlgen), do(ours)
				require.Equal(t, want.Code, got.Code)
				require.Equal(t, want.Header(), got.Header())
				require.Equal(t, want.Body.String(), got.Body.String())
			})
		}
	}
}

// Data present but empty is not JSON: gqlgen's writer panics on it (the
// request fails with no answer); ours writes null, as for no data.
func TestPOSTEmptyDataIsNull(t *testing.T) {
	h := postServer(transport.POST{}, true, func() *graphql.Response {
		return &graphql.Response{Data: []byte{}, Errors: gqlerror.List{{Message: "failed"}}}
	})
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"query":"{ name }"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, `{"errors":[{"message":"failed"}],"data":null}`, w.Body.String())
}

func TestAppendHTMLEscapedCutSequences(t *testing.T) {
	// Bytes that only start a separator's encoding are copied as they are.
	for in, want := range map[string]string{
		"\xe2":          "\xe2",
		"\xe2\x80":      "\xe2\x80",
		"a\xe2\x80\xa7": "a\xe2\x80\xa7",
		"\u2029x":       `\u2029x`,
		"<>&":           `\u003c\u003e\u0026`,
	} {
		var out bytes.Buffer
		appendHTMLEscaped(&out, []byte(in))
		require.Equal(t, want, out.String(), "%q", in)
	}
}

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/gqlerr"
)

// publicMutations need no credential: the end user has none yet (O2). They
// are the only fields a request without Authorization can reach; see
// publicOperation and scope.
var publicMutations = map[string]bool{
	"portalLogin": true, "activateAccount": true, "requestPasswordReset": true, "resetPassword": true,
}

// portalFields are the root fields a portal session may use, and the only ones
// an API key may not.
var portalFields = map[string]bool{"Query.me": true, "Mutation.changeMyPassword": true, "Mutation.portalLogout": true}

// publicOperation reports whether r, sent without any credential, is a POST
// whose operation is a mutation selecting public mutations only (no fragment
// spreads at the root, no persisted-query hash standing in for the text). The
// body is read (bounded) and put back for gqlgen. Anything else without a
// credential is answered 401 before gqlgen sees it; scope checks the same
// again per field, so a parser disagreement cannot open another field.
func publicOperation(r *http.Request, maxBytes int64) bool {
	if r.Method != http.MethodPost || r.Body == nil {
		return false
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err != nil || int64(len(raw)) > maxBytes {
		return false
	}
	var body struct {
		Query         string `json:"query"`
		OperationName string `json:"operationName"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Query == "" {
		return false
	}
	doc, gerr := parser.ParseQuery(&ast.Source{Input: body.Query})
	if gerr != nil {
		return false
	}
	var op *ast.OperationDefinition
	switch {
	case body.OperationName != "":
		op = doc.Operations.ForName(body.OperationName)
	case len(doc.Operations) == 1:
		op = doc.Operations[0]
	}
	if op == nil || op.Operation != ast.Mutation || len(op.SelectionSet) == 0 {
		return false
	}
	for _, sel := range op.SelectionSet {
		f, ok := sel.(*ast.Field)
		if !ok || !publicMutations[f.Name] {
			return false
		}
	}
	return true
}

// clientIP is the caller's address as the server sees it. Behind a proxy this
// is the proxy: rate limits per IP then count the proxy's callers together,
// which errs on the safe side.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// scope is the allow-list of root fields per kind of caller: without a
// credential only the public mutations; a portal session only its portal
// fields (and the public ones); an API key everything but the portal fields.
// The privacy policy backs it: a portal session reads its own user row only.
func scope(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || (fc.Object != "Query" && fc.Object != "Mutation" && fc.Object != "Subscription") ||
		fc.Field.Name == "__typename" {
		return next(ctx)
	}
	name := fc.Object + "." + fc.Field.Name
	if fc.Object == "Mutation" && publicMutations[fc.Field.Name] {
		return next(ctx)
	}
	v, ok := auth.ViewerFrom(ctx)
	switch {
	case !ok:
		return nil, gqlerr.Newf(gqlerr.Unauthenticated, "", "authentication required")
	case v.IsPortal() && !portalFields[name]:
		return nil, gqlerr.Newf(gqlerr.Forbidden, "", "a portal session may only use me, changeMyPassword and portalLogout")
	case !v.IsPortal() && portalFields[name]:
		return nil, gqlerr.Newf(gqlerr.Forbidden, "", "%s needs a portal session, not an API key", fc.Field.Name)
	}
	return next(ctx)
}

// portalOrPublic reports whether the mutation field is one requireWriter
// leaves to scope (the portal's own calls are not writes of an API key).
func portalOrPublic(fc *graphql.FieldContext) bool {
	return fc.Object == "Mutation" && (publicMutations[fc.Field.Name] || portalFields["Mutation."+fc.Field.Name])
}

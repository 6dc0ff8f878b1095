package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/dirsync/dirsync/internal/gqlerr"
)

// Defaults of the document limits in Config.
const (
	DefaultMaxTokens  = 5000
	DefaultMaxDepth   = 15
	DefaultMaxAliases = 100
	DefaultMaxFields  = 500
)

func init() {
	// Like gqlgen's parse and validation errors: the document is refused
	// before anything runs (HTTP 422, a graphql-transport-ws `error` message).
	errcode.RegisterErrorType(string(gqlerr.QueryLimitExceeded), errcode.KindProtocol)
	errcode.RegisterErrorType(string(gqlerr.BadRequest), errcode.KindProtocol)
}

// queryLimits refuses a document that is too long, too deep, or has too many
// aliases or fields before gqlgen validates it. Validation is the expensive
// part of a hostile document: overlapping-field checking is quadratic in the
// fields sharing a name (6,000 copies of one field took seconds of CPU), and
// it runs before the complexity limit can look at the operation. Parsing is
// linear and stops at the token limit, so this check costs little; documents
// already in gqlgen's cache passed it and are not parsed again.
//
// A limit < 0 is off (benchmarks measure the unlimited baseline with it).
type queryLimits struct {
	maxTokens, maxDepth, maxAliases, maxFields int
	cache                                      graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = queryLimits{}

func (queryLimits) ExtensionName() string                   { return "QueryLimits" }
func (queryLimits) Validate(graphql.ExecutableSchema) error { return nil }
func limitError(limit string, max int, format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{
		Message: fmt.Sprintf(format, args...),
		Extensions: map[string]any{
			"code": string(gqlerr.QueryLimitExceeded), "limit": limit, "max": max,
		},
	}
}

// MutateOperationParameters implements graphql.OperationParameterMutator.
func (l queryLimits) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		return nil // gqlgen answers "no operation provided"
	}
	if _, ok := l.cache.Get(ctx, p.Query); ok {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, max(l.maxTokens, 0))
	if err != nil {
		if gerr := (*gqlerror.Error)(nil); errors.As(err, &gerr) && strings.HasPrefix(gerr.Message, "exceeded token limit") {
			return limitError("tokens", l.maxTokens, "the document has more than %d tokens", l.maxTokens)
		}
		return nil // a syntax error: gqlgen reports it with its position
	}
	s := measure(doc)
	switch {
	case l.maxFields >= 0 && s.fields > l.maxFields:
		return limitError("fields", l.maxFields, "the document selects %d fields, more than the limit of %d", s.fields, l.maxFields)
	case l.maxAliases >= 0 && s.aliases > l.maxAliases:
		return limitError("aliases", l.maxAliases, "the document has %d aliases, more than the limit of %d", s.aliases, l.maxAliases)
	case l.maxDepth >= 0 && s.depth > l.maxDepth:
		return limitError("depth", l.maxDepth, "the document nests fields %d deep, more than the limit of %d", s.depth, l.maxDepth)
	}
	return nil
}

// docStats are the sizes queryLimits bounds. fields and aliases count what
// the document spells out; depth follows fragment spreads, since a fragment
// nests its fields wherever it is spread.
type docStats struct{ fields, aliases, depth int }

func measure(doc *ast.QueryDocument) docStats {
	var s docStats
	var count func(ast.SelectionSet)
	count = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				s.fields++
				if sel.Alias != "" && sel.Alias != sel.Name {
					s.aliases++
				}
				count(sel.SelectionSet)
			case *ast.InlineFragment:
				count(sel.SelectionSet)
			}
		}
	}
	for _, op := range doc.Operations {
		count(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		count(f.SelectionSet)
	}
	d := depthWalker{doc: doc, memo: map[string]int{}, onPath: map[string]bool{}}
	for _, op := range doc.Operations {
		s.depth = max(s.depth, d.set(op.SelectionSet))
	}
	return s
}

// depthWalker measures how deep fields nest, each fragment once (memo), and
// does not follow a fragment into itself (a cycle, which validation refuses).
type depthWalker struct {
	doc    *ast.QueryDocument
	memo   map[string]int
	onPath map[string]bool
}

func (w depthWalker) set(set ast.SelectionSet) int {
	d := 0
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			d = max(d, 1+w.set(sel.SelectionSet))
		case *ast.InlineFragment:
			d = max(d, w.set(sel.SelectionSet))
		case *ast.FragmentSpread:
			d = max(d, w.fragment(sel.Name))
		}
	}
	return d
}

func (w depthWalker) fragment(name string) int {
	if d, ok := w.memo[name]; ok {
		return d
	}
	f := w.doc.Fragments.ForName(name)
	if f == nil || w.onPath[name] {
		return 0
	}
	w.onPath[name] = true
	d := w.set(f.SelectionSet)
	delete(w.onPath, name)
	w.memo[name] = d
	return d
}

// validationRules are gqlparser's rules; with suggestions off, none of them
// answers "Did you mean …", which would spell out the schema that disabled
// introspection keeps private.
func validationRules(suggestions bool) func() *rules.Rules {
	return func() *rules.Rules {
		r := rules.NewDefaultRules()
		if suggestions {
			return r
		}
		for _, rule := range []core.Rule{
			rules.FieldsOnCorrectTypeRuleWithoutSuggestions,
			rules.KnownArgumentNamesRuleWithoutSuggestions,
			rules.KnownTypeNamesRuleWithoutSuggestions,
			rules.ScalarLeafsRuleWithoutSuggestions,
			rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
		} {
			r.RemoveRule(strings.TrimSuffix(rule.Name, "WithoutSuggestions"))
			r.AddRule(rule.Name, rule.RuleFunc)
		}
		return r
	}
}

type websocketKey struct{}

// operationGate refuses, after validation and before anything runs, what a
// transport must not run: a query or mutation sent as a websocket subscribe
// or an SSE stream (gqlgen would commit the mutation, then fail writing its
// result; clients send those as a plain HTTP POST), and introspection when
// it is off. Refusing
// introspection is the client's business, so it is logged at INFO, not as an
// internal error.
type operationGate struct {
	introspection bool
	logger        *slog.Logger
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = operationGate{}

func (operationGate) ExtensionName() string                   { return "OperationGate" }
func (operationGate) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (g operationGate) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	if oc.Operation.Operation != ast.Subscription {
		over := ""
		switch {
		case ctx.Value(websocketKey{}) != nil:
			over = "a websocket"
		case ctx.Value(sseLimiterKey{}) != nil:
			over = "an event stream"
		}
		if over != "" {
			return &gqlerror.Error{
				Message:    fmt.Sprintf("a %s cannot run over %s: send it as an HTTP POST", oc.Operation.Operation, over),
				Extensions: map[string]any{"code": string(gqlerr.BadRequest)},
			}
		}
	}
	if !g.introspection && introspects(oc.Operation.SelectionSet) {
		g.logger.InfoContext(ctx, "introspection refused: disabled on this server")
		return &gqlerror.Error{
			Message:    "introspection is disabled on this server",
			Extensions: map[string]any{"code": string(gqlerr.Forbidden)},
		}
	}
	return nil
}

// introspects reports a __schema or __type field among the root fields,
// through fragments (validated: spreads are resolved and acyclic).
func introspects(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == "__schema" || sel.Name == "__type" {
				return true
			}
		case *ast.InlineFragment:
			if introspects(sel.SelectionSet) {
				return true
			}
		case *ast.FragmentSpread:
			if sel.Definition != nil && introspects(sel.Definition.SelectionSet) {
				return true
			}
		}
	}
	return false
}

// transactioner is entgql's, tolerating a response without an operation:
// gqlgen dispatches transport errors (an undecodable body) before there is
// one, and entgql's interceptor then panics.
type transactioner struct{ entgql.Transactioner }

// InterceptResponse implements graphql.ResponseInterceptor.
func (t transactioner) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if !graphql.HasOperationContext(ctx) || graphql.GetOperationContext(ctx).Operation == nil {
		return next(ctx)
	}
	return t.Transactioner.InterceptResponse(ctx, next)
}

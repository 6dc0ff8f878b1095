// Package gqlerr is the one place errors become GraphQL errors: stable codes in
// extensions.code, the offending input field in extensions.field, and a single
// translator from ent, privacy and PostgreSQL errors. Anything it does not
// recognise is INTERNAL, with the details in the log only.
package gqlerr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/lib/pq"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/privacy"
	"github.com/dirsync/dirsync/ent/schema"
	"github.com/dirsync/dirsync/internal/auth/viewer"
)

// Code is a stable machine-readable error class.
type Code string

// The codes clients may rely on; see docs/api.md.
const (
	BadUserInput    Code = "BAD_USER_INPUT"
	Conflict        Code = "CONFLICT"
	NotFound        Code = "NOT_FOUND"
	Forbidden       Code = "FORBIDDEN"
	Unauthenticated Code = "UNAUTHENTICATED"
	// FailedPrecondition: the request is well-formed but the object is not in
	// a state that allows it (e.g. binding users to an unauthorized integration,
	// or a tenant app without a required Graph permission).
	FailedPrecondition Code = "FAILED_PRECONDITION"
	// Unavailable: a remote service (the Entra tenant) could not be reached;
	// retrying later may succeed.
	Unavailable Code = "UNAVAILABLE"
	Internal    Code = "INTERNAL"
	// TooManyRequests: a rate limit (portal logins and resets) refused the call.
	TooManyRequests Code = "TOO_MANY_REQUESTS"
	// Aborted marks a mutation not run because an earlier one of the same
	// request failed (the request's transaction is rolled back anyway).
	Aborted Code = "ABORTED"
	// BadRequest: the HTTP request or websocket message itself is unusable
	// (not JSON, wrong content type or method, a mutation where only
	// subscriptions may run); nothing was run.
	BadRequest Code = "BAD_REQUEST"
	// QueryLimitExceeded: the document is too deep, too long or has too
	// many aliases or fields; refused before validation, nothing was run.
	QueryLimitExceeded Code = "QUERY_LIMIT_EXCEEDED"
)

// Error is an error a client may see. Domain packages return it directly when
// they know the code and field; everything else goes through Translate.
type Error struct {
	Code    Code
	Field   string // GraphQL name of the input field at fault, if any
	Message string
	Err     error // cause, for logs and errors.Is; never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Newf returns an Error with code, field and a formatted message.
func Newf(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// BadInput reports an invalid value of an input field.
func BadInput(field, format string, args ...any) *Error {
	return Newf(BadUserInput, field, format, args...)
}

// NotFoundf reports an id that does not exist for the caller.
func NotFoundf(field, format string, args ...any) *Error {
	return Newf(NotFound, field, format, args...)
}

// uniqueFields maps unique constraint names to the input field they protect.
var uniqueFields = map[string]string{
	schema.UniqueUserUsername:    "username",
	schema.UniqueUserEmail:       "email",
	schema.UniqueGroupName:       "name",
	schema.UniqueOrgName:         "name",
	schema.UniqueIntegrationName: "name",
}

// PostgreSQL error codes we translate.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgCheckViolation      = "23514"
	pgStringTooLong       = "22001"
)

// Translate maps err to an Error a client may see. It is idempotent.
func Translate(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var verr *ent.ValidationError
	if errors.As(err, &verr) {
		field := GraphQLName(verr.Name)
		msg := field + " is invalid"
		if cause := verr.Unwrap(); cause != nil {
			msg = field + " " + trimEntPrefix(cause.Error())
		}
		return &Error{Code: BadUserInput, Field: field, Message: msg, Err: err}
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch string(pqErr.Code) {
		case pgUniqueViolation:
			field := uniqueFields[pqErr.Constraint]
			msg := "already exists"
			if field != "" {
				msg = field + " is already taken in this organization"
			}
			return &Error{Code: Conflict, Field: field, Message: msg, Err: err}
		case pgForeignKeyViolation:
			return &Error{Code: NotFound, Message: "a referenced object does not exist", Err: err}
		case pgCheckViolation, pgStringTooLong:
			return &Error{Code: BadUserInput, Message: "a value is out of range", Err: err}
		}
	}
	if ent.IsNotFound(err) {
		return &Error{Code: NotFound, Message: "not found", Err: err}
	}
	if ent.IsNotSingular(err) {
		return &Error{Code: Internal, Message: "internal error", Err: err}
	}
	if errors.Is(err, privacy.Deny) {
		switch {
		case errors.Is(err, viewer.ErrReadOnly):
			return &Error{Code: Forbidden, Message: "the API key is read-only", Err: err}
		case errors.Is(err, viewer.ErrNoViewer):
			return &Error{Code: Unauthenticated, Message: "authentication required", Err: err}
		}
		return &Error{Code: Forbidden, Message: "forbidden", Err: err}
	}
	return &Error{Code: Internal, Message: "internal error", Err: err}
}

func trimEntPrefix(s string) string {
	// ent validators wrap our message as: `ent: validator failed for field "User.username": <ours>`.
	if i := strings.LastIndex(s, `": `); i >= 0 && strings.HasPrefix(s, "ent: ") {
		return s[i+3:]
	}
	return s
}

// GraphQLName converts an ent field name to its GraphQL name the way entgql
// does (first_name → firstName, employee_id → employeeID).
func GraphQLName(entName string) string {
	parts := strings.Split(entName, "_")
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i == 0:
			b.WriteString(p)
		case p == "id":
			b.WriteString("ID")
		case p != "":
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

// FieldMiddleware translates every resolver error, logging the cause of
// INTERNAL ones, so the presenter only ever sees translated errors from
// resolvers. Errors that arise before a resolver runs (parsing, validation,
// argument coercion) come from the request itself.
func FieldMiddleware(logger *slog.Logger) graphql.FieldMiddleware {
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		res, err := next(ctx)
		if err == nil {
			return res, nil
		}
		e := Translate(err)
		if e.Code == Internal {
			fc := graphql.GetFieldContext(ctx)
			path := ""
			if fc != nil {
				path = fc.Path().String()
			}
			logger.ErrorContext(ctx, "graphql resolver failed", "path", path, "err", err)
		}
		return res, e
	}
}

// Presenter renders errors with extensions.code and extensions.field.
func Presenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var e *Error
		if errors.As(err, &e) {
			gqlErr.Message = e.Message
			setExt(gqlErr, "code", string(e.Code))
			if e.Field != "" {
				setExt(gqlErr, "field", e.Field)
			}
			return gqlErr
		}
		if _, ok := gqlErr.Extensions["code"]; ok {
			return gqlErr // gqlgen's own parse/validation codes
		}
		// Not from a resolver (those are translated by FieldMiddleware): an
		// argument that could not be coerced, e.g. a malformed cursor or enum.
		setExt(gqlErr, "code", string(BadUserInput))
		if n := len(gqlErr.Path); n > 0 {
			if name, ok := gqlErr.Path[n-1].(ast.PathName); ok {
				setExt(gqlErr, "field", string(name))
			}
		}
		return gqlErr
	}
}

func setExt(e *gqlerror.Error, k string, v any) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions[k] = v
}

// RecoverFunc turns a resolver panic into an INTERNAL error, logging it.
func RecoverFunc(logger *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "graphql resolver panicked", "panic", p)
		return &Error{Code: Internal, Message: "internal error", Err: fmt.Errorf("panic: %v", p)}
	}
}

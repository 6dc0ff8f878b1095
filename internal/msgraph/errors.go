package msgraph

// Every place where the client has to recognise a Graph answer by its text lives
// in this file: Graph often leaves no better signal than the message (GRAPH.md,
// "Error envelope"), and keeping the strings together means one file to fix when
// Microsoft rewords one of them. Callers branch on the Is* helpers, never on
// Error().

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/dirsync/dirsync/internal/egress"
)

// Graph error codes the client branches on.
const (
	CodeBadRequest          = "Request_BadRequest"
	CodeResourceNotFound    = "Request_ResourceNotFound"
	CodeUnsupportedQuery    = "Request_UnsupportedQuery"
	CodeAuthorizationDenied = "Authorization_RequestDenied"
	CodeInvalidAuthToken    = "InvalidAuthenticationToken"
	CodeTooManyRequests     = "TooManyRequests"
	CodeSyncStateNotFound   = "syncStateNotFound"
	DetailObjectConflict    = "ObjectConflict"
	DetailInvalidValue      = "InvalidValue"
)

// Lower-cased message fragments from GRAPH.md, for the answers where Graph
// gives no detail code.
const (
	msgUPNConflict          = "another object with the same value for property userprincipalname already exists"
	msgMemberAlreadyPresent = "one or more added object references already exist"
	msgMemberAbsent         = "one or more removed object references do not exist"
	msgUnverifiedDomain     = "the domain portion of the userprincipalname property is invalid"
	msgWeakPassword         = "does not comply with password complexity requirements"
)

const (
	maxErrorBodyInMessage    = 512
	propertyUserPrincipal    = "userPrincipalName"
	requestIDHeader          = "request-id"
	clientRequestIDHeader    = "client-request-id"
	throttleInformationHdr   = "x-ms-throttle-information"
	consistencyLevelHeader   = "ConsistencyLevel"
	consistencyLevelEventual = "eventual"
)

// ErrDeltaReset means the delta token is no longer accepted (410 Gone or
// 400 syncStateNotFound): the caller must drop its persisted deltaLink and run a
// full round again.
var ErrDeltaReset = errors.New("msgraph: delta token expired or unknown, full resync required")

// ErrForeignLink is returned when an @odata.nextLink or @odata.deltaLink points
// at a host other than the configured Graph host; following it would hand our
// bearer token to that host.
var ErrForeignLink = errors.New("msgraph: link does not point at the configured Graph host")

// ErrRedirect is in the chain of a token or Graph answer that was a redirect
// (3xx). Redirects are never followed (the secret or token would go to the
// redirect's host), so such an answer is an error.
var ErrRedirect = errors.New("msgraph: the endpoint answered with a redirect, which is never followed")

// RedirectError is a 3xx answer of Graph or of the token endpoint.
type RedirectError struct {
	Status int
	Method string
	Path   string // empty for the token endpoint
}

func (e *RedirectError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("msgraph: token endpoint answered %d (a redirect, never followed)", e.Status)
	}
	return fmt.Sprintf("msgraph: %s %s answered %d (a redirect, never followed)", e.Method, e.Path, e.Status)
}

// Is makes errors.Is(err, ErrRedirect) true.
func (e *RedirectError) Is(target error) bool { return target == ErrRedirect }

// Detail is one entry of error.details.
type Detail struct {
	Code    string `json:"code"`
	Target  string `json:"target"`
	Message string `json:"message,omitempty"`
}

// Error is a non-success Graph answer. It never carries request bodies, so it
// cannot leak passwords or secrets into logs.
type Error struct {
	Method          string
	Path            string // path only: no query string, no host
	Status          int
	Code            string
	Message         string
	Details         []Detail
	RequestID       string
	ClientRequestID string
	// ThrottleInfo is x-ms-throttle-information (ResourceUnitLimitExceeded,
	// WriteLimitExceeded) when Graph sent it.
	ThrottleInfo string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("msgraph: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for _, d := range e.Details {
		fmt.Fprintf(&b, " [%s %s]", d.Code, d.Target)
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id " + e.RequestID + ")")
	}
	return b.String()
}

type errorEnvelope struct {
	Error struct {
		Code       string   `json:"code"`
		Message    string   `json:"message"`
		Details    []Detail `json:"details"`
		InnerError struct {
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// parseError builds an *Error from a status, headers and body. It works for both
// top-level answers and $batch inner responses (whose headers are a plain map).
func parseError(status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{Status: status}
	var env errorEnvelope
	if json.Unmarshal(body, &env) == nil && (env.Error.Code != "" || env.Error.Message != "") {
		e.Code = env.Error.Code
		e.Message = env.Error.Message
		e.Details = env.Error.Details
		e.RequestID = env.Error.InnerError.RequestID
		e.ClientRequestID = env.Error.InnerError.ClientRequestID
	} else if len(body) > 0 {
		// Non-Graph bodies (proxies, gateways) are kept short: they are for humans.
		msg := strings.TrimSpace(string(body))
		if len(msg) > maxErrorBodyInMessage {
			msg = msg[:maxErrorBodyInMessage] + "…"
		}
		e.Message = msg
	}
	if header != nil {
		if e.RequestID == "" {
			e.RequestID = header.Get(requestIDHeader)
		}
		if e.ClientRequestID == "" {
			e.ClientRequestID = header.Get(clientRequestIDHeader)
		}
		e.ThrottleInfo = header.Get(throttleInformationHdr)
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	}
	return e
}

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func msgContains(e *Error, s string) bool {
	return strings.Contains(strings.ToLower(e.Message), s)
}

func hasDetail(e *Error, code, target string) bool {
	for _, d := range e.Details {
		if strings.EqualFold(d.Code, code) && (target == "" || strings.EqualFold(d.Target, target)) {
			return true
		}
	}
	return false
}

// IsNotFound reports a 404 (Request_ResourceNotFound or any other 404 code).
func IsNotFound(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusNotFound
}

// IsUPNConflict reports "another object with the same userPrincipalName exists":
// 400 Request_BadRequest with an ObjectConflict detail on userPrincipalName, or,
// when Graph omits details, the documented message.
func IsUPNConflict(err error) bool {
	e, ok := asError(err)
	if !ok || e.Status != http.StatusBadRequest {
		return false
	}
	return hasDetail(e, DetailObjectConflict, propertyUserPrincipal) ||
		(e.Code == CodeBadRequest && msgContains(e, msgUPNConflict))
}

// IsMemberAlreadyPresent reports an add of a member the group already has.
// Graph gives no detail code for this one, only the message.
func IsMemberAlreadyPresent(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusBadRequest && e.Code == CodeBadRequest && msgContains(e, msgMemberAlreadyPresent)
}

// IsMemberAbsent reports a removal of a member the group does not have.
func IsMemberAbsent(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusBadRequest && e.Code == CodeBadRequest && msgContains(e, msgMemberAbsent)
}

// IsUnverifiedDomain reports a UPN whose domain is not verified in the tenant (D2).
func IsUnverifiedDomain(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusBadRequest && e.Code == CodeBadRequest && msgContains(e, msgUnverifiedDomain)
}

// IsWeakPassword reports a password rejected by the tenant's complexity policy.
func IsWeakPassword(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusBadRequest && e.Code == CodeBadRequest && msgContains(e, msgWeakPassword)
}

// IsInvalidValue reports a property rejected as invalid (e.g. mailNickname) and
// returns the offending property.
func IsInvalidValue(err error) (string, bool) {
	e, ok := asError(err)
	if !ok || e.Status != http.StatusBadRequest {
		return "", false
	}
	for _, d := range e.Details {
		if strings.EqualFold(d.Code, DetailInvalidValue) {
			return d.Target, true
		}
	}
	return "", false
}

// IsThrottled reports a 429 that outlived the retry policy.
func IsThrottled(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusTooManyRequests
}

// IsForbidden reports a missing permission or role (403 Authorization_RequestDenied),
// e.g. a passwordProfile write without the User Administrator role.
func IsForbidden(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusForbidden
}

// IsUnauthorized reports a 401 that survived a token refresh.
func IsUnauthorized(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusUnauthorized
}

// IsPermanent reports an answer that sending the same request again cannot fix:
// 400/403/405/409/412/413 and friends. 404 is not permanent here because a fresh
// object may appear later (replication); callers decide that one themselves.
func IsPermanent(err error) bool {
	e, ok := asError(err)
	if !ok {
		return false
	}
	switch e.Status {
	case http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusUnauthorized:
		return false
	}
	return e.Status >= 400 && e.Status < 500
}

// isDeltaReset recognises both documented forms of an unusable delta token.
func isDeltaReset(e *Error) bool {
	return e.Status == http.StatusGone ||
		(e.Status == http.StatusBadRequest && strings.EqualFold(e.Code, CodeSyncStateNotFound))
}

// AuthError is a failed token request. Its fields come from the AADSTS answer so
// the integration's "authorize" flow (I2) can tell the administrator which of
// tenant, client id or secret is wrong. It never contains the secret.
type AuthError struct {
	Status        int    // HTTP status of the token endpoint, 0 for transport errors
	Code          string // OAuth error, e.g. invalid_client, invalid_request, unauthorized_client
	Description   string // AADSTS text
	AADSTSCodes   []int  // error_codes
	TraceID       string
	CorrelationID string
	Err           error // underlying error
}

// Well-known AADSTS codes.
const (
	AADSTSInvalidClientSecret = 7000215 // wrong secret value
	AADSTSClientSecretExpired = 7000222
	AADSTSAppNotFound         = 700016 // client id unknown in the tenant
	AADSTSTenantNotFound      = 90002  // tenant id unknown
	AADSTSTenantInvalid       = 900023 // tenant identifier malformed
	AADSTSInvalidScope        = 1002012
	AADSTSInvalidScope2       = 70011
)

func (e *AuthError) Error() string {
	var b strings.Builder
	b.WriteString("msgraph: token request failed")
	if e.Status != 0 {
		b.WriteString(": " + strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		// The first line is the useful part; the rest is trace/correlation ids.
		d, _, _ := strings.Cut(e.Description, "\r\n")
		d, _, _ = strings.Cut(d, "\n")
		b.WriteString(": " + d)
	} else if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *AuthError) Unwrap() error { return e.Err }

// HasCode reports whether AADSTS code c is among the answer's error codes.
func (e *AuthError) HasCode(c int) bool {
	for _, x := range e.AADSTSCodes {
		if x == c {
			return true
		}
	}
	return strings.Contains(e.Description, "AADSTS"+strconv.Itoa(c)+":")
}

// Reason classifies the failure for the authorize flow: "bad_secret",
// "unknown_client", "unknown_tenant", "bad_scope", "unavailable" or "other".
func (e *AuthError) Reason() string {
	switch {
	case e.HasCode(AADSTSInvalidClientSecret), e.HasCode(AADSTSClientSecretExpired):
		return "bad_secret"
	case e.HasCode(AADSTSAppNotFound):
		return "unknown_client"
	case e.HasCode(AADSTSTenantNotFound), e.HasCode(AADSTSTenantInvalid):
		return "unknown_tenant"
	case e.HasCode(AADSTSInvalidScope), e.HasCode(AADSTSInvalidScope2):
		return "bad_scope"
	case e.Status == 0 || e.Status >= 500 || e.Status == http.StatusTooManyRequests:
		return "unavailable"
	}
	return "other"
}

// temporary reports a token failure worth retrying (endpoint down or throttled,
// or no answer at all). A refused destination or a redirect is not: asking
// again gets the same answer.
func (e *AuthError) temporary() bool {
	if errors.Is(e.Err, egress.ErrBlocked) || errors.Is(e.Err, ErrRedirect) {
		return false
	}
	return e.Reason() == "unavailable"
}

// IsAuthError returns the *AuthError in err's chain.
func IsAuthError(err error) (*AuthError, bool) {
	var e *AuthError
	ok := errors.As(err, &e)
	return e, ok
}

func toAuthError(err error) *AuthError {
	ae := &AuthError{Err: err}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return ae
	}
	if re.Response != nil {
		ae.Status = re.Response.StatusCode
		if ae.Status >= 300 && ae.Status < 400 {
			ae.Err = &RedirectError{Status: ae.Status}
			return ae
		}
	}
	ae.Code = re.ErrorCode
	ae.Description = re.ErrorDescription
	var body struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		Codes         []int  `json:"error_codes"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
	}
	if json.Unmarshal(re.Body, &body) == nil {
		if ae.Code == "" {
			ae.Code = body.Error
		}
		if ae.Description == "" {
			ae.Description = body.Description
		}
		ae.AADSTSCodes = body.Codes
		ae.TraceID = body.TraceID
		ae.CorrelationID = body.CorrelationID
	}
	// RetrieveError.Error() prints the raw body; keep only our summary as the cause.
	ae.Err = errors.New("token endpoint refused the client credentials")
	return ae
}

package graphsim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Graph error codes and messages the emulator answers with. They follow
// ../shared/GRAPH.md; where Microsoft's wording is not documented there the
// emulator uses the wording real Graph is known to send (see docs/graphsim.md).
const (
	codeBadRequest        = "Request_BadRequest"
	codeNotFound          = "Request_ResourceNotFound"
	codeUnsupportedQuery  = "Request_UnsupportedQuery"
	codeDenied            = "Authorization_RequestDenied"
	codeInvalidToken      = "InvalidAuthenticationToken"
	codeTooManyRequests   = "TooManyRequests"
	codeODataBadRequest   = "BadRequest"
	codeServiceNotAvail   = "serviceNotAvailable"
	codeSyncStateNotFound = "syncStateNotFound"
	codeResyncRequired    = "resyncRequired"

	codeUnsupportedMediaType = "UnsupportedMediaType"
	codeRequestTooLarge      = "RequestEntityTooLarge"

	msgUPNConflict      = "Another object with the same value for property userPrincipalName already exists."
	msgUPNDomain        = "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization."
	msgWeakPassword     = "The specified password does not comply with password complexity requirements. Please provide a different password."
	msgPasswordRequired = "A password must be specified to create a new user."
	msgMemberExists     = "One or more added object references already exist for the following modified properties: 'members'."
	msgMemberAbsent     = "One or more removed object references do not exist for the following modified properties: 'members'."
	msgDenied           = "Insufficient privileges to complete the operation."
	msgRetryLater       = "Please retry again later."
)

// ErrorDetail is one entry of error.details.
type ErrorDetail struct {
	Code   string `json:"code"`
	Target string `json:"target,omitempty"`
}

// graphError is an answer in Graph's error envelope, carried through handlers
// as a Go error so validation code can simply return it.
type graphError struct {
	status  int
	code    string
	message string
	details []ErrorDetail
	header  http.Header
}

func (e *graphError) Error() string { return strconv.Itoa(e.status) + " " + e.code + ": " + e.message }

func gerr(status int, code, msg string, details ...ErrorDetail) *graphError {
	return &graphError{status: status, code: code, message: msg, details: details}
}

func badRequest(msg string, details ...ErrorDetail) *graphError {
	return gerr(http.StatusBadRequest, codeBadRequest, msg, details...)
}

func notFound(id string) *graphError {
	return gerr(http.StatusNotFound, codeNotFound,
		"Resource '"+id+"' does not exist or one of its queried reference-property objects are not present.")
}

func invalidValue(prop, resource string) *graphError {
	return badRequest("Invalid value specified for property '"+prop+"' of resource '"+resource+"'.",
		ErrorDetail{Code: "InvalidValue", Target: prop})
}

func denied() *graphError { return gerr(http.StatusForbidden, codeDenied, msgDenied) }

func unsupportedQuery(msg string) *graphError {
	return gerr(http.StatusBadRequest, codeUnsupportedQuery, msg)
}

func odataBadRequest(msg string) *graphError {
	return gerr(http.StatusBadRequest, codeODataBadRequest, msg)
}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code       string        `json:"code"`
	Message    string        `json:"message"`
	Details    []ErrorDetail `json:"details,omitempty"`
	InnerError innerError    `json:"innerError"`
}

type innerError struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

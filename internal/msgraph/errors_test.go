package msgraph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ge(status int, code, msg string, details ...Detail) *Error {
	return &Error{Status: status, Code: code, Message: msg, Details: details}
}

// The messages are GRAPH.md's "Error envelope" list verbatim.
func TestErrorHelpersRecogniseGraphAnswers(t *testing.T) {
	upn := ge(400, CodeBadRequest, "Another object with the same value for property userPrincipalName already exists.",
		Detail{Code: "ObjectConflict", Target: "userPrincipalName"})
	upnNoDetail := ge(400, CodeBadRequest, "Another object with the same value for property userPrincipalName already exists.")
	upnDetailOnly := ge(400, "SomeNewCode", "", Detail{Code: "ObjectConflict", Target: "userPrincipalName"})
	notFound := ge(404, CodeResourceNotFound, "Resource 'x' does not exist or one of its queried reference-property objects are not present.")
	present := ge(400, CodeBadRequest, "One or more added object references already exist for the following modified properties: 'members'.")
	absent := ge(400, CodeBadRequest, "One or more removed object references do not exist for the following modified properties: 'members'.")
	domain := ge(400, CodeBadRequest, "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.")
	weak := ge(400, CodeBadRequest, "The specified password does not comply with password complexity requirements. Please provide a different password.")
	nick := ge(400, CodeBadRequest, "Invalid value specified for property 'mailNickname' of resource 'User'.", Detail{Code: "InvalidValue", Target: "mailNickname"})
	throttled := ge(429, CodeTooManyRequests, "Please retry again later.")
	denied := ge(403, CodeAuthorizationDenied, "Insufficient privileges to complete the operation.")
	// Same message, wrong status: never match on message alone.
	fakeUPN := ge(500, CodeBadRequest, "Another object with the same value for property userPrincipalName already exists.")

	wrap := func(e *Error) error { return fmt.Errorf("provision: %w", e) }
	cases := []struct {
		name string
		fn   func(error) bool
		yes  []*Error
		no   []*Error
	}{
		{"IsUPNConflict", IsUPNConflict, []*Error{upn, upnNoDetail, upnDetailOnly}, []*Error{present, domain, fakeUPN, notFound}},
		{"IsNotFound", IsNotFound, []*Error{notFound}, []*Error{upn, throttled}},
		{"IsMemberAlreadyPresent", IsMemberAlreadyPresent, []*Error{present}, []*Error{absent, upn}},
		{"IsMemberAbsent", IsMemberAbsent, []*Error{absent}, []*Error{present, notFound}},
		{"IsUnverifiedDomain", IsUnverifiedDomain, []*Error{domain}, []*Error{upn, weak}},
		{"IsWeakPassword", IsWeakPassword, []*Error{weak}, []*Error{domain, nick}},
		{"IsThrottled", IsThrottled, []*Error{throttled}, []*Error{denied}},
		{"IsForbidden", IsForbidden, []*Error{denied}, []*Error{throttled, notFound}},
		{"IsPermanent", IsPermanent, []*Error{upn, domain, weak, nick, denied, present}, []*Error{notFound, throttled, ge(503, "", ""), ge(401, CodeInvalidAuthToken, "")}},
	}
	for _, tc := range cases {
		for _, e := range tc.yes {
			assert.True(t, tc.fn(wrap(e)), "%s(%s)", tc.name, e)
		}
		for _, e := range tc.no {
			assert.False(t, tc.fn(wrap(e)), "%s(%s)", tc.name, e)
		}
		assert.False(t, tc.fn(errors.New("plain")), tc.name)
		assert.False(t, tc.fn(nil), tc.name)
	}
	target, ok := IsInvalidValue(nick)
	assert.True(t, ok)
	assert.Equal(t, "mailNickname", target)
	_, ok = IsInvalidValue(upn)
	assert.False(t, ok)
}

func TestParseErrorEnvelopeAndFallbacks(t *testing.T) {
	body := []byte(`{"error":{"code":"Request_BadRequest","message":"Another object with the same value for property userPrincipalName already exists.","details":[{"code":"ObjectConflict","target":"userPrincipalName"}],"innerError":{"date":"2026-01-01T00:00:00","request-id":"rid-1","client-request-id":"crid-1"}}}`)
	h := http.Header{}
	h.Set("Retry-After", "3")
	e := parseError(400, h, body, testNow)
	assert.Equal(t, CodeBadRequest, e.Code)
	assert.Equal(t, []Detail{{Code: "ObjectConflict", Target: "userPrincipalName"}}, e.Details)
	assert.Equal(t, "rid-1", e.RequestID)
	assert.Equal(t, "crid-1", e.ClientRequestID)
	assert.Equal(t, 3e9, float64(e.RetryAfter))
	assert.True(t, IsUPNConflict(e))

	// A gateway's HTML page: kept short, request-id from the header.
	h = http.Header{}
	h.Set("request-id", "hdr-rid")
	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'x'
	}
	e = parseError(502, h, long, testNow)
	assert.Equal(t, "hdr-rid", e.RequestID)
	assert.Empty(t, e.Code)
	assert.Less(t, len(e.Message), 600)
}

// W2: a password must never reach an error string or a log line.
func TestErrorsNeverCarrySecretsOrPasswords(t *testing.T) {
	const secret, password = "s3cr3t-value", "Sup3r-Secret-Pw!"
	_, c, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, 400, CodeBadRequest, "The specified password does not comply with password complexity requirements. Please provide a different password.")
	})
	_, err := c.CreateUser(context.Background(), UserFields{PasswordProfile: &PasswordProfile{Password: password}})
	require.True(t, IsWeakPassword(err))
	assert.NotContains(t, err.Error(), password)
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, fmt.Sprintf("%+v", err), password)

	pp := PasswordProfile{Password: password}
	for _, s := range []string{fmt.Sprint(pp), fmt.Sprintf("%+v", pp), fmt.Sprintf("%#v", pp), pp.LogValue().String()} {
		assert.NotContains(t, s, password)
	}
}

func TestAuthErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		reason string
	}{
		{401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t","error_codes":[7000215],"trace_id":"t","correlation_id":"c"}`, "bad_secret"},
		{400, `{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.","error_codes":[700016]}`, "unknown_client"},
		{400, `{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'nope' not found.","error_codes":[90002]}`, "unknown_tenant"},
		{400, `{"error":"invalid_scope","error_description":"AADSTS1002012: The provided value for scope x is not valid.","error_codes":[1002012]}`, "bad_scope"},
		// Description only, no error_codes array.
		{401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`, "bad_secret"},
		{503, `{"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred."}`, "unavailable"},
	} {
		f, c, sl := newFake(t, func(w http.ResponseWriter, r *http.Request) { t.Fatal("graph must not be called") })
		f.token = func(w http.ResponseWriter, r *http.Request) {
			require.NoError(t, r.ParseForm())
			// AuthStyleInParams and the .default scope (GRAPH.md "Auth").
			assert.Equal(t, "client-1", r.PostForm.Get("client_id"))
			assert.Equal(t, "s3cr3t-value", r.PostForm.Get("client_secret"))
			assert.Equal(t, "https://graph.microsoft.com/.default", r.PostForm.Get("scope"))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}
		_, err := c.ListDomains(context.Background())
		ae, ok := IsAuthError(err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, tc.reason, ae.Reason(), tc.body)
		assert.Equal(t, tc.status, ae.Status)
		assert.NotContains(t, err.Error(), "s3cr3t-value")
		assert.NotContains(t, err.Error(), "Trace ID")
		if tc.reason == "unavailable" {
			assert.Len(t, sl.Waits(), 5, "token endpoint outages are retried")
		} else {
			assert.Empty(t, sl.Waits(), "bad credentials are not retried")
			assert.EqualValues(t, 1, f.tokenCalls.Load())
		}
	}
}

func TestConfigValidateReportsEverything(t *testing.T) {
	cfg := Config{TenantID: "a/b", GraphBaseURL: "not a url"}
	cfg.SetDefaults()
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"tenant id", "client id", "client secret", "graph base URL"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = New(Config{TenantID: "t", ClientID: "c", ClientSecret: "s"})
	require.NoError(t, err, "defaults point at real Microsoft endpoints")
}

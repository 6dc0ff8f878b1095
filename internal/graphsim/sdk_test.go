package graphsim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// sdkRequest builds a request the way Microsoft's Graph SDKs (Kiota-based:
// msgraph-sdk-go, -dotnet, -java, -typescript) send it: a client-request-id
// per request, SdkVersion and a kiota User-Agent, query option names
// percent-encoded (%24select=…%2C…), and JSON bodies gzip-compressed by the
// compression handler (Content-Encoding: gzip).
func (e *env) sdkRequest(method, pathAndQuery string, body any, gz bool) *http.Request {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(e.t, err)
		if gz {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(raw)
			require.NoError(e.t, zw.Close())
			raw = b.Bytes()
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+"/v1.0"+pathAndQuery, r)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+e.tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kiota-go/1.9.0")
	req.Header.Set("SdkVersion", "graph-go/1.80.0, graph-go-core/1.2.2 (featureUsage=0000000f; hostOS=linux; hostArch=amd64; runtimeEnvironment=go1.26)")
	req.Header.Set("client-request-id", uuid.NewString())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
	}
	return req
}

func (e *env) send(req *http.Request, status int) map[string]any {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	require.Equal(e.t, status, res.StatusCode, "%s %s: %s", req.Method, req.URL, b)
	require.Equal(e.t, req.Header.Get("client-request-id"), res.Header.Get("client-request-id"))
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	require.NoError(e.t, json.Unmarshal(b, &m), "%s", b)
	return m
}

// A write as the SDK sends it (gzip body) is applied exactly as the same
// write uncompressed: before, the emulator answered 400 "Unable to read JSON
// request payload" and no SDK could write to it.
func TestSDKGzipBodies(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.send(e.sdkRequest(http.MethodPost, "/users", newUserBody("ada@contoso.com"), true), http.StatusCreated)
	require.Equal(t, "ada@contoso.com", u["userPrincipalName"])
	id := u["id"].(string)
	e.send(e.sdkRequest(http.MethodPatch, "/users/"+id, map[string]any{"jobTitle": "Engineer", "otherMails": []string{"ada@lovelace.example"}}, true), http.StatusNoContent)
	got := e.send(e.sdkRequest(http.MethodGet, "/users/"+id+"?%24select=jobTitle%2CotherMails", nil, false), http.StatusOK)
	require.Equal(t, "Engineer", got["jobTitle"])
	require.Equal(t, []any{"ada@lovelace.example"}, got["otherMails"])

	// Validation still applies to a decompressed body.
	res := e.send(e.sdkRequest(http.MethodPost, "/users", newUserBody("ADA@contoso.com"), true), http.StatusBadRequest)
	require.Equal(t, codeBadRequest, res["error"].(map[string]any)["code"])

	// $batch: the outer body compressed, as the SDK's batch request content sends it.
	g := e.send(e.sdkRequest(http.MethodPost, "/$batch", map[string]any{"requests": []map[string]any{
		{"id": "1", "method": "POST", "url": "/groups", "headers": map[string]string{"Content-Type": "application/json"},
			"body": newGroupBody("Engineering")},
		{"id": "2", "method": "GET", "url": "/users/" + id + "?$select=id", "dependsOn": []string{"1"}},
	}}, true), http.StatusOK)
	statuses := map[string]float64{}
	for _, r := range g["responses"].([]any) {
		m := r.(map[string]any)
		statuses[m["id"].(string)] = m["status"].(float64)
	}
	require.Equal(t, map[string]float64{"1": 201, "2": 200}, statuses)
}

// An encoding the emulator does not take answers 415 in Graph's error
// envelope (the SDK's compression handler then retries uncompressed); a
// body that is not gzip answers 400; nothing is created either way.
func TestUnsupportedOrBrokenEncoding(t *testing.T) {
	e := newEnv(t, Config{})
	for _, enc := range []string{"br", "deflate", "gzip, br", "zstd"} {
		req := e.sdkRequest(http.MethodPost, "/users", newUserBody("bob@contoso.com"), false)
		req.Header.Set("Content-Encoding", enc)
		m := e.send(req, http.StatusUnsupportedMediaType)
		eo := m["error"].(map[string]any)
		require.Equal(t, codeUnsupportedMediaType, eo["code"], enc)
		require.Contains(t, eo["message"], "not supported")
		require.NotEmpty(t, eo["innerError"].(map[string]any)["request-id"])
	}
	req := e.sdkRequest(http.MethodPost, "/users", newUserBody("bob@contoso.com"), false)
	req.Header.Set("Content-Encoding", "gzip") // says gzip, is plain JSON
	e.send(req, http.StatusBadRequest)
	req = e.sdkRequest(http.MethodPost, "/$batch", map[string]any{"requests": []any{}}, false)
	req.Header.Set("Content-Encoding", "br")
	e.send(req, http.StatusUnsupportedMediaType)
	require.Empty(t, e.json(200, "GET", "/users?$filter=startswith(userPrincipalName,'bob')", nil)["value"])
}

// The SDK calls delta as an OData function, /users/delta() and
// /groups/delta(); the links it gets back are followed unchanged.
func TestSDKDeltaFunctionForm(t *testing.T) {
	e := newEnv(t, Config{})
	for _, upn := range []string{"a@contoso.com", "b@contoso.com", "c@contoso.com"} {
		e.json(201, "POST", "/users", newUserBody(upn))
	}
	e.json(201, "POST", "/groups", newGroupBody("Sales"))
	req := e.sdkRequest(http.MethodGet, "/users/delta()?%24select=displayName%2CuserPrincipalName", nil, false)
	req.Header.Set("Prefer", "odata.maxpagesize=2")
	page := e.send(req, http.StatusOK)
	seen := len(page["value"].([]any))
	for page["@odata.nextLink"] != nil {
		next := e.sdkRequest(http.MethodGet, "", nil, false)
		next.URL, _ = url.Parse(page["@odata.nextLink"].(string))
		page = e.send(next, http.StatusOK)
		seen += len(page["value"].([]any))
	}
	require.Equal(t, 3, seen)
	require.NotEmpty(t, page["@odata.deltaLink"])
	u := page["value"].([]any)[0].(map[string]any)
	require.Contains(t, u, "userPrincipalName")
	require.NotContains(t, u, "jobTitle", "$select kept")

	groups := e.send(e.sdkRequest(http.MethodGet, "/groups/delta()", nil, false), http.StatusOK)
	require.Len(t, groups["value"], 1)
	require.NotEmpty(t, groups["@odata.deltaLink"])
	e.send(e.sdkRequest(http.MethodGet, "/users/delta(x)", nil, false), http.StatusNotFound)
}

// Lambda filters on string collections, by Microsoft's table of what works
// by default and what needs advanced query mode (ConsistencyLevel: eventual
// and $count=true).
func TestLambdaFilters(t *testing.T) {
	e := newEnv(t, Config{})
	ada := newUserBody("ada@contoso.com")
	ada["otherMails"] = []string{"Ada@Lovelace.example", "ada@engine.example"}
	e.json(201, "POST", "/users", ada)
	bob := newUserBody("bob@contoso.com")
	bob["mail"] = "bob@contoso.com"
	bob["otherMails"] = []string{"bob@builder.example"}
	e.json(201, "POST", "/users", bob)
	eventual := []string{"ConsistencyLevel", "eventual"}

	upns := func(m map[string]any) []string {
		var out []string
		for _, v := range m["value"].([]any) {
			out = append(out, v.(map[string]any)["userPrincipalName"].(string))
		}
		sortStrings(out)
		return out
	}
	q := func(filter string, extra string) string {
		return "/users?$filter=" + url.QueryEscape(filter) + extra
	}
	// By default: eq (case-insensitive) and startsWith on otherMails and
	// proxyAddresses, in; no header needed.
	for filter, want := range map[string][]string{
		"otherMails/any(x:x eq 'ada@lovelace.example')":                          {"ada@contoso.com"},
		"otherMails/any(x: x eq 'nobody@example.org')":                           nil,
		"otherMails/any(o:startswith(o,'bob@'))":                                 {"bob@contoso.com"},
		"otherMails/any(x:x in ('bob@builder.example','ada@engine.example'))":    {"ada@contoso.com", "bob@contoso.com"},
		"proxyAddresses/any(p:startswith(p,'smtp:bob'))":                         {"bob@contoso.com"},
		"proxyAddresses/any(p:p eq 'SMTP:bob@contoso.com')":                      {"bob@contoso.com"},
		"otherMails/any(x:x eq 'ada@engine.example') and accountEnabled eq true": {"ada@contoso.com"},
	} {
		require.Equal(t, want, upns(e.json(200, "GET", q(filter, ""), nil)), filter)
	}
	// Advanced query mode only: endsWith and ne inside, not around.
	for filter, want := range map[string][]string{
		"otherMails/any(x:endswith(x,'.example'))":          {"ada@contoso.com", "bob@contoso.com"},
		"proxyAddresses/any(p:endswith(p,'@contoso.com'))":  {"bob@contoso.com"},
		"not(otherMails/any(x:x eq 'bob@builder.example'))": {"ada@contoso.com"},
	} {
		code, _, _ := e.graphErr(400, "GET", q(filter, ""), nil)
		require.Equal(t, codeUnsupportedQuery, code, filter)
		code, _, _ = e.graphErr(400, "GET", q(filter, ""), nil, eventual...) // the header alone is not enough
		require.Equal(t, codeUnsupportedQuery, code, filter)
		require.Equal(t, want, upns(e.json(200, "GET", q(filter, "&$count=true"), nil, eventual...)), filter)
	}
	// Never supported here, in any mode.
	for _, filter := range []string{
		"businessPhones/any(p:startswith(p,'+1'))",
		"otherMails/any(x:x eq 'a' or x eq 'b')",
		"otherMails/any(x:y eq 'a')",
		"identities/any(c:c/issuer eq 'contoso.com')",
		"displayName/any(x:x eq 'a')",
		"otherMails/all(x:x eq 'a')",
	} {
		res, b := e.do("GET", q(filter, "&$count=true"), nil, eventual...)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "%s: %s", filter, b)
	}
	// Syntax errors are BadRequest, not a panic.
	for _, filter := range []string{"otherMails/any(", "otherMails/any(x)", "otherMails/any(x:)", "otherMails/any(x:x eq 'a'"} {
		code, _, _ := e.graphErr(400, "GET", q(filter, ""), nil)
		require.Equal(t, codeODataBadRequest, code, filter)
	}
	// Delta takes only id eq.
	code, _, _ := e.graphErr(400, "GET", "/users/delta()?$filter="+url.QueryEscape("otherMails/any(x:x eq 'a')"), nil)
	require.Equal(t, codeUnsupportedQuery, code)
}

package graphsim

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCreateUserValidation(t *testing.T) {
	e := newEnv(t, Config{})
	require.NoError(t, e.sim.AddDomain(e.creds.TenantID, "pending.example", false))
	long := strings.Repeat("a", 49) + ".com"
	require.NoError(t, e.sim.AddDomain(e.creds.TenantID, long, true))

	mod := func(upn string, f func(m map[string]any)) map[string]any {
		b := newUserBody(upn)
		f(b)
		return b
	}
	pw := func(p string) func(map[string]any) {
		return func(m map[string]any) {
			m["passwordProfile"] = map[string]any{"password": p, "forceChangePasswordNextSignIn": true}
		}
	}
	cases := []struct {
		name   string
		body   map[string]any
		msg    string
		target string
	}{
		{"no password", mod("a@contoso.com", func(m map[string]any) { delete(m, "passwordProfile") }), msgPasswordRequired, ""},
		{"no displayName", mod("a@contoso.com", func(m map[string]any) { delete(m, "displayName") }), "Invalid value specified for property 'displayName' of resource 'User'.", "displayName"},
		{"no mailNickname", mod("a@contoso.com", func(m map[string]any) { delete(m, "mailNickname") }), "Invalid value specified for property 'mailNickname' of resource 'User'.", "mailNickname"},
		{"no accountEnabled", mod("a@contoso.com", func(m map[string]any) { delete(m, "accountEnabled") }), "Invalid value specified for property 'accountEnabled' of resource 'User'.", "accountEnabled"},
		{"unverified domain", newUserBody("a@pending.example"), msgUPNDomain, ""},
		{"unknown domain", newUserBody("a@fabrikam.com"), msgUPNDomain, ""},
		{"bad UPN char", newUserBody("a b@contoso.com"), "Invalid value specified for property 'userPrincipalName' of resource 'User'.", "userPrincipalName"},
		{"UPN local part > 64", newUserBody(strings.Repeat("a", 65) + "@contoso.com"), "Invalid value specified for property 'userPrincipalName' of resource 'User'.", "userPrincipalName"},
		{"custom domain > 48", newUserBody("a@" + long), "Invalid value specified for property 'userPrincipalName' of resource 'User'.", "userPrincipalName"},
		{"bad mailNickname", mod("a@contoso.com", func(m map[string]any) { m["mailNickname"] = "a b" }), "Invalid value specified for property 'mailNickname' of resource 'User'.", "mailNickname"},
		{"short password", mod("a@contoso.com", pw("Ab1!")), msgWeakPassword, ""},
		{"two classes", mod("a@contoso.com", pw("abcdefgh12345")), msgWeakPassword, ""},
		{"unicode", mod("a@contoso.com", pw("Pässwörd123!")), msgWeakPassword, ""},
		{"contains local part", mod("marie@contoso.com", pw("xxMarie-2024!")), msgWeakPassword, ""},
		{"contains surname", mod("a@contoso.com", func(m map[string]any) {
			m["surname"] = "Curie"
			pw("Curie-2024!x")(m)
		}), msgWeakPassword, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, msg, eo := e.graphErr(400, "POST", "/users", tc.body)
			require.Equal(t, codeBadRequest, code)
			require.Equal(t, tc.msg, msg)
			if tc.target != "" {
				d := eo["details"].([]any)[0].(map[string]any)
				require.Equal(t, tc.target, d["target"])
			}
		})
	}
	require.Empty(t, e.sim.Users(e.creds.TenantID), "no failed POST may leave a user behind")

	// Allowed specials, and the initial domain.
	e.json(201, "POST", "/users", newUserBody("o'neil.j-x_y!#^~@contoso.onmicrosoft.com"))
	// Unknown and read-only properties.
	code, msg, _ := e.graphErr(400, "POST", "/users", mod("b@contoso.com", func(m map[string]any) { m["favouriteColour"] = "red" }))
	require.Equal(t, codeBadRequest, code)
	require.Contains(t, msg, "favouriteColour")
	code, _, _ = e.graphErr(400, "POST", "/users", mod("b@contoso.com", func(m map[string]any) { m["accountEnabled"] = "yes" }))
	require.Equal(t, codeODataBadRequest, code)
}

func TestUserCRUD(t *testing.T) {
	e := newEnv(t, Config{})
	body := newUserBody("ada@contoso.com")
	body["jobTitle"] = "Analyst"
	body["passwordPolicies"] = "DisablePasswordExpiration" // I7
	u := e.json(201, "POST", "/users", body)
	id := u["id"].(string)
	// Default property set only: no accountEnabled, no passwordProfile.
	for _, p := range userDef.defaults {
		require.Contains(t, u, p)
	}
	require.NotContains(t, u, "accountEnabled")
	require.NotContains(t, u, "passwordProfile")
	require.Len(t, u, len(userDef.defaults)+1)

	got := e.json(200, "GET", "/users/"+id, nil)
	require.Equal(t, "ada@contoso.com", got["userPrincipalName"])
	require.Equal(t, "Analyst", got["jobTitle"])
	got = e.json(200, "GET", "/users/ADA@contoso.com?$select=accountEnabled,passwordPolicies,passwordProfile", nil)
	require.Equal(t, map[string]any{"@odata.context": e.srv.URL + "/v1.0/$metadata#users(accountEnabled,passwordPolicies,passwordProfile)/$entity",
		"accountEnabled": true, "passwordPolicies": "DisablePasswordExpiration", "passwordProfile": nil}, got)
	code, msg, _ := e.graphErr(400, "GET", "/users/"+id+"?$select=nope", nil)
	require.Equal(t, codeBadRequest, code)
	require.Contains(t, msg, "Could not find a property named 'nope'")

	// P4: PATCH by id, including a UPN change; the old UPN no longer resolves.
	res, b := e.do("PATCH", "/users/"+id, map[string]any{"userPrincipalName": "ada.lovelace@contoso.com", "accountEnabled": false})
	require.Equal(t, 204, res.StatusCode, "%s", b)
	require.Empty(t, b)
	e.graphErr(404, "GET", "/users/ada@contoso.com", nil)
	got = e.json(200, "GET", "/users/ada.lovelace@contoso.com?$select=id,accountEnabled", nil)
	require.Equal(t, false, got["accountEnabled"])
	// Clearing a property with null.
	e.json(204, "PATCH", "/users/"+id, map[string]any{"jobTitle": nil})
	require.Nil(t, e.json(200, "GET", "/users/"+id, nil)["jobTitle"])

	// Duplicate UPN through PATCH.
	e.json(201, "POST", "/users", newUserBody("bob@contoso.com"))
	code, msg, eo := e.graphErr(400, "PATCH", "/users/bob@contoso.com", map[string]any{"userPrincipalName": "Ada.Lovelace@contoso.com"})
	require.Equal(t, codeBadRequest, code)
	require.Equal(t, msgUPNConflict, msg)
	require.Equal(t, []any{map[string]any{"code": "ObjectConflict", "target": "userPrincipalName"}}, eo["details"])

	// Weak password on PATCH.
	code, msg, _ = e.graphErr(400, "PATCH", "/users/"+id, map[string]any{"passwordProfile": map[string]any{"password": "password"}})
	require.Equal(t, codeBadRequest, code)
	require.Equal(t, msgWeakPassword, msg)

	e.json(204, "DELETE", "/users/"+id, nil)
	code, msg, _ = e.graphErr(404, "GET", "/users/"+id, nil)
	require.Equal(t, codeNotFound, code)
	require.Equal(t, "Resource '"+id+"' does not exist or one of its queried reference-property objects are not present.", msg)
	e.graphErr(404, "PATCH", "/users/"+id, map[string]any{"jobTitle": "x"})
	e.graphErr(404, "DELETE", "/users/"+id, nil)
	// The UPN is free again.
	e.json(201, "POST", "/users", newUserBody("ada.lovelace@contoso.com"))
}

func TestUsersPaging(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	require.NoError(t, e.sim.SeedUsers(e.creds.TenantID, 2500))

	count := func(first string) (int, int) {
		seen := map[string]bool{}
		pages := 0
		for next := first; next != ""; {
			m := e.json(200, "GET", next, nil)
			pages++
			for _, v := range m["value"].([]any) {
				id := v.(map[string]any)["id"].(string)
				require.False(t, seen[id], "user %s twice", id)
				seen[id] = true
			}
			next, _ = m["@odata.nextLink"].(string)
			if next != "" {
				u, err := url.Parse(next)
				require.NoError(t, err)
				require.Equal(t, strings.TrimPrefix(e.srv.URL, "http://"), u.Host, "nextLink must point at the emulator")
				require.Contains(t, next, "$skiptoken=")
			}
		}
		return len(seen), pages
	}
	n, pages := count("/users?$top=999")
	require.Equal(t, 2500, n)
	require.Equal(t, 3, pages)
	n, pages = count("/users")
	require.Equal(t, 2500, n)
	require.Equal(t, 25, pages)
	n, _ = count("/users?$top=999&$select=id,userPrincipalName&$orderby=displayName")
	require.Equal(t, 2500, n)

	code, msg, _ := e.graphErr(400, "GET", "/users?$top=1000", nil)
	require.Equal(t, codeBadRequest, code)
	require.Equal(t, "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.", msg)
	e.graphErr(400, "GET", "/users?$top=0", nil)
	code, _, _ = e.graphErr(400, "GET", "/users?$skip=10", nil)
	require.Equal(t, codeBadRequest, code)
}

func TestUserFilterAndAdvancedQueries(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	for i, n := range []string{"ada", "adam", "bob", "carol"} {
		b := newUserBody(n + "@contoso.com")
		b["displayName"] = fmt.Sprintf("%s Person%d", strings.ToUpper(n[:1])+n[1:], i)
		e.json(201, "POST", "/users", b)
	}
	ids := func(path string, hdr ...string) []string {
		var out []string
		for _, v := range e.json(200, "GET", path, nil, hdr...)["value"].([]any) {
			out = append(out, v.(map[string]any)["userPrincipalName"].(string))
		}
		return out
	}
	q := func(f string) string { return "/users?$filter=" + url.QueryEscape(f) + "&$orderby=userPrincipalName" }
	require.Equal(t, []string{"ada@contoso.com"}, ids("/users?$filter="+url.QueryEscape("userPrincipalName eq 'ADA@contoso.com'")))
	require.ElementsMatch(t, []string{"ada@contoso.com", "adam@contoso.com"}, ids("/users?$filter="+url.QueryEscape("startsWith(displayName,'ad')")))
	require.ElementsMatch(t, []string{"bob@contoso.com", "carol@contoso.com"}, ids("/users?$filter="+url.QueryEscape("mailNickname in ('bob','carol','zed')")))
	require.ElementsMatch(t, []string{"ada@contoso.com", "bob@contoso.com"}, ids("/users?$filter="+url.QueryEscape("mailNickname eq 'ada' or (mailNickname eq 'bob' and accountEnabled eq true)")))
	require.Empty(t, ids("/users?$filter="+url.QueryEscape("mailNickname eq 'it''s'")))

	// $orderby with $filter needs advanced mode.
	code, msg, _ := e.graphErr(400, "GET", q("startsWith(mail,'a')"), nil)
	require.Equal(t, codeUnsupportedQuery, code)
	require.Equal(t, "Sorting not supported for current query.", msg)

	// ne, not, endsWith: advanced mode only.
	for _, f := range []string{"mailNickname ne 'ada'", "not(mailNickname eq 'ada')", "endsWith(userPrincipalName,'contoso.com')"} {
		code, _, _ := e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape(f), nil)
		require.Equal(t, codeUnsupportedQuery, code, f)
		// The header alone is not enough: $count=true is needed too.
		code, _, _ = e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape(f), nil, "ConsistencyLevel", "eventual")
		require.Equal(t, codeUnsupportedQuery, code, f)
	}
	m := e.json(200, "GET", "/users?$count=true&$filter="+url.QueryEscape("mailNickname ne 'ada'"), nil, "ConsistencyLevel", "eventual")
	require.EqualValues(t, 3, m["@odata.count"])
	require.Len(t, m["value"], 3)
	require.Len(t, ids("/users?$count=true&$filter="+url.QueryEscape("endsWith(mail,'x')"), "ConsistencyLevel", "eventual"), 0)

	// $count=true without the header is silently ignored.
	m = e.json(200, "GET", "/users?$count=true", nil)
	require.NotContains(t, m, "@odata.count")

	// GET /users/$count: text/plain with the header, 400 without.
	res, b := e.do("GET", "/users/$count", nil, "ConsistencyLevel", "eventual")
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "text/plain", res.Header.Get("Content-Type"))
	require.Equal(t, "4", string(b))
	res, b = e.do("GET", "/users/$count?$filter="+url.QueryEscape("startsWith(mailNickname,'ad')"), nil, "ConsistencyLevel", "eventual")
	require.Equal(t, "2", string(b), "%d", res.StatusCode)
	e.graphErr(400, "GET", "/users/$count", nil)

	// $search needs the header; tokenized prefix match.
	code, _, _ = e.graphErr(400, "GET", `/users?$search="displayName:ada"`, nil)
	require.Equal(t, codeUnsupportedQuery, code)
	require.ElementsMatch(t, []string{"ada@contoso.com", "adam@contoso.com"}, ids(`/users?$search="displayName:ad"`, "ConsistencyLevel", "eventual"))
	require.ElementsMatch(t, []string{"carol@contoso.com"}, ids(`/users?$search="displayName:person3"`, "ConsistencyLevel", "eventual"))
	require.ElementsMatch(t, []string{"bob@contoso.com", "carol@contoso.com"}, ids("/users?$search="+url.QueryEscape(`"displayName:bob" OR "displayName:carol"`), "ConsistencyLevel", "eventual"))

	// Malformed and unknown.
	code, msg, _ = e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape("displayName eq"), nil)
	require.Equal(t, codeODataBadRequest, code)
	require.Contains(t, msg, "Invalid filter clause")
	code, msg, _ = e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape("shoeSize eq '9'"), nil)
	require.Equal(t, codeBadRequest, code)
	require.Contains(t, msg, "shoeSize")
	code, _, _ = e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape("accountEnabled eq 'yes'"), nil)
	require.Equal(t, codeODataBadRequest, code)
	// More than 15 alternatives in basic mode.
	var alts []string
	for i := 0; i < 16; i++ {
		alts = append(alts, fmt.Sprintf("'u%d'", i))
	}
	code, msg, _ = e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape("mailNickname in ("+strings.Join(alts, ",")+")"), nil)
	require.Equal(t, codeUnsupportedQuery, code)
	require.Contains(t, msg, "Max allowed: 15")
	// …fine in advanced mode, where the URL length (2,048) is the limit instead.
	e.json(200, "GET", "/users?$count=true&$filter="+url.QueryEscape("mailNickname in ("+strings.Join(alts, ",")+")"), nil, "ConsistencyLevel", "eventual")
	for len(alts) < 200 {
		alts = append(alts, fmt.Sprintf("'u%d'", len(alts)))
	}
	e.graphErr(400, "GET", "/users?$count=true&$filter="+url.QueryEscape("mailNickname in ("+strings.Join(alts, ",")+")"), nil, "ConsistencyLevel", "eventual")
	// eq values over 120 characters need advanced mode.
	long := strings.Repeat("x", 121)
	code, _, _ = e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape("displayName eq '"+long+"'"), nil)
	require.Equal(t, codeUnsupportedQuery, code)
	e.json(200, "GET", "/users?$count=true&$filter="+url.QueryEscape("displayName eq '"+long+"'"), nil, "ConsistencyLevel", "eventual")
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res, b := e.do("POST", "/users", newUserBody(fmt.Sprintf("w%d.u%d@contoso.com", w, i)))
				if res.StatusCode != 201 {
					t.Errorf("POST: %d %s", res.StatusCode, b)
				}
				e.do("GET", "/users?$top=5", nil)
			}
		}()
	}
	wg.Wait()
	require.Len(t, e.sim.Users(e.creds.TenantID), workers*each)
	n := 0
	for next := "/users?$top=999"; next != ""; {
		m := e.json(200, "GET", next, nil)
		n += len(m["value"].([]any))
		next, _ = m["@odata.nextLink"].(string)
	}
	require.Equal(t, workers*each, n)
}

// The batched provisioning lookup (issue 12): `userPrincipalName in (…)` is
// answered from the UPN index, case-insensitively, with each user once, and
// Graph's limit of 15 alternatives per filter holds for it too.
func TestUserPrincipalNameInLookup(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	for _, n := range []string{"ada", "bob", "o'neil"} {
		e.json(201, "POST", "/users", newUserBody(n+"@contoso.com"))
	}
	upns := func(f string) []string {
		var out []string
		for _, v := range e.json(200, "GET", "/users?$select=id,userPrincipalName&$filter="+url.QueryEscape(f), nil)["value"].([]any) {
			out = append(out, v.(map[string]any)["userPrincipalName"].(string))
		}
		return out
	}
	require.ElementsMatch(t, []string{"ada@contoso.com", "o'neil@contoso.com"},
		upns("userPrincipalName in ('ADA@contoso.com','o''neil@contoso.com','nobody@contoso.com','ada@contoso.com')"))
	require.Empty(t, upns("userPrincipalName in ('x@contoso.com')"))

	vals := make([]string, 16)
	for i := range vals {
		vals[i] = fmt.Sprintf("'u%d@contoso.com'", i)
	}
	require.Empty(t, upns("userPrincipalName in ("+strings.Join(vals[:15], ",")+")"), "15 alternatives are allowed")
	code, msg, _ := e.graphErr(400, "GET", "/users?$filter="+url.QueryEscape("userPrincipalName in ("+strings.Join(vals, ",")+")"), nil)
	require.Equal(t, codeUnsupportedQuery, code)
	require.Contains(t, msg, "Max allowed: 15.")
}

package graphsim

import (
	"net/http"
	"testing"
)

// FuzzParseFilter: any $filter either parses and checks cleanly or is a 400
// with a Graph error code; nothing panics.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"userPrincipalName eq 'a@b.com'",
		"startsWith(displayName,'Ad') and accountEnabled eq true",
		"mailNickname in ('a','b','c')",
		"not(mail eq null) or endsWith(mail,'@contoso.com')",
		"((displayName eq 'x'))",
		"id eq 'it''s'",
		"proxyAddresses/any(p:startswith(p,'smtp:'))",
		"displayName eq",
		"'unterminated",
		"createdDateTime ge 2024-01-01T00:00:00Z",
		"(((((((((((",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := parseFilter(src)
		if err != nil {
			if err.status != http.StatusBadRequest || err.code == "" || err.message == "" {
				t.Fatalf("parse %q: unexpected error %v", src, err)
			}
			return
		}
		for _, d := range []*entityDef{userDef, groupDef} {
			for _, adv := range []bool{false, true} {
				checked, err := checkFilter(e, d, adv, false)
				if err != nil {
					if err.status != http.StatusBadRequest {
						t.Fatalf("check %q: unexpected error %v", src, err)
					}
					continue
				}
				matches(checked, &object{kind: d.kind, props: map[string]any{"displayName": "x", "accountEnabled": true}})
			}
			if _, err := checkFilter(e, d, false, true); err != nil && err.status != http.StatusBadRequest {
				t.Fatalf("delta check %q: %v", src, err)
			}
		}
	})
}

package provision

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/upn"
)

// I4 with D1 per integration: each candidate is judged on the email it maps.
func TestOwnerUsesEachIntegrationsEmail(t *testing.T) {
	a := OwnerCandidate{ID: "a", Rules: upn.Rules{Domains: []string{"contoso.com"}}, Email: "x@fabrikam.com"}
	b := OwnerCandidate{ID: "b", Rules: upn.Rules{Domains: []string{"contoso.com"}}, Email: "x@contoso.com"} // alternate
	id, ok := Owner([]OwnerCandidate{a, b})
	require.True(t, ok)
	require.Equal(t, "b", id, "b's mapped email is in its domains")

	c := OwnerCandidate{ID: "c", Rules: upn.Rules{Domains: []string{"contoso.com"}, DefaultDomain: "contoso.com"}, Email: "x@gmail.com"}
	id, _ = Owner([]OwnerCandidate{a, c})
	require.Equal(t, "c", id, "nobody owns the domain: the default domain rewrites")
	id, _ = Owner([]OwnerCandidate{a})
	require.Equal(t, "a", id, "a single candidate decides by itself")
	_, ok = Owner(nil)
	require.False(t, ok)
}

func TestSendableAndUserFields(t *testing.T) {
	body := mapping.Default().Export(mapping.Attributes{"firstName": "Ann", "businessPhone": "+1 555", "costCenter": "CC-7"})
	body["favouriteColour"] = "blue"
	kept, dropped := Sendable(body)
	require.Equal(t, []string{"favouriteColour"}, dropped, "msgraph.UserFields cannot carry it")
	require.Equal(t, "Ann", kept["givenName"])

	f, err := UserFields(kept, false)
	require.NoError(t, err)
	require.Equal(t, "Ann", *f.GivenName)
	require.Equal(t, []string{"+1 555"}, *f.BusinessPhones)
	require.Contains(t, f.Null, "surname", "a cleared field is cleared remotely")
	b, err := json.Marshal(f)
	require.NoError(t, err)
	require.Contains(t, string(b), `"surname":null`)
	require.Contains(t, string(b), `"employeeOrgData":{"costCenter":"CC-7"}`, "the default mapping's cost centre is sent")

	cleared, err := UserFields(Must(Sendable(mapping.Default().Export(mapping.Attributes{}))), false)
	require.NoError(t, err)
	b, err = json.Marshal(cleared)
	require.NoError(t, err)
	require.Contains(t, string(b), `"employeeOrgData":{"costCenter":null}`, "a cleared cost centre is cleared remotely")

	f, err = UserFields(kept, true)
	require.NoError(t, err)
	require.Empty(t, f.Null, "a create has nothing to clear")

	_, err = UserFields(map[string]any{"favouriteColour": "blue"}, false)
	require.Error(t, err)
}

// P2: a created account's password passes Entra's policy and avoids the
// person's names.
func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		pw, err := NewPassword("ann.lee", "Ann", "Lee")
		require.NoError(t, err)
		require.Len(t, pw, 24)
		require.False(t, seen[pw])
		seen[pw] = true
		var lower, upper, digit, symbol bool
		for _, r := range pw {
			switch {
			case unicode.IsLower(r):
				lower = true
			case unicode.IsUpper(r):
				upper = true
			case unicode.IsDigit(r):
				digit = true
			default:
				symbol = true
			}
			require.Less(t, r, rune(128))
		}
		require.True(t, lower && upper && digit && symbol, pw)
		low := strings.ToLower(pw)
		require.NotContains(t, low, "ann")
		require.NotContains(t, low, "lee")
	}
}

// Must keeps Sendable's kept map, for tests that know nothing is dropped.
func Must(kept map[string]any, _ []string) map[string]any { return kept }

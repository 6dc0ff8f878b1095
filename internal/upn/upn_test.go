package upn

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolve(t *testing.T) {
	verified := []string{"contoso.onmicrosoft.com", "Contoso.com", "sub.contoso.com", "fabrikam.com"}
	d2 := Rules{VerifiedDomains: verified}
	d3 := Rules{Domains: []string{"contoso.com", "fabrikam.com"}, VerifiedDomains: verified}
	d4 := Rules{Domains: []string{"contoso.com", "fabrikam.com"}, DefaultDomain: "contoso.com", VerifiedDomains: verified}

	cases := []struct {
		name  string
		rules Rules
		email string
		scope Scope
		upn   string
		err   error
	}{
		{"D2 verified domain sent as is", d2, "ann@contoso.com", InScope, "ann@contoso.com", nil},
		{"D2/D5 domain case-insensitive, mail kept as written", d2, "Ann@CONTOSO.com", InScope, "Ann@contoso.com", nil},
		{"D2 subdomain verified separately", d2, "ann@sub.contoso.com", InScope, "ann@sub.contoso.com", nil},
		{"D2 unverified subdomain is an error", d2, "ann@eu.contoso.com", Invalid, "", ErrUnverifiedDomain},
		{"D2 unverified domain is a per-user error", d2, "ann@gmail.com", Invalid, "", ErrUnverifiedDomain},
		{"D3 listed domain", d3, "bob@fabrikam.com", InScope, "bob@fabrikam.com", nil},
		{"D3/D5 listed domain any case", d3, "bob@FabriKam.COM", InScope, "bob@fabrikam.com", nil},
		{"D3 unlisted domain out of scope", d3, "bob@gmail.com", OutOfScope, "", nil},
		{"D3 subdomain of a listed domain is not listed", d3, "bob@sub.contoso.com", OutOfScope, "", nil},
		{"D4 listed domain as is", d4, "cy@fabrikam.com", InScope, "cy@fabrikam.com", nil},
		{"D4 other domain rewritten to default", d4, "cy.d@gmail.com", InScope, "cy.d@contoso.com", nil},
		{"D4 subdomain rewritten to default", d4, "cy@sub.contoso.com", InScope, "cy@contoso.com", nil},
		{"D2 international domain compared in punycode", Rules{VerifiedDomains: []string{"xn--bcher-kva.de"}}, "ann@Bücher.de", InScope, "ann@xn--bcher-kva.de", nil},
		{"D3 listed international domain in either spelling", Rules{Domains: []string{"bücher.de"}}, "ann@xn--bcher-kva.de", InScope, "ann@xn--bcher-kva.de", nil},
		{"D4 rewrite to an international default is ASCII", Rules{Domains: []string{"bücher.de"}, DefaultDomain: "bücher.de"}, "ann@gmail.com", InScope, "ann@xn--bcher-kva.de", nil},
		{"empty email", d2, "", Invalid, "", ErrNoEmail},
		{"display-name form refused", d2, "Ann <ann@contoso.com>", Invalid, "", ErrBadEmail},
		{"local part with '+' cannot be a UPN", d4, "ann+x@gmail.com", Invalid, "", ErrLocalPart},
		{"local part over 64", d2, "a234567890123456789012345678901234567890123456789012345678901234x@contoso.com", Invalid, "", ErrLocalPart},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Resolve(c.rules, c.email)
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, c.scope, d.Scope, d.Reason)
			require.Equal(t, c.upn, d.UPN)
		})
	}
}

func TestOwnerI4(t *testing.T) {
	a := Candidate{ID: "a", Rules: Rules{Domains: []string{"contoso.com"}}}
	b := Candidate{ID: "b", Rules: Rules{Domains: []string{"fabrikam.com"}, DefaultDomain: "fabrikam.com"}}
	c := Candidate{ID: "c", Rules: Rules{VerifiedDomains: []string{"tailspin.com"}}}

	id, ok := Owner("x@fabrikam.com", []Candidate{a, b, c})
	require.True(t, ok)
	require.Equal(t, "b", id, "the integration listing the domain owns the user")

	id, _ = Owner("x@TAILSPIN.com", []Candidate{a, b, c})
	require.Equal(t, "c", id, "D2 integrations claim their verified domains")

	id, _ = Owner("x@gmail.com", []Candidate{a, b, c})
	require.Equal(t, "b", id, "no owner by domain: the oldest with a default domain rewrites")

	id, _ = Owner("x@gmail.com", []Candidate{a, c})
	require.Equal(t, "a", id, "no owner and no default: the oldest decides (here: out of scope by D3)")

	_, ok = Owner("x@gmail.com", nil)
	require.False(t, ok)
}

func TestMailNickname(t *testing.T) {
	require.Equal(t, "ann.lee", MailNickname("ann.lee@contoso.com"))
	require.Equal(t, "o'neil", MailNickname("o'neil@contoso.com"))
	require.Equal(t, "user", MailNickname("@contoso.com"))
}

// Package upn holds the pure rules that decide, for one user and one integration,
// whether the user is in scope and which userPrincipalName is sent (SPEC D1–D5), and
// which of several connected integrations owns the user (I4). No I/O: the sync layer
// feeds it the integration's settings and the tenant's verified domains.
package upn

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/internal/domainname"
)

// Scope is the outcome for one (user, integration).
type Scope int

const (
	// InScope: sync with the computed UPN.
	InScope Scope = iota
	// OutOfScope: recorded on the link, not an error (D3, I4).
	OutOfScope
	// Invalid: the user cannot sync until fixed; a per-user error (D2).
	Invalid
)

func (s Scope) String() string {
	switch s {
	case InScope:
		return "IN_SCOPE"
	case OutOfScope:
		return "OUT_OF_SCOPE"
	default:
		return "INVALID"
	}
}

// Rules are an integration's domain settings plus what the tenant verified.
type Rules struct {
	Domains         []string // configured domain list (D3/D4); empty means D2
	DefaultDomain   string   // one of Domains, or empty (D4)
	VerifiedDomains []string // the tenant's verified domains (from /domains)
}

// Decision is what Resolve computed, with the reason when not in scope.
type Decision struct {
	Scope  Scope
	UPN    string
	Reason string
}

// Errors behind Invalid decisions, so callers can branch without parsing Reason.
var (
	ErrNoEmail          = errors.New("the user has no mapped email")
	ErrBadEmail         = errors.New("the mapped email is not a valid address")
	ErrUnverifiedDomain = errors.New("the email domain is not verified in the tenant")
	ErrLocalPart        = errors.New("the email local part is not valid in a userPrincipalName")
)

// Graph's UPN limits (GRAPH.md "Users").
const (
	maxLocalPart = 64
	maxUPN       = 113
)

// Resolve applies D2–D5 to the user's mapped email (D1 is the caller's choice of
// company vs alternate email).
func Resolve(r Rules, mappedEmail string) (Decision, error) {
	local, domain, err := split(mappedEmail)
	if err != nil {
		return Decision{Scope: Invalid, Reason: err.Error()}, err
	}
	switch {
	case len(r.Domains) == 0: // D2
		if !contains(r.VerifiedDomains, domain) {
			err := fmt.Errorf("%w: %s", ErrUnverifiedDomain, domain)
			return Decision{Scope: Invalid, Reason: err.Error()}, err
		}
	case contains(r.Domains, domain): // D3/D4: a listed domain is sent as is
	case r.DefaultDomain == "": // D3
		return Decision{Scope: OutOfScope, Reason: fmt.Sprintf("domain %s is not among the integration's domains", domain)}, nil
	default: // D4
		domain = NormalizeDomain(r.DefaultDomain)
	}
	upn := local + "@" + domain
	if err := checkLocalPart(local); err != nil {
		return Decision{Scope: Invalid, Reason: err.Error()}, err
	}
	if len(upn) > maxUPN {
		err := fmt.Errorf("%w: %q is longer than %d characters", ErrLocalPart, upn, maxUPN)
		return Decision{Scope: Invalid, Reason: err.Error()}, err
	}
	return Decision{Scope: InScope, UPN: upn}, nil
}

// Owns reports whether an integration with these rules claims the email's domain
// for I4: its listed domains, or (D2) the tenant's verified domains.
func Owns(r Rules, mappedEmail string) bool {
	_, domain, err := split(mappedEmail)
	if err != nil {
		return false
	}
	if len(r.Domains) > 0 {
		return contains(r.Domains, domain)
	}
	return contains(r.VerifiedDomains, domain)
}

// Candidate is one integration a user is connected to, in a stable order (oldest
// first), for Owner.
type Candidate struct {
	ID    string
	Rules Rules
}

// Owner picks the single integration a user syncs to (I4) among those it is
// connected to. The one whose domains contain the email's domain wins (the oldest
// if, despite I3, several do). If none does and the user is connected to exactly one
// integration, that one decides by itself (D2 error, D3 out of scope, D4 rewrite).
// If none does and there are several, the oldest with a default domain rewrites (D4);
// failing that, the oldest decides. Everyone else records the user as out of scope.
func Owner(mappedEmail string, cands []Candidate) (string, bool) {
	if len(cands) == 0 {
		return "", false
	}
	for _, c := range cands {
		if Owns(c.Rules, mappedEmail) {
			return c.ID, true
		}
	}
	for _, c := range cands {
		if c.Rules.DefaultDomain != "" {
			return c.ID, true
		}
	}
	return cands[0].ID, true
}

// NormalizeDomain puts a domain into the form used for comparisons and
// storage (D5): trimmed, lower-case ASCII, internationalised labels in
// punycode, so "Bücher.de" in a setting matches a user's stored
// "xn--bcher-kva.de" and a UPN is always ASCII.
func NormalizeDomain(d string) string {
	return domainname.Lenient(d)
}

// MailNickname derives Graph's required mailNickname from a UPN local part: Graph
// refuses characters outside ASCII letters, digits and a few symbols.
func MailNickname(upn string) string {
	local, _, _ := strings.Cut(upn, "@")
	var b strings.Builder
	for _, r := range local {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r):
			b.WriteRune(r)
		case r == '.':
			b.WriteRune(r)
		}
	}
	s := strings.Trim(b.String(), ".")
	if s == "" {
		s = "user"
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func split(email string) (local, domain string, err error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", "", ErrNoEmail
	}
	a, perr := mail.ParseAddress(email)
	if perr != nil || a.Name != "" || a.Address != email {
		return "", "", fmt.Errorf("%w: %q", ErrBadEmail, email)
	}
	i := strings.LastIndexByte(email, '@')
	return email[:i], NormalizeDomain(email[i+1:]), nil
}

func checkLocalPart(local string) error {
	if len(local) > maxLocalPart {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrLocalPart, local, maxLocalPart)
	}
	for _, r := range local {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("'.-_!#^~", r)
		if !ok {
			return fmt.Errorf("%w: %q contains %q", ErrLocalPart, local, r)
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return fmt.Errorf("%w: %q has a misplaced dot", ErrLocalPart, local)
	}
	return nil
}

func contains(domains []string, d string) bool {
	return slices.ContainsFunc(domains, func(x string) bool { return NormalizeDomain(x) == d })
}

// Package rules holds the syntax rules of directory attributes as pure
// functions. The ent schema runs them as field validators, so every write path
// (API, CLI, worker, import) enforces them, and the database column sizes come
// from the same numbers.
package rules

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"

	"github.com/dirsync/dirsync/internal/domainname"
)

// Length limits. Where Microsoft Graph has a limit for the property the
// attribute maps to, we use it, so a value accepted here is never refused
// remotely for its length.
const (
	MaxUsername      = 64
	MaxEmail         = 254
	MaxEmailLocal    = 64
	MaxName          = 64  // givenName, surname
	MaxDisplayName   = 256 // displayName
	MaxJobTitle      = 128
	MaxDepartment    = 64
	MaxCompanyName   = 64
	MaxEmployeeID    = 16
	MaxEmployeeType  = 64
	MaxCostCenter    = 64
	MaxPhone         = 64
	MaxStreetAddress = 1024
	MaxCity          = 128
	MaxAddressState  = 128
	MaxPostalCode    = 40
	MaxCountry       = 128
	MaxOfficeLoc     = 128
	MaxGroupName     = 256
	MaxDescription   = 1024
	MaxOrgName       = 128
	MaxAPIKeyName    = 128
)

// Username accepts 1–64 ASCII letters, digits, '.', '_' and '-', starting with
// a letter or digit. Kept ASCII so it is always a valid mail alias
// (mailNickname) remotely.
func Username(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > MaxUsername {
		return fmt.Errorf("must be at most %d characters", MaxUsername)
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case (r == '.' || r == '_' || r == '-') && i > 0:
		default:
			if i == 0 {
				return errors.New("must start with a letter or digit")
			}
			return fmt.Errorf("may contain only letters, digits, '.', '_' and '-' (found %q)", r)
		}
	}
	return nil
}

// Email accepts a bare address (no display name, no angle brackets) of at most
// 254 characters with a local part of at most 64 and a dotted domain, in the
// form NormalizeEmail stores (the schema normalises before validating).
func Email(s string) error {
	_, err := NormalizeEmail(s)
	return err
}

// NormalizeEmail returns the stored form of an address: surrounding space
// trimmed, the domain in lower-case ASCII with internationalised labels in
// punycode ("Anna@Bücher.DE" → "Anna@xn--bcher-kva.de"), so one mailbox has
// one spelling for uniqueness and for the userPrincipalName built from it.
// The local part is kept as written. It refuses what Email refuses, and a
// domain label mixing scripts (a look-alike such as "pаypal" with a Cyrillic а).
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("must not be empty")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", errors.New("must be a plain email address like name@example.com")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if len(local) > MaxEmailLocal {
		return "", fmt.Errorf("local part must be at most %d characters", MaxEmailLocal)
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", errors.New("domain must be a dotted name like example.com")
	}
	domain, err = domainname.Normalize(domain)
	if err != nil {
		return "", fmt.Errorf("domain %w", err)
	}
	if n := local + "@" + domain; len(n) <= MaxEmail {
		return n, nil
	}
	return "", fmt.Errorf("must be at most %d characters (the domain counted in its ASCII form)", MaxEmail)
}

// OptionalNormalizeEmail is NormalizeEmail for fields that may be empty.
func OptionalNormalizeEmail(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	return NormalizeEmail(s)
}

// OptionalEmail is Email for fields that may be empty.
func OptionalEmail(s string) error {
	if s == "" {
		return nil
	}
	return Email(s)
}

// UsageLocation accepts an empty value or an ISO 3166-1 alpha-2 code in upper case,
// which is what Graph's usageLocation requires.
func UsageLocation(s string) error {
	if s == "" {
		return nil
	}
	if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' {
		return errors.New("must be a two-letter ISO 3166 country code in upper case, like DE")
	}
	return nil
}

// Text returns a validator for one-line free text of at most max characters
// (runes) without control characters; required rejects empty and blank values.
func Text(max int, required bool) func(string) error {
	return text(max, required, false)
}

// MultilineText is Text that also accepts line breaks and tabs.
func MultilineText(max int) func(string) error {
	return text(max, false, true)
}

func text(max int, required, multiline bool) func(string) error {
	return func(s string) error {
		if required && strings.TrimSpace(s) == "" {
			return errors.New("must not be empty")
		}
		if !utf8.ValidString(s) {
			return errors.New("must be valid UTF-8")
		}
		if n := utf8.RuneCountInString(s); n > max {
			return fmt.Errorf("must be at most %d characters", max)
		}
		for _, r := range s {
			if multiline && (r == '\n' || r == '\r' || r == '\t') {
				continue
			}
			if unicode.IsControl(r) {
				return errors.New("must not contain control characters")
			}
			if invisible(r, multiline) {
				return fmt.Errorf("must not contain the invisible formatting character %U", r)
			}
		}
		return nil
	}
}

// invisible reports formatting characters that make text display other than
// it is stored: bidirectional embeddings, overrides and isolates (the
// "Trojan Source" characters), the byte order mark, and in one-line text the
// Unicode line and paragraph separators. Joiners (U+200C, U+200D) stay:
// some scripts and emoji need them.
func invisible(r rune, multiline bool) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0xFEFF:
		return true
	case r == 0x2028 || r == 0x2029:
		return !multiline
	}
	return false
}

// Trim is the normalisation of one-line text, usernames and names: leading
// and trailing white space is never meaningful there, and a name that differs
// only by it ("ann " and "ann") must be the same name for uniqueness.
func Trim(s string) string { return strings.TrimSpace(s) }

// MaxUserLimit bounds an organization's seat limit: far above any directory
// we serve, low enough that counting against it can never overflow.
const MaxUserLimit = 10_000_000

// UserLimit accepts a seat limit of 1..MaxUserLimit (null, no limit, is
// handled by the field being absent).
func UserLimit(n int) error {
	if n < 1 || n > MaxUserLimit {
		return fmt.Errorf("must be between 1 and %d, or null for no limit", MaxUserLimit)
	}
	return nil
}

// Fold returns the form used for case-insensitive uniqueness. It is stored next
// to the value and carries the unique index, so the database decides races.
func Fold(s string) string {
	return cases.Fold().String(s)
}

// User states, equal to the ent enum values of user.State.
const (
	StateStaged    = "STAGED"
	StateActive    = "ACTIVE"
	StateSuspended = "SUSPENDED"
)

// CanTransition reports whether a user may move from one state to another.
// A user never goes back to STAGED: staged means "never activated yet".
// Staying in the same state is allowed and means "nothing to do".
func CanTransition(from, to string) bool {
	if from == to {
		return true
	}
	switch from + ">" + to {
	case StateStaged + ">" + StateActive,
		StateStaged + ">" + StateSuspended,
		StateActive + ">" + StateSuspended,
		StateSuspended + ">" + StateActive:
		return true
	}
	return false
}

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
	"unicode/utf8"

	"golang.org/x/text/cases"
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
// 254 characters with a local part of at most 64 and a dotted domain.
func Email(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > MaxEmail {
		return fmt.Errorf("must be at most %d characters", MaxEmail)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return errors.New("must be a plain email address like name@example.com")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if len(local) > MaxEmailLocal {
		return fmt.Errorf("local part must be at most %d characters", MaxEmailLocal)
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return errors.New("domain must be a dotted name like example.com")
	}
	return nil
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
			if r < 0x20 || r == 0x7f {
				return errors.New("must not contain control characters")
			}
		}
		return nil
	}
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

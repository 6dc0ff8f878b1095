package password

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Rule names a password policy rule; clients see it in the error message.
type Rule string

// The rules of Microsoft Entra's password policy, which we check before
// anything is stored or pushed.
const (
	RuleLength     Rule = "LENGTH"            // 8 to 256 characters
	RuleCharacters Rule = "CHARACTERS"        // printable ASCII only, no Unicode, no control characters
	RuleClasses    Rule = "CHARACTER_CLASSES" // three of lowercase, uppercase, digits, symbols
	RuleNoName     Rule = "CONTAINS_NAME"     // must not contain the user's name or account name
)

// Limits of Entra's password policy.
const (
	MinLength = 8
	MaxLength = 256
)

// PolicyError says which rule a password broke. It never contains the password.
type PolicyError struct {
	Rule   Rule
	Detail string
}

func (e *PolicyError) Error() string { return fmt.Sprintf("password policy %s: %s", e.Rule, e.Detail) }

// Check applies Entra's password policy: 8–256 characters, printable ASCII
// only, at least three of the four character classes, and none of the given
// words (username, email local part, first and last name; words shorter than
// three characters are ignored, as Entra does) in it, case-insensitively.
func Check(pw string, avoid ...string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinLength || n > MaxLength {
		return &PolicyError{RuleLength, fmt.Sprintf("must be %d to %d characters long", MinLength, MaxLength)}
	}
	var lower, upper, digit, symbol bool
	for _, r := range pw {
		switch {
		case r < ' ' || r > '~':
			return &PolicyError{RuleCharacters, "may contain only letters A–Z and a–z, digits, symbols and spaces (no accented or other Unicode characters)"}
		case 'a' <= r && r <= 'z':
			lower = true
		case 'A' <= r && r <= 'Z':
			upper = true
		case '0' <= r && r <= '9':
			digit = true
		default:
			symbol = true
		}
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, symbol} {
		if b {
			classes++
		}
	}
	if classes < 3 {
		return &PolicyError{RuleClasses, "needs at least three of: lowercase letters, uppercase letters, digits, symbols"}
	}
	low := strings.ToLower(pw)
	for _, w := range avoid {
		if len(w) >= 3 && strings.Contains(low, strings.ToLower(w)) {
			return &PolicyError{RuleNoName, "must not contain the user's name or account name"}
		}
	}
	return nil
}

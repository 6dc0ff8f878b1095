// Package domainname puts a DNS domain name into the one form we store and
// compare: lower-case ASCII, internationalised labels in punycode (IDNA 2008 /
// UTS 46 lookup mapping), with labels that mix scripts refused. The same form
// is used for email domains, integration domains and UPNs, so "bücher.de",
// "BÜCHER.de" and "xn--bcher-kva.de" are one domain everywhere.
package domainname

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// profile is UTS 46 lookup processing (case folding, width and NFC mapping,
// non-transitional so ß stays ß) plus the Bidi rule and DNS length checks.
var profile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
	idna.Transitional(false),
)

// ErrMixedScript marks a label whose letters come from scripts that are not
// normally written together, the usual shape of a look-alike ("pаypal" with a
// Cyrillic а).
var ErrMixedScript = errors.New("mixes letters of different scripts")

// Normalize returns d in stored form: trimmed, without a trailing dot, in
// lower-case ASCII with punycode labels. It refuses what is not a valid
// domain name under IDNA lookup rules, and labels that mix scripts.
func Normalize(d string) (string, error) {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if d == "" {
		return "", errors.New("is empty")
	}
	ascii, err := profile.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("is not a valid domain name (%v)", trimIDNAPrefix(err))
	}
	uni, err := profile.ToUnicode(ascii)
	if err != nil {
		return "", fmt.Errorf("is not a valid domain name (%v)", trimIDNAPrefix(err))
	}
	for _, label := range strings.Split(uni, ".") {
		if a, b, mixed := mixedScripts(label); mixed {
			return "", fmt.Errorf("label %q %w (%s and %s): write each label in one script", label, ErrMixedScript, a, b)
		}
	}
	return ascii, nil
}

// Lenient is Normalize for comparing values that were checked when stored or
// come from a remote (Graph's verified domains): it never fails, falling
// back to lower-casing, and skips the script check.
func Lenient(d string) string {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if isASCII(d) {
		return strings.ToLower(d)
	}
	if n, err := profile.ToASCII(d); err == nil {
		return n
	}
	return strings.ToLower(d)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func trimIDNAPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "idna: ")
}

// allowedMixes are the script combinations UTS 39 ("highly restrictive")
// accepts in one identifier because they are written together: Japanese,
// Chinese with Bopomofo, Korean; each may also carry Latin.
var allowedMixes = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// mixedScripts reports two scripts of label that may not appear together.
// Common and Inherited characters (digits, hyphen, combining marks) belong to
// every script.
func mixedScripts(label string) (string, string, bool) {
	var scripts []string
	for _, r := range label {
		s := scriptOf(r)
		if s == "" || s == "Common" || s == "Inherited" || contains(scripts, s) {
			continue
		}
		scripts = append(scripts, s)
	}
	if len(scripts) < 2 {
		return "", "", false
	}
	for _, mix := range allowedMixes {
		if subset(scripts, mix) {
			return "", "", false
		}
	}
	return scripts[0], scripts[1], true
}

func scriptOf(r rune) string {
	if r < 0x80 {
		if unicode.IsLetter(r) {
			return "Latin"
		}
		return "Common"
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

func subset(xs, of []string) bool {
	for _, x := range xs {
		if !contains(of, x) {
			return false
		}
	}
	return true
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

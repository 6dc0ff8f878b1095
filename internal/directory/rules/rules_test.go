package rules

import (
	"strings"
	"testing"
)

func TestUsername(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"a", true}, {"9", true}, {"john.doe", true}, {"j_d-1.x", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {".a", false}, {"_a", false}, {"-a", false},
		{"a b", false}, {"a@b", false}, {"ä", false}, {"a+b", false}, {"a/b", false},
	} {
		if err := Username(c.in); (err == nil) != c.ok {
			t.Errorf("Username(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"a@example.com", true}, {"first.last+tag@sub.example.co.uk", true},
		{strings.Repeat("a", 64) + "@example.com", true},
		{"a@" + long(56) + ".com", true}, // 254
		{"", false}, {"a", false}, {"a@", false}, {"@example.com", false}, {"a@localhost", false},
		{"A <a@example.com>", false}, {"<a@example.com>", false},
		{strings.Repeat("a", 65) + "@example.com", false},
		{"a@" + long(57) + ".com", false},                // 255
		{"a@" + strings.Repeat("b", 64) + ".com", false}, // DNS label over 63
		{"a@p\u0430ypal.com", false},                     // mixed Latin and Cyrillic
		{"a@example..com", false}, {"a@.example.com", false}, {"a@example.com.", false},
	} {
		if err := Email(c.in); (err == nil) != c.ok {
			t.Errorf("Email(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
	if OptionalEmail("") != nil || OptionalEmail("x") == nil {
		t.Error("OptionalEmail must accept empty and check the rest")
	}
}

// long is a domain of three 63-character labels and one of n.
func long(n int) string {
	l := strings.Repeat("b", 63) + "."
	return l + l + l + strings.Repeat("b", n)
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		" a@example.com\t":      "a@example.com",
		"Anna@Bücher.DE":        "Anna@xn--bcher-kva.de",
		"Anna@xn--BCHER-kva.de": "Anna@xn--bcher-kva.de",
		"x@ｅｘａｍｐｌｅ.org":         "x@example.org",
	} {
		got, err := NormalizeEmail(in)
		if err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := NormalizeEmail("billing@p\u0430ypal.com")
	if err == nil || !strings.Contains(err.Error(), "scripts") {
		t.Errorf("mixed-script domain: %v", err)
	}
}

func TestUserLimit(t *testing.T) {
	t.Parallel()
	for n, ok := range map[int]bool{1: true, MaxUserLimit: true, 0: false, -1: false, MaxUserLimit + 1: false, 1 << 40: false} {
		if err := UserLimit(n); (err == nil) != ok {
			t.Errorf("UserLimit(%d) = %v, want ok=%v", n, err, ok)
		}
	}
}

func TestUsageLocation(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{"": true, "DE": true, "US": true, "de": false, "D": false, "DEU": false, "D1": false} {
		if err := UsageLocation(in); (err == nil) != ok {
			t.Errorf("UsageLocation(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	req, opt, multi := Text(3, true), Text(3, false), MultilineText(5)
	for _, c := range []struct {
		name string
		fn   func(string) error
		in   string
		ok   bool
	}{
		{"required empty", req, "", false},
		{"required blank", req, "  ", false},
		{"required ok", req, "abc", true},
		{"counts runes not bytes", req, "äöü", true},
		{"too long", req, "abcd", false},
		{"optional empty", opt, "", true},
		{"control char", opt, "a\x00", false},
		{"newline in one-line text", opt, "a\nb", false},
		{"newline in multiline", multi, "a\nb", true},
		{"bell in multiline", multi, "a\ab", false},
		{"invalid utf8", opt, "\xff", false},
		{"C1 control", opt, "a\u0085", false},
		{"bidi override", opt, "a\u202e", false},
		{"bidi override in multiline", multi, "a\u202eb", false},
		{"isolate", opt, "\u2066a", false},
		{"byte order mark", opt, "\ufeffa", false},
		{"line separator in one-line text", opt, "a\u2028", false},
		{"line separator in multiline", multi, "a\u2028b", true},
		{"zero-width joiner", opt, "a\u200db", true},
	} {
		if err := c.fn(c.in); (err == nil) != c.ok {
			t.Errorf("%s: %q → %v, want ok=%v", c.name, c.in, err, c.ok)
		}
	}
}

func TestFoldMakesCaseVariantsEqual(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]string{{"Alice", "aLICE"}, {"Straße", "STRASSE"}, {"ÄRGER", "ärger"}} {
		if Fold(pair[0]) != Fold(pair[1]) {
			t.Errorf("Fold(%q) != Fold(%q)", pair[0], pair[1])
		}
	}
	if Fold("a") == Fold("b") {
		t.Error("distinct values must stay distinct")
	}
}

func TestCanTransition(t *testing.T) {
	t.Parallel()
	all := []string{StateStaged, StateActive, StateSuspended}
	allowed := map[string]bool{
		"STAGED>ACTIVE": true, "STAGED>SUSPENDED": true, "ACTIVE>SUSPENDED": true, "SUSPENDED>ACTIVE": true,
		"STAGED>STAGED": true, "ACTIVE>ACTIVE": true, "SUSPENDED>SUSPENDED": true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := CanTransition(from, to); got != allowed[from+">"+to] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
	}
}

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
		{"a@" + strings.Repeat("b", 248) + ".com", true}, // 254
		{"", false}, {"a", false}, {"a@", false}, {"@example.com", false}, {"a@localhost", false},
		{"A <a@example.com>", false}, {"<a@example.com>", false}, {" a@example.com", false},
		{strings.Repeat("a", 65) + "@example.com", false},
		{"a@" + strings.Repeat("b", 249) + ".com", false}, // 255
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

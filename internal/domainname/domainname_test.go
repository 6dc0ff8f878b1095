package domainname

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":            "example.com",
		" Example.COM. ":         "example.com",
		"bücher.de":              "xn--bcher-kva.de",
		"BÜCHER.de":              "xn--bcher-kva.de",
		"xn--bcher-kva.de":       "xn--bcher-kva.de",
		"ｅｘａｍｐｌｅ.com":            "example.com", // full-width letters map to ASCII
		"пример.рф":              "xn--e1afmkfd.xn--p1ai",
		"пример.com":             "xn--e1afmkfd.com", // one script per label is fine
		"日本語ドメイン.jp":             "xn--eckwd4c7c5976acvb2w6i.jp",
		"straße.de":              "xn--strae-oqa.de", // non-transitional: ß stays
		"mail-1.sub.example.org": "mail-1.sub.example.org",
	} {
		got, err := Normalize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
}

func TestNormalizeRefuses(t *testing.T) {
	for _, in := range []string{
		"",
		"exa mple.com",
		"-example.com",
		"example..com",
		"xn--zz.com",                     // not valid punycode
		"a\x00b.com",                     // NUL
		"ex\u202eample.com",              // bidi override
		strings.Repeat("a", 64) + ".com", // label over 63
	} {
		_, err := Normalize(in)
		require.Error(t, err, "%q", in)
	}
}

func TestMixedScriptRefused(t *testing.T) {
	for _, in := range []string{
		"p\u0430ypal.com",   // Cyrillic а in a Latin label
		"xn--pypal-4ve.com", // the same, already in punycode
		"g\u03bfogle.com",   // Greek ο
	} {
		_, err := Normalize(in)
		require.True(t, errors.Is(err, ErrMixedScript), "%q: %v", in, err)
	}
}

func TestLenient(t *testing.T) {
	for in, want := range map[string]string{
		" Contoso.COM. ":   "contoso.com",
		"Bücher.de":        "xn--bcher-kva.de",
		"xn--BCHER-kva.de": "xn--bcher-kva.de",
		"p\u0430ypal.com":  "xn--pypal-4ve.com", // compared, not judged
		"not a domain.COM": "not a domain.com",
	} {
		require.Equal(t, want, Lenient(in), in)
	}
}

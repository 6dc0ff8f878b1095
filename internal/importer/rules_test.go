package importer

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/mapping"
)

func TestBaseUsername(t *testing.T) {
	for _, c := range []struct {
		nick, mail, upn, want string
	}{
		{"alice", "alice.smith@contoso.com", "as@contoso.com", "alice"},             // alias first
		{"bob!x", "bob.x@contoso.com", "bob@contoso.com", "bob.x"},                  // alias not a username → mail local part
		{"", "", "carol@contoso.com", "carol"},                                      // no alias, no mail → UPN local part
		{"#x", "o'neil+tag@contoso.com", "", "oneiltag"},                            // characters dropped
		{"", "_.-@contoso.com", "", ""},                                             // nothing usable
		{"", "-lead.dot@contoso.com", "", "lead.dot"},                               // must start with a letter or digit
		{"", strings.Repeat("a", 70) + "@contoso.com", "", strings.Repeat("a", 64)}, // cut to 64
	} {
		got := BaseUsername(Remote{MailNickname: c.nick, Mail: c.mail, UPN: c.upn})
		require.Equal(t, c.want, got, "%+v", c)
	}
}

func TestEmailAndSuffix(t *testing.T) {
	require.Equal(t, "m@contoso.com", Email(Remote{Mail: "m@contoso.com", UPN: "u@contoso.com"}))
	require.Equal(t, "u@contoso.com", Email(Remote{UPN: "u@contoso.com"}))
	require.Equal(t, "ann-2", Suffixed("ann", 2))
	long := strings.Repeat("b", 63) + "."
	s := Suffixed(long, 12)
	require.LessOrEqual(t, len(s), 64)
	require.Equal(t, strings.Repeat("b", 61)+"-12", s)
}

func TestSelectAndAttributes(t *testing.T) {
	table := mapping.Table{
		{Attribute: "firstName", Property: "givenName", Export: true, Import: true},
		{Attribute: "jobTitle", Property: "jobTitle", Export: true, Import: false},
		{Attribute: "costCenter", Property: "employeeOrgData.costCenter", Export: true, Import: true},
		{Attribute: "usageLocation", Property: "usageLocation", Export: true, Import: true},
		{Attribute: "email", Property: "mail", Export: false, Import: true},
	}
	sel := SelectProperties(table)
	require.Contains(t, sel, "givenName")
	require.Contains(t, sel, "employeeOrgData")
	require.NotContains(t, sel, "jobTitle", "only import-flagged properties are read")
	raw := map[string]any{"givenName": " Ann ", "jobTitle": "Boss", "employeeOrgData": map[string]any{"costCenter": "CC1"},
		"usageLocation": "germany", "mail": "x@y.z"}
	attrs, dropped := Attributes(table, FromGraph(raw), func(attr, v string) error {
		if attr == "usageLocation" && len(v) != 2 {
			return errString("must be a two-letter code")
		}
		return nil
	})
	require.Equal(t, mapping.Attributes{"firstName": "Ann", "costCenter": "CC1"}, attrs)
	require.Equal(t, []string{"usageLocation not imported: must be a two-letter code"}, dropped)
}

type errString string

func (e errString) Error() string { return string(e) }

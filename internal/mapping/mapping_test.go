package mapping

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaultTableIsValid(t *testing.T) {
	require.NoError(t, Default().Validate())
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Table{
		{Attribute: "shoeSize", Property: "givenName", Export: true},
		{Attribute: "firstName", Property: "favouriteColour", Export: true},
		{Attribute: "lastName", Property: "surname", Export: true},
		{Attribute: "displayName", Property: "surname", Export: true},
	}.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "shoeSize")
	require.Contains(t, err.Error(), "favouriteColour")
	require.Contains(t, err.Error(), `"surname" is already exported`)
}

func TestExportOnlyExportedA2(t *testing.T) {
	body := Default().Export(Attributes{
		"firstName": "Ann", "lastName": "Lee", "displayName": "Ann Lee", "costCenter": "CC-1",
		"businessPhone": "+1 555", "email": "ann@contoso.com", "jobTitle": "  ",
	})
	require.Equal(t, "Ann", body["givenName"])
	require.Equal(t, []string{"+1 555"}, body["businessPhones"])
	require.Equal(t, map[string]any{"costCenter": "CC-1"}, body["employeeOrgData"])
	require.Nil(t, body["jobTitle"], "blank clears the remote value")
	require.Contains(t, body, "jobTitle")
	require.NotContains(t, body, "mail", "mail is not exported by default")
	require.Nil(t, body["mobilePhone"], "unset scalar exported as null")

	cleared := Default().Export(Attributes{})
	require.Equal(t, []string{}, cleared["businessPhones"], "unset list exported as []")
}

func TestImportOnlyImported(t *testing.T) {
	var remote map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"givenName":"Bo","surname":"Ng","mail":"bo@x.com",
		"businessPhones":["+44 1"],"employeeOrgData":{"costCenter":"9"}}`), &remote))
	got := Default().Import(remote)
	require.Equal(t, Attributes{"firstName": "Bo", "lastName": "Ng", "businessPhone": "+44 1", "costCenter": "9"}, got)
}

func TestHashStableAndSensitive(t *testing.T) {
	a := Default().Export(Attributes{"firstName": "Ann", "city": "Oslo"})
	b := Default().Export(Attributes{"city": "Oslo", "firstName": "Ann"})
	c := Default().Export(Attributes{"firstName": "Ann", "city": "Bergen"})
	require.Equal(t, Hash(a), Hash(b))
	require.NotEqual(t, Hash(a), Hash(c))
}

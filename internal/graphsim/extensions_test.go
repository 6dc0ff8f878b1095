package graphsim

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Open extensions on users and groups behave as Graph documents them:
// create (201, id = extensionName), a second create of the name 409
// NameAlreadyExists, get (case-insensitive name), PATCH merges, list,
// $expand=extensions on the object, delete, 404 Request_ResourceNotFound
// afterwards — and they do not show in delta (issue 14, ownership marker).
func TestOpenExtensions(t *testing.T) {
	e := newEnv(t, Config{DisableThrottling: true})
	uid := e.json(201, "POST", "/users", newUserBody("ext@contoso.com"))["id"].(string)
	gid := e.json(201, "POST", "/groups", map[string]any{"displayName": "G", "mailEnabled": false,
		"mailNickname": "g", "securityEnabled": true, "groupTypes": []string{}})["id"].(string)
	_, link := e.deltaRound("/users/delta?$select=displayName")

	for _, base := range []string{"/users/" + uid, "/groups/" + gid} {
		body := map[string]any{"@odata.type": "microsoft.graph.openTypeExtension", "extensionName": "com.dirsync.owner",
			"deployment": "d1", "integrationId": "IN1"}
		got := e.json(201, "POST", base+"/extensions", body)
		require.Equal(t, "com.dirsync.owner", got["id"])
		require.Equal(t, "#microsoft.graph.openTypeExtension", got["@odata.type"])
		require.Equal(t, "IN1", got["integrationId"])

		conflict := e.json(409, "POST", base+"/extensions", body)
		require.Equal(t, "NameAlreadyExists", conflict["error"].(map[string]any)["code"])

		e.json(400, "POST", base+"/extensions", map[string]any{"extensionName": "x"}) // no @odata.type

		e.json(204, "PATCH", base+"/extensions/com.dirsync.owner", map[string]any{"integrationId": "IN2"})
		got = e.json(200, "GET", base+"/extensions/COM.DIRSYNC.OWNER", nil)
		require.Equal(t, "IN2", got["integrationId"])
		require.Equal(t, "d1", got["deployment"])

		list := e.json(200, "GET", base+"/extensions", nil)["value"].([]any)
		require.Len(t, list, 1)
		expanded := e.json(200, "GET", base+"?$expand=extensions", nil)
		require.Len(t, expanded["extensions"].([]any), 1)
		e.json(400, "GET", base+"?$expand=manager", nil)

		e.json(204, "DELETE", base+"/extensions/com.dirsync.owner", nil)
		nf := e.json(404, "GET", base+"/extensions/com.dirsync.owner", nil)
		require.Equal(t, "Request_ResourceNotFound", nf["error"].(map[string]any)["code"])
		e.json(404, "DELETE", base+"/extensions/com.dirsync.owner", nil)
		require.Empty(t, e.json(200, "GET", base+"?$expand=extensions", nil)["extensions"])
	}
	e.json(404, "GET", "/users/00000000-0000-0000-0000-000000000000/extensions", nil)
	items, _ := e.deltaRound(link)
	require.Empty(t, items, "extension writes are not changes of the user")
}

package graphsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/dirsync/dirsync/internal/graphsim"
)

// A test starts the emulator in-process, bootstraps a tenant, and talks to
// it exactly as to Microsoft: token from the login base URL, Graph under /v1.0.
func Example() {
	sim := graphsim.New(graphsim.Config{Seed: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	creds, err := sim.Bootstrap("contoso", "contoso.com")
	if err != nil {
		panic(err)
	}

	res, err := http.PostForm(srv.URL+"/"+creds.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {creds.ClientID},
		"client_secret": {creds.ClientSecret}, "scope": {"https://graph.microsoft.com/.default"},
	})
	if err != nil {
		panic(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()

	body := `{"accountEnabled":true,"displayName":"Ada","mailNickname":"ada",
		"userPrincipalName":"ada@contoso.com","passwordProfile":{"password":"xWwvJ]6NMw+bWH-d"}}`
	for range 2 {
		req, _ := http.NewRequest("POST", srv.URL+"/v1.0/users", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		var out struct {
			UPN   string `json:"userPrincipalName"`
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if res.StatusCode >= 400 {
			fmt.Println(res.StatusCode, out.Error.Code, out.Error.Message)
		} else {
			fmt.Println(res.StatusCode, out.UPN)
		}
	}
	fmt.Println(len(sim.Users(creds.TenantID)), "user")
	// Output:
	// 201 ada@contoso.com
	// 400 Request_BadRequest Another object with the same value for property userPrincipalName already exists.
	// 1 user
}

package simtest_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/msgraph"
)

// Point the client at the emulator: the login base is the server, Graph is
// server + /v1.0. Against Microsoft, leave both URLs empty.
func Example() {
	sim := graphsim.New(graphsim.Config{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	creds, _ := sim.Bootstrap("contoso", "contoso.example")

	c, err := msgraph.New(msgraph.Config{
		TenantID: creds.TenantID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		LoginBaseURL: srv.URL, GraphBaseURL: srv.URL + "/v1.0",
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	u := msgraph.UserFields{
		AccountEnabled:    msgraph.Ptr(false), // P2: a staged user
		DisplayName:       msgraph.Ptr("Ann Example"),
		MailNickname:      msgraph.Ptr("ann"),
		UserPrincipalName: msgraph.Ptr("ann@contoso.example"),
		PasswordProfile:   &msgraph.PasswordProfile{Password: "Xy7!pLq-3vR9"},
	}
	created, err := c.CreateUser(ctx, u)
	fmt.Println(created.UserPrincipalName, err)

	_, err = c.CreateUser(ctx, u)
	fmt.Println("conflict:", msgraph.IsUPNConflict(err))

	found, _ := c.FindUserByUPN(ctx, "ann@contoso.example")
	fmt.Println("found:", found.ID == created.ID)
	// Output:
	// ann@contoso.example <nil>
	// conflict: true
	// found: true
}

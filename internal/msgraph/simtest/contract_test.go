package simtest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/msgraph"
)

// The Graph contract (STYLE.md habit 7): one suite of observable behaviour run
// against the emulator and, when credentials are given, against a real tenant:
//
//	MSGRAPH_IT_TENANT_ID, MSGRAPH_IT_CLIENT_ID, MSGRAPH_IT_CLIENT_SECRET,
//	MSGRAPH_IT_DOMAIN (a verified domain of that tenant)
//
// It creates uniquely named objects and deletes them afterwards. Emulator-only
// behaviour (faults, throttling, request-log assertions) lives in graphsim_test.go.
func TestContractEmulator(t *testing.T) {
	e := newEnv(t, noThrottle())
	runContract(t, e.c, e.domain)
}

func TestContractRealTenant(t *testing.T) {
	tenant, id, secret, domain := os.Getenv("MSGRAPH_IT_TENANT_ID"), os.Getenv("MSGRAPH_IT_CLIENT_ID"),
		os.Getenv("MSGRAPH_IT_CLIENT_SECRET"), os.Getenv("MSGRAPH_IT_DOMAIN")
	if tenant == "" || id == "" || secret == "" || domain == "" {
		t.Skip("set MSGRAPH_IT_TENANT_ID, MSGRAPH_IT_CLIENT_ID, MSGRAPH_IT_CLIENT_SECRET and MSGRAPH_IT_DOMAIN to run against a real tenant")
	}
	c, err := msgraph.New(msgraph.Config{TenantID: tenant, ClientID: id, ClientSecret: secret})
	require.NoError(t, err)
	runContract(t, c, domain)
}

func runContract(t *testing.T, c *msgraph.Client, domain string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	sfx := hex.EncodeToString(b)
	nick := "dsct" + sfx
	upn := nick + "@" + domain

	ds, err := c.ListDomains(ctx)
	require.NoError(t, err)
	verified := false
	for _, d := range ds {
		verified = verified || (d.ID == domain && d.IsVerified)
	}
	require.True(t, verified, "%s must be a verified domain", domain)

	u, err := c.CreateUser(ctx, newUser(upn, nick))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.DeleteUser(context.Background(), u.ID) })
	assert.Equal(t, upn, u.UserPrincipalName)

	// Read right after create (replication delay is retried by the client).
	got, err := c.GetUser(ctx, u.ID, "id", "accountEnabled", "userPrincipalName")
	require.NoError(t, err)
	require.NotNil(t, got.AccountEnabled)
	assert.True(t, *got.AccountEnabled)

	require.NoError(t, c.UpdateUser(ctx, u.ID, msgraph.UserFields{AccountEnabled: msgraph.Ptr(false), JobTitle: msgraph.Ptr("Contract")}))

	_, err = c.CreateUser(ctx, newUser(upn, nick+"x"))
	assert.True(t, msgraph.IsUPNConflict(err), "duplicate UPN: %v", err)
	_, err = c.CreateUser(ctx, newUser(nick+"@unverified-"+sfx+".example", nick+"y"))
	assert.True(t, msgraph.IsUnverifiedDomain(err), "unverified domain: %v", err)
	weak := newUser("w"+upn, "w"+nick)
	weak.PasswordProfile.Password = "password"
	_, err = c.CreateUser(ctx, weak)
	assert.True(t, msgraph.IsWeakPassword(err), "weak password: %v", err)

	g, err := c.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "dirsync contract " + sfx, MailNickname: nick})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.DeleteGroup(context.Background(), g.ID) })
	require.NoError(t, c.AddGroupMember(ctx, g.ID, u.ID))
	assert.True(t, msgraph.IsMemberAlreadyPresent(c.AddGroupMember(ctx, g.ID, u.ID)))
	require.NoError(t, c.RemoveGroupMember(ctx, g.ID, u.ID))
	assert.True(t, msgraph.IsMemberAbsent(c.RemoveGroupMember(ctx, g.ID, u.ID)))

	require.NoError(t, c.DeleteUser(ctx, u.ID))
	_, err = c.GetUser(ctx, u.ID)
	assert.True(t, msgraph.IsNotFound(err), "%v", err)
}

package integrations

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/egress"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/testdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidDomain(t *testing.T) {
	t.Parallel()
	for d, ok := range map[string]bool{
		"contoso.com": true, "a.b.c.example.org": true, "xn--bcher-kva.de": true, "1-2.io": true,
		"": false, "localhost": false, "-a.com": false, "a-.com": false, "a..com": false,
		"a_b.com": false, "a b.com": false, "example.123": false, "Contoso.com": false, // callers normalise first
	} {
		assert.Equal(t, ok, validDomain(d), d)
	}
}

func TestClaimedAndChecks(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"a.com"}, claimed([]string{"a.com"}, []string{"a.com", "b.com"}))
	assert.Equal(t, []string{"a.com", "b.com"}, claimed(nil, []string{"a.com", "b.com"}), "D2 claims every verified domain")
	require.NoError(t, checkVerified(nil, []string{"a.com"}))
	require.NoError(t, checkVerified([]string{"a.com"}, []string{"a.com", "b.com"}))
	err := checkVerified([]string{"a.com", "c.com"}, []string{"a.com"})
	require.ErrorContains(t, err, "c.com")
	assert.NotContains(t, err.Error(), "a.com,")
}

// The service works outside a GraphQL request too (CLI, dev wiring): it opens
// its own transactions and returns entities usable after they committed.
func TestServiceOutsideRequest(t *testing.T) {
	t.Parallel()
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, testdb.New(t, dbmigrate.Migrator{}))))
	sim := graphsim.New(graphsim.Config{Seed: 3, DisableThrottling: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	kr, err := secrets.NewKeyring("k", map[string][]byte{"k": bytes.Repeat([]byte{1}, 32)})
	require.NoError(t, err)
	conn, err := tenant.New(tenant.Config{Keyring: kr, AllowCustomURLs: true, AllowInsecureURLs: true,
		HTTPClient: &http.Client{Transport: transport},
		Retry:      &msgraph.RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	creds, err := sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)

	org, err := directory.New(client).CreateOrganization(auth.SystemContext(context.Background()), "acme")
	require.NoError(t, err)
	ctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: org.ID, Role: auth.RoleAdmin})
	svc := New(client, conn)

	graphURL, loginURL := srv.URL+"/v1.0", srv.URL
	in, err := svc.Create(ctx, model.CreateIntegrationInput{Name: "Contoso", TenantID: creds.TenantID, ClientID: creds.ClientID,
		ClientSecret: creds.ClientSecret, GraphBaseURL: &graphURL, LoginBaseURL: &loginURL, Domains: []string{"CONTOSO.com"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"contoso.com"}, in.Domains)

	in, job, err := svc.Authorize(ctx, in.ID)
	require.NoError(t, err)
	assert.Nil(t, job)
	assert.Equal(t, integration.StatusAUTHORIZED, in.Status)
	assert.Equal(t, []string{"contoso.com", "contoso.onmicrosoft.com"}, in.VerifiedDomains)

	u, err := directory.New(client).CreateUser(ctx, ent.CreateUserInput{Username: "ann", Email: "ann@contoso.com"})
	require.NoError(t, err)
	in, job, err = svc.BindUsers(ctx, in.ID, []pulid.ID{u.ID})
	require.NoError(t, err)
	require.NotNil(t, job)
	assert.Equal(t, jobs.JobBindUsers, job.Kind)
	items, err := job.QueryItems().All(ctx) // detached: usable after commit
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, u.ID, *items[0].UserID)
	assert.Equal(t, "Contoso", in.Name)

	// A failed authorization (secret rotated remotely) records why, even though
	// its own transaction is rolled back.
	bad := "wrong"
	_, _, err = svc.Update(ctx, in.ID, model.UpdateIntegrationInput{ClientSecret: &bad})
	require.NoError(t, err)
	_, _, err = svc.Authorize(ctx, in.ID)
	require.Error(t, err)
	got, err := client.Integration.Get(ctx, in.ID)
	require.NoError(t, err)
	assert.Equal(t, integration.StatusUNAUTHORIZED, got.Status)
	assert.Contains(t, got.LastError, "client secret")
	n, err := client.UserBinding.Query().Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a credential change keeps bindings")

	// The same integration on a server that no longer allows insecure URLs
	// (the flag turned off after it was saved): a typed refusal naming the
	// setting, not an internal error, and nothing is sent.
	strict, err := tenant.New(tenant.Config{Keyring: kr, AllowCustomURLs: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	sim.ClearRequests()
	_, _, err = New(client, strict).Authorize(ctx, in.ID)
	var ge *gqlerr.Error
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, gqlerr.FailedPrecondition, ge.Code)
	assert.Equal(t, "graphBaseURL", ge.Field)
	assert.ErrorIs(t, err, egress.ErrBlocked)
	assert.Empty(t, sim.Requests())
}

// Binding a group of thousands starts one job with an item and an outbox row
// per member (bulk inserts stay under PostgreSQL's parameter limit).
func TestBindLargeGroup(t *testing.T) {
	t.Parallel()
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, testdb.New(t, dbmigrate.Migrator{}))))
	sys := auth.SystemContext(context.Background())
	org, err := directory.New(client).CreateOrganization(sys, "acme")
	require.NoError(t, err)
	ctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: org.ID, Role: auth.RoleAdmin})
	const n = 9000 // × ~9 columns per item: above the limit without chunks
	var ids []pulid.ID
	for start := 0; start < n; start += 1000 {
		var creates []*ent.UserCreate
		for i := start; i < min(start+1000, n); i++ {
			name := fmt.Sprintf("u%05d", i)
			creates = append(creates, client.User.Create().SetUsername(name).SetEmail(name+"@contoso.com"))
		}
		users, err := client.User.CreateBulk(creates...).Save(ctx)
		require.NoError(t, err)
		for _, u := range users {
			ids = append(ids, u.ID)
		}
	}
	g, err := client.UserGroup.Create().SetName("everyone").AddMemberIDs(ids...).Save(ctx)
	require.NoError(t, err)
	// An authorized integration, as authorize would leave it (no remote call needed here).
	in, err := client.Integration.Create().SetName("Contoso").SetTenantID("t").SetClientID("c").
		SetClientSecretSealed("sealed").SetStatus(integration.StatusAUTHORIZED).
		SetVerifiedDomains([]string{"contoso.com"}).SetAttributeMappings(mapping.Default()).Save(ctx)
	require.NoError(t, err)

	_, job, err := New(client, nil).BindUserGroups(ctx, in.ID, []pulid.ID{g.ID})
	require.NoError(t, err)
	require.NotNil(t, job)
	assert.Equal(t, n, job.Total)
	items, err := job.QueryItems().Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, n, items)
	rows, err := client.Outbox.Query().Count(sys)
	require.NoError(t, err)
	assert.Equal(t, n, rows)
	notes, err := client.Notification.Query().Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, n, notes)
}

package integrations

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/outbox"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph/model"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/tenant"
	"github.com/dirsync/dirsync/internal/testdb"
)

// force and releaseOwnership reach the reconcile tasks of the users of the
// integration the mutation names; driftAction is stored and starts no job
// (issue 14).
func TestBindingOwnershipOptionsAndDriftAction(t *testing.T) {
	t.Parallel()
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, testdb.New(t, dbmigrate.Migrator{}))))
	sim := graphsim.New(graphsim.Config{Seed: 3, DisableThrottling: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	kr, err := secrets.NewKeyring("k", map[string][]byte{"k": bytes.Repeat([]byte{1}, 32)})
	require.NoError(t, err)
	conn, err := tenant.New(tenant.Config{Keyring: kr, AllowCustomURLs: true, AllowInsecureURLs: true,
		Retry:  &msgraph.RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	creds, err := sim.Bootstrap("contoso", "contoso.com")
	require.NoError(t, err)
	org, err := directory.New(client).CreateOrganization(auth.SystemContext(context.Background()), "acme")
	require.NoError(t, err)
	ctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: org.ID, Role: auth.RoleAdmin})
	svc := New(client, conn)
	graphURL, loginURL := srv.URL+"/v1.0", srv.URL
	in, err := svc.Create(ctx, model.CreateIntegrationInput{Name: "Contoso", TenantID: creds.TenantID, ClientID: creds.ClientID,
		ClientSecret: creds.ClientSecret, GraphBaseURL: &graphURL, LoginBaseURL: &loginURL})
	require.NoError(t, err)
	require.Equal(t, integration.DriftActionCORRECT, in.DriftAction, "CORRECT by default")
	in, _, err = svc.Authorize(ctx, in.ID)
	require.NoError(t, err)

	tasks := func() []jobs.ReconcileUser {
		rows, err := client.Outbox.Query().Where(outbox.DispatchedAtIsNil(), outbox.Kind(jobs.KindReconcileUser)).All(ctx)
		require.NoError(t, err)
		var out []jobs.ReconcileUser
		for _, r := range rows {
			var p jobs.ReconcileUser
			require.NoError(t, json.Unmarshal(r.Payload, &p))
			out = append(out, p)
			require.NoError(t, client.Outbox.UpdateOneID(r.ID).SetDispatchedAt(time.Now()).Exec(ctx))
		}
		return out
	}
	u, err := directory.New(client).CreateUser(ctx, ent.CreateUserInput{Username: "ann", Email: "ann@contoso.com"})
	require.NoError(t, err)
	_, _, err = svc.BindUsers(ctx, in.ID, []pulid.ID{u.ID}, ForceTakeover(true))
	require.NoError(t, err)
	ts := tasks()
	require.Len(t, ts, 1)
	require.True(t, ts[0].ForceTakeover)
	require.False(t, ts[0].ReleaseOwnership)

	_, _, err = svc.UnbindUsers(ctx, in.ID, []pulid.ID{u.ID}, ReleaseOwnership(true))
	require.NoError(t, err)
	ts = tasks()
	require.Len(t, ts, 1)
	require.True(t, ts[0].ReleaseOwnership)
	require.False(t, ts[0].ForceTakeover)

	_, _, err = svc.BindUsers(ctx, in.ID, []pulid.ID{u.ID})
	require.NoError(t, err)
	ts = tasks()
	require.Len(t, ts, 1)
	require.False(t, ts[0].ForceTakeover, "off unless asked")

	report := integration.DriftActionREPORT
	in, job, err := svc.Update(ctx, in.ID, model.UpdateIntegrationInput{DriftAction: &report})
	require.NoError(t, err)
	require.Nil(t, job)
	require.Equal(t, integration.DriftActionREPORT, in.DriftAction)
}

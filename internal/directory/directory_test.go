package directory_test

import (
	"context"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/testdb"
)

func setup(t *testing.T) (*ent.Client, *directory.Service, context.Context, *ent.Organization) {
	t.Helper()
	db := testdb.New(t, dbmigrate.Migrator{})
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	svc := directory.New(client)
	org, err := svc.CreateOrganization(auth.SystemContext(context.Background()), "acme")
	require.NoError(t, err)
	ctx := auth.WithViewer(context.Background(), auth.Viewer{OrgID: org.ID, Role: auth.RoleAdmin})
	return client, svc, ctx, org
}

func codeOf(err error) gqlerr.Code { return gqlerr.Translate(err).Code }

// O3: the seat limit refuses the user beyond it, and only that one.
func TestUserLimit(t *testing.T) {
	t.Parallel()
	client, svc, ctx, org := setup(t)
	_, err := svc.UpdateOrganization(ctx, ent.UpdateOrganizationInput{UserLimit: ptr(2)})
	require.NoError(t, err)
	for _, name := range []string{"a", "b"} {
		_, err := svc.CreateUser(ctx, ent.CreateUserInput{Username: name, Email: name + "@example.com"})
		require.NoError(t, err)
	}
	_, err = svc.CreateUser(ctx, ent.CreateUserInput{Username: "c", Email: "c@example.com"})
	require.Equal(t, gqlerr.Conflict, codeOf(err))
	n, err := client.User.Query().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, err = svc.UpdateOrganization(ctx, ent.UpdateOrganizationInput{ClearUserLimit: true})
	require.NoError(t, err)
	_, err = svc.CreateUser(ctx, ent.CreateUserInput{Username: "c", Email: "c@example.com"})
	require.NoError(t, err)
	_, err = svc.UpdateOrganization(ctx, ent.UpdateOrganizationInput{UserLimit: ptr(0)})
	require.Equal(t, gqlerr.BadUserInput, codeOf(err))
	require.Equal(t, "userLimit", gqlerr.Translate(err).Field)
	_ = org
}

// Without a request transaction the service opens its own: a failing step
// rolls back the whole operation.
func TestOwnTransactionRollsBack(t *testing.T) {
	t.Parallel()
	client, svc, ctx, _ := setup(t)
	u, err := svc.CreateUser(ctx, ent.CreateUserInput{Username: "a", Email: "a@example.com"})
	require.NoError(t, err)
	g, err := svc.CreateGroup(ctx, ent.CreateUserGroupInput{Name: "g"})
	require.NoError(t, err)
	_, _, err = svc.AddGroupMembers(ctx, g.ID, []pulid.ID{u.ID, "USmissing"})
	require.Equal(t, gqlerr.NotFound, codeOf(err))
	n, err := g.QueryMembers().Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_ = client
}

// The system context (CLI, worker) names the organization explicitly.
func TestSystemContextWritesNeedAnOrganization(t *testing.T) {
	t.Parallel()
	_, svc, _, org := setup(t)
	sys := auth.SystemContext(context.Background())
	_, err := svc.CreateUser(sys, ent.CreateUserInput{Username: "a", Email: "a@example.com"})
	require.Error(t, err, "no organization to take it from")
	found, err := svc.OrganizationByName(sys, "acme")
	require.NoError(t, err)
	require.Equal(t, org.ID, found.ID)
	_, err = svc.OrganizationByName(sys, "nope")
	require.Equal(t, gqlerr.NotFound, codeOf(err))
}

func ptr[T any](v T) *T { return &v }

package connect_test

import (
	"context"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/testdb"
)

// B1: a user is connected to an integration bound to it directly or to a
// group it is a member of; Integrations keeps the authorized ones, oldest
// first, and nothing of another user or organization leaks in. The
// predicate behind all three readers is hand-written SQL (issue 12), so
// each way of being bound is checked here, one at a time.
func TestConnectedDirectlyOrThroughGroups(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, dbmigrate.Migrator{})
	c := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	ctx := auth.SystemContext(context.Background())
	dir := directory.New(c)
	org, err := dir.CreateOrganization(ctx, "acme")
	require.NoError(t, err)
	other, err := dir.CreateOrganization(ctx, "other")
	require.NoError(t, err)

	newIn := func(org pulid.ID, name string, status integration.Status) *ent.Integration {
		in, err := c.Integration.Create().SetOrganizationID(org).SetName(name).SetNameFolded(name).
			SetTenantID(name + ".onmicrosoft.com").SetClientID("app").SetClientSecretSealed("x").
			SetAttributeMappings(mapping.Default()).SetStatus(status).Save(ctx)
		require.NoError(t, err)
		return in
	}
	newUser := func(org pulid.ID, name string) *ent.User {
		u, err := c.User.Create().SetOrganizationID(org).SetUsername(name).SetEmail(name + "@example.com").Save(ctx)
		require.NoError(t, err)
		return u
	}
	direct := newIn(org.ID, "direct", integration.StatusAUTHORIZED)
	viaGroup := newIn(org.ID, "via-group", integration.StatusAUTHORIZED)
	both := newIn(org.ID, "both", integration.StatusAUTHORIZED)
	pending := newIn(org.ID, "pending", integration.StatusUNAUTHORIZED)
	unrelated := newIn(org.ID, "unrelated", integration.StatusAUTHORIZED)
	foreign := newIn(other.ID, "foreign", integration.StatusAUTHORIZED)

	u, bystander := newUser(org.ID, "u"), newUser(org.ID, "bystander")
	stranger := newUser(other.ID, "stranger")
	g, err := c.UserGroup.Create().SetOrganizationID(org.ID).SetName("staff").SetNameFolded("staff").AddMembers(u).Save(ctx)
	require.NoError(t, err)
	others, err := c.UserGroup.Create().SetOrganizationID(org.ID).SetName("others").SetNameFolded("others").AddMembers(bystander).Save(ctx)
	require.NoError(t, err)
	og, err := c.UserGroup.Create().SetOrganizationID(other.ID).SetName("staff").SetNameFolded("staff").AddMembers(stranger).Save(ctx)
	require.NoError(t, err)

	for _, in := range []*ent.Integration{direct, both, pending} {
		require.NoError(t, c.UserBinding.Create().SetOrganizationID(org.ID).SetIntegrationID(in.ID).SetUserID(u.ID).Exec(ctx))
	}
	for _, in := range []*ent.Integration{viaGroup, both} {
		require.NoError(t, c.GroupBinding.Create().SetOrganizationID(org.ID).SetIntegrationID(in.ID).SetGroupID(g.ID).Exec(ctx))
	}
	require.NoError(t, c.GroupBinding.Create().SetOrganizationID(org.ID).SetIntegrationID(unrelated.ID).SetGroupID(others.ID).Exec(ctx))
	require.NoError(t, c.GroupBinding.Create().SetOrganizationID(other.ID).SetIntegrationID(foreign.ID).SetGroupID(og.ID).Exec(ctx))

	ins, err := connect.Integrations(ctx, c, u.ID)
	require.NoError(t, err)
	require.Equal(t, []pulid.ID{direct.ID, viaGroup.ID, both.ID}, ids(ins), "authorized, oldest first, each once")

	for in, want := range map[*ent.Integration]bool{direct: true, viaGroup: true, both: true, pending: true, unrelated: false, foreign: false} {
		got, err := connect.Connected(ctx, c, u.ID, in.ID)
		require.NoError(t, err)
		require.Equal(t, want, got, in.Name)
	}

	bs, err := connect.UserBindings(ctx, c, u.ID)
	require.NoError(t, err)
	require.Len(t, bs, 4, "every status")
	byName := map[string]connect.Binding{}
	for _, b := range bs {
		byName[b.Integration.Name] = b
	}
	require.True(t, byName["direct"].Direct)
	require.Empty(t, byName["direct"].ViaGroups)
	require.False(t, byName["via-group"].Direct)
	require.Len(t, byName["via-group"].ViaGroups, 1)
	require.True(t, byName["both"].Direct)
	require.Len(t, byName["both"].ViaGroups, 1)
	require.True(t, byName["pending"].Direct)

	// The reconcile's one-statement read: the integration asked for, in any
	// status, and the same list as Integrations.
	for _, in := range []*ent.Integration{direct, viaGroup, both, pending, unrelated} {
		got, conn, err := connect.IntegrationAndConnected(ctx, c, org.ID, in.ID, u.ID)
		require.NoError(t, err)
		require.NotNil(t, got, in.Name)
		require.Equal(t, in.ID, got.ID)
		require.Equal(t, in.AttributeMappings, got.AttributeMappings)
		require.Equal(t, ids(ins), ids(conn), in.Name)
	}
	got, conn, err := connect.IntegrationAndConnected(ctx, c, org.ID, foreign.ID, u.ID)
	require.NoError(t, err)
	require.Nil(t, got, "another organization's integration is not found")
	require.Equal(t, ids(ins), ids(conn))
	got, conn, err = connect.IntegrationAndConnected(ctx, c, other.ID, foreign.ID, bystander.ID)
	require.NoError(t, err)
	require.Equal(t, foreign.ID, got.ID)
	require.Equal(t, []pulid.ID{unrelated.ID}, ids(conn), "the bystander's own group")

	none, err := connect.Integrations(ctx, c, newUser(org.ID, "unbound").ID)
	require.NoError(t, err)
	require.Empty(t, none)
}

func ids(ins []*ent.Integration) []pulid.ID {
	out := make([]pulid.ID, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

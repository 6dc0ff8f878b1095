package auth_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/privacy"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/testdb"
)

func newClient(t *testing.T) *ent.Client {
	db := testdb.New(t, dbmigrate.Migrator{})
	return ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
}

func TestAPIKeyIsShownOnceAndStoredHashed(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(client).CreateOrganization(ctx, "acme")
	require.NoError(t, err)

	key, k, err := auth.CreateAPIKey(ctx, client, org.ID, "ci", auth.RoleReadOnly)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key, auth.KeyPrefix))
	require.Len(t, key, len(auth.KeyPrefix)+43, "32 random bytes in base64url")
	sum := sha256.Sum256([]byte(key))
	require.Equal(t, sum[:], k.KeyHash)
	require.True(t, strings.HasPrefix(key, k.KeyPrefix))
	require.Less(t, len(k.KeyPrefix), 16)

	other, _, err := auth.CreateAPIKey(ctx, client, org.ID, "ci", auth.RoleAdmin)
	require.NoError(t, err)
	require.NotEqual(t, key, other)

	// Nothing in the row contains the key itself.
	var row string
	rows, err := client.QueryContext(ctx, "SELECT row_to_json(api_keys)::text FROM api_keys WHERE id = $1", string(k.ID))
	require.NoError(t, err)
	for rows.Next() {
		require.NoError(t, rows.Scan(&row))
	}
	require.NoError(t, rows.Close())
	require.NotEmpty(t, row)
	require.NotContains(t, row, key[len(auth.KeyPrefix):])

	v, err := auth.Authenticate(context.Background(), client, key)
	require.NoError(t, err)
	require.Equal(t, auth.Viewer{OrgID: org.ID, KeyID: k.ID, Role: auth.RoleReadOnly}, v)
	used, err := client.APIKey.Get(ctx, k.ID)
	require.NoError(t, err)
	require.NotNil(t, used.LastUsedAt)

	for _, bad := range []string{"", "dsk_", key + "A", strings.ToUpper(key), key[:len(key)-1]} {
		_, err := auth.Authenticate(context.Background(), client, bad)
		require.ErrorIs(t, err, auth.ErrInvalidKey, bad)
	}
}

// Privacy is default-deny: without a viewer nothing is readable or writable;
// the system context reads everything.
func TestPrivacyDeniesWithoutViewer(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	sys := auth.SystemContext(context.Background())
	org, err := directory.New(client).CreateOrganization(sys, "acme")
	require.NoError(t, err)
	_, err = client.User.Create().SetOrganizationID(org.ID).SetUsername("a").SetEmail("a@example.com").Save(sys)
	require.NoError(t, err)

	bg := context.Background()
	_, err = client.User.Query().All(bg)
	require.ErrorIs(t, err, privacy.Deny)
	_, err = client.Organization.Query().All(bg)
	require.ErrorIs(t, err, privacy.Deny)
	_, err = client.User.Create().SetOrganizationID(org.ID).SetUsername("b").SetEmail("b@example.com").Save(bg)
	require.ErrorIs(t, err, privacy.Deny)

	n, err := client.User.Query().Count(sys)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// A viewer cannot create rows for another organization, even by naming it.
	other, err := directory.New(client).CreateOrganization(sys, "other")
	require.NoError(t, err)
	vctx := auth.WithViewer(bg, auth.Viewer{OrgID: org.ID, Role: auth.RoleAdmin})
	_, err = client.User.Create().SetOrganizationID(other.ID).SetUsername("c").SetEmail("c@example.com").Save(vctx)
	require.Error(t, err)
	// Nor create organizations.
	_, err = client.Organization.Create().SetName("mine").Save(vctx)
	require.ErrorIs(t, err, privacy.Deny)
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]auth.Role{"admin": auth.RoleAdmin, "ADMIN": auth.RoleAdmin, "readonly": auth.RoleReadOnly, "read-only": auth.RoleReadOnly} {
		got, err := auth.ParseRole(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := auth.ParseRole("root")
	require.Error(t, err)
}

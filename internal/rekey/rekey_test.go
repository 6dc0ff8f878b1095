package rekey_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	_ "github.com/dirsync/dirsync/ent/runtime"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/rekey"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/testdb"
)

func keyring(t *testing.T, current string, ids ...string) *secrets.Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		keys[id] = bytes.Repeat([]byte(id[len(id)-1:]), 32)
	}
	k, err := secrets.NewKeyring(current, keys)
	require.NoError(t, err)
	return k
}

// integration stores an integration whose client secret is sealed by k.
func integration(t *testing.T, c *ent.Client, org pulid.ID, k *secrets.Keyring, name, secret string) pulid.ID {
	t.Helper()
	ctx := auth.SystemContext(context.Background())
	in, err := c.Integration.Create().SetOrganizationID(org).SetName(name).SetNameFolded(name).
		SetTenantID("contoso.onmicrosoft.com").SetClientID("app").SetClientSecretSealed("pending").SetAttributeMappings(mapping.Default()).Save(ctx)
	require.NoError(t, err)
	sealed, err := k.Seal([]byte(secret), []byte(in.ID))
	require.NoError(t, err)
	require.NoError(t, c.Integration.UpdateOne(in).SetClientSecretSealed(sealed).Exec(ctx))
	return in.ID
}

func open(t *testing.T, c *ent.Client, k *secrets.Keyring, id pulid.ID) (keyID, secret string) {
	t.Helper()
	in, err := c.Integration.Get(auth.SystemContext(context.Background()), id)
	require.NoError(t, err)
	plain, err := k.Open(in.ClientSecretSealed, []byte(id))
	require.NoError(t, err)
	return secrets.KeyID(in.ClientSecretSealed), string(plain)
}

// Rotation round trip with two keys: values sealed under k1, rotation with
// DIRSYNC_SECRET_KEYS=k2,k1 re-seals them under k2 and a rerun changes
// nothing; afterwards k1 can go (a keyring of k2 alone opens everything),
// while a keyring without k2 names the missing key.
func TestRotateRoundTripWithTwoKeys(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, dbmigrate.Migrator{})
	c := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	ctx := context.Background()
	o, err := directory.New(c).CreateOrganization(auth.SystemContext(ctx), "acme")
	require.NoError(t, err)

	old := keyring(t, "k1", "k1")
	a := integration(t, c, o.ID, old, "a", "secret-a")
	b := integration(t, c, o.ID, old, "b", "secret-b")

	both := keyring(t, "k2", "k1", "k2")
	// A value written under the new key before the rotation runs.
	fresh := integration(t, c, o.ID, both, "c", "secret-c")

	r, err := rekey.Rotate(ctx, db, both)
	require.NoError(t, err)
	require.Equal(t, 2, r.Resealed)
	require.Equal(t, 1, r.Current)

	onlyNew := keyring(t, "k2", "k2")
	for id, want := range map[pulid.ID]string{a: "secret-a", b: "secret-b", fresh: "secret-c"} {
		kid, got := open(t, c, onlyNew, id)
		require.Equal(t, "k2", kid)
		require.Equal(t, want, got)
	}

	r, err = rekey.Rotate(ctx, db, both)
	require.NoError(t, err)
	require.Equal(t, 0, r.Resealed, "idempotent")
	require.Equal(t, 3, r.Current)

	// Rotating back to k1 with a keyring that lacks k2: a clear error naming it.
	_, err = rekey.Rotate(ctx, db, keyring(t, "k1", "k1"))
	var unknown *secrets.UnknownKeyError
	require.True(t, errors.As(err, &unknown), "%v", err)
	require.Equal(t, "k2", unknown.ID)
	require.Contains(t, err.Error(), `"k2"`)
	require.NotContains(t, err.Error(), "secret-")
}

// Every sealed column of the schema is rotated: a new *_sealed field must be
// added to rekey.Columns.
func TestEverySealedColumnIsListed(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range rekey.Columns {
		listed[c.Column] = true
	}
	entries, err := os.ReadDir("../../ent/schema")
	require.NoError(t, err)
	re := regexp.MustCompile(`field\.String\("([a-z_]+_sealed)"\)`)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		src, err := os.ReadFile("../../ent/schema/" + e.Name())
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			require.True(t, listed[m[1]], "%s (%s) is sealed but not in rekey.Columns", m[1], e.Name())
		}
	}
}

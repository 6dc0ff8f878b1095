package testdb

import (
	"context"
	"database/sql"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestHashFSChangesWithAnyFile(t *testing.T) {
	base := fstest.MapFS{
		"001_init.sql":  {Data: []byte("CREATE TABLE a (id int);")},
		"002_more.sql":  {Data: []byte("CREATE TABLE b (id int);")},
		"sub/notes.txt": {Data: []byte("x")},
	}
	h0, err := HashFS(base)
	require.NoError(t, err)
	again, err := HashFS(base)
	require.NoError(t, err)
	require.Equal(t, h0, again, "stable for the same files")

	variants := map[string]fstest.MapFS{
		"edited":  {"001_init.sql": {Data: []byte("CREATE TABLE a (id bigint);")}, "002_more.sql": base["002_more.sql"], "sub/notes.txt": base["sub/notes.txt"]},
		"renamed": {"001_init.sql": base["001_init.sql"], "003_more.sql": base["002_more.sql"], "sub/notes.txt": base["sub/notes.txt"]},
		"added":   {"001_init.sql": base["001_init.sql"], "002_more.sql": base["002_more.sql"], "sub/notes.txt": base["sub/notes.txt"], "004.sql": {}},
		"removed": {"001_init.sql": base["001_init.sql"], "002_more.sql": base["002_more.sql"]},
	}
	for name, fsys := range variants {
		h, err := HashFS(fsys)
		require.NoError(t, err)
		require.NotEqual(t, h0, h, name)
	}
}

func TestFSMigrator(t *testing.T) {
	t.Parallel()
	files := fstest.MapFS{"001.sql": {Data: []byte("CREATE TABLE fs_items (id int); -- " + randomHex(6))}}
	m := FSMigrator{FS: files, Apply: func(ctx context.Context, db *sql.DB) error {
		b, err := files.ReadFile("001.sql")
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, string(b))
		return err
	}}
	t.Cleanup(func() { require.NoError(t, dropTemplateOf(m)) })

	db := New(t, m)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM fs_items").Scan(&n))
}

package ent_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates ent, schema/ent.graphqls and the
// gqlgen executor in a copy of the module and fails if anything differs from
// the files in the tree: someone edited the ent schema or the SDL without
// running `go generate ./ent`, or edited generated code by hand.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates code (~10 s)")
	}
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := copyTree(root, tmp); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "generate", "./ent")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go generate: %v\n%s", err, out)
	}
	for _, dir := range []string{"ent", "graph", "schema"} {
		err := filepath.WalkDir(filepath.Join(tmp, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(tmp, path)
			want, err := os.ReadFile(filepath.Join(root, rel))
			if err != nil {
				t.Errorf("%s: generated but not in the tree", rel)
				return nil
			}
			got, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.Equal(want, got) {
				t.Errorf("%s: differs from a fresh `go generate ./ent`", rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies the module's Go sources and generator inputs (not .git,
// not build output).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "bin" || d.Name() == "tmp" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dirsync/dirsync/internal/rekey"
)

// runSecrets is `dirsync secrets rotate`: see docs/operators.md, key rotation.
func runSecrets(ctx context.Context, args []string, out io.Writer) error {
	if len(args) != 1 || args[0] != "rotate" {
		return errors.New("usage: dirsync secrets rotate")
	}
	a, err := open(ctx, true)
	if err != nil {
		return err
	}
	defer a.Close()
	r, err := rekey.Rotate(ctx, a.DB, a.Keyring)
	fmt.Fprintf(out, "re-sealed %d value(s) under key %q; %d already under it\n", r.Resealed, a.Keyring.CurrentKeyID(), r.Current)
	return err
}

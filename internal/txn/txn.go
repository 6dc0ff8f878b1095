// Package txn runs domain writes in a transaction: the GraphQL request's one
// (entgql.Transactioner) when there is one, so a mutation and the jobs it starts
// commit together, else its own, so the CLI, dev and the worker get the same
// all-or-nothing behaviour.
package txn

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
)

// Run calls fn with a transactional client: the one in ctx if any, else a new
// transaction committed when fn succeeds and rolled back when it fails.
func Run(ctx context.Context, client *ent.Client, fn func(ctx context.Context, c *ent.Client) error) error {
	if tx := ent.TxFromContext(ctx); tx != nil {
		return fn(ctx, tx.Client())
	}
	tx, err := client.Tx(ctx)
	if err != nil {
		return fmt.Errorf("txn: begin: %w", err)
	}
	ctx = ent.NewTxContext(ctx, tx)
	ctx = ent.NewContext(ctx, tx.Client())
	if err := fn(ctx, tx.Client()); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			return fmt.Errorf("%w (rollback: %w)", err, rerr)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("txn: commit: %w", err)
	}
	return nil
}

// Package rekey re-seals every stored secret under the keyring's current key
// (`dirsync secrets rotate`), so an old key can then be removed from
// DIRSYNC_SECRET_KEYS. It is idempotent and safe to rerun or interrupt: each
// value is rewritten alone, only if it still holds what was read, and a value
// already under the current key is left as it is.
package rekey

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/passwords"

	"github.com/dirsync/dirsync/internal/secrets"
)

// Column is one place sealed values are stored. A value is opened and
// sealed again with the same associated data it was sealed with
// (internal/secrets binds each value to its row): by default the row's id;
// AAD rebuilds it from the row's id and the AADColumns when a value is bound
// to more (e.g. a queued password bound to user, integration and version).
type Column struct {
	Table, IDColumn, Column string
	// AADColumns are read with each row and handed to AAD.
	AADColumns []string
	// AAD builds the associated data from the id and AADColumns' values;
	// nil means the id itself.
	AAD func(id string, cols []string) []byte
}

func (c Column) aad(id string, cols []string) []byte {
	if c.AAD == nil {
		return []byte(id)
	}
	return c.AAD(id, cols)
}

// Columns lists every sealed column. A new sealed column must be added here,
// or rotation leaves it under the old key (the test of this package checks
// that the ent schema has no other field named *_sealed).
var Columns = []Column{
	{Table: "integrations", IDColumn: "id", Column: "client_secret_sealed"},
	// Activation and reset tokens waiting for delivery, bound to their
	// notification. Queued password pushes (outbox payloads) are not listed:
	// they live seconds and are erased once pushed, so an old key is kept
	// until none is pending (docs/operators.md).
	{Table: "notifications", IDColumn: "id", Column: "secret_sealed",
		AAD: func(id string, _ []string) []byte { return passwords.NotificationAAD(pulid.ID(id)) }},
}

// Report counts what a rotation did, per table.column.
type Report struct {
	Resealed, Current int
	PerColumn         map[string]int // re-sealed values per "table.column"
}

// Rotate re-seals every value of Columns not yet under k's current key. It
// stops at the first value it cannot open (naming the key id, table and row)
// after committing what it did before: a rerun with the missing key picks up
// from there.
func Rotate(ctx context.Context, db *sql.DB, k *secrets.Keyring) (Report, error) {
	r := Report{PerColumn: map[string]int{}}
	for _, c := range Columns {
		if err := rotateColumn(ctx, db, k, c, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

func rotateColumn(ctx context.Context, db *sql.DB, k *secrets.Keyring, c Column, r *Report) error {
	// Identifiers come from Columns, never from input.
	sel := c.IDColumn + ", " + c.Column
	for _, a := range c.AADColumns {
		sel += ", COALESCE(" + a + "::text, '')"
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(
		`SELECT %s FROM %s WHERE %s IS NOT NULL AND %s <> ''`, sel, c.Table, c.Column, c.Column))
	if err != nil {
		return fmt.Errorf("rekey: reading %s.%s: %w", c.Table, c.Column, err)
	}
	type row struct {
		id, sealed string
		cols       []string
	}
	var todo []row
	for rows.Next() {
		x := row{cols: make([]string, len(c.AADColumns))}
		dst := []any{&x.id, &x.sealed}
		for i := range x.cols {
			dst = append(dst, &x.cols[i])
		}
		if err := rows.Scan(dst...); err != nil {
			_ = rows.Close()
			return fmt.Errorf("rekey: reading %s.%s: %w", c.Table, c.Column, err)
		}
		todo = append(todo, x)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("rekey: reading %s.%s: %w", c.Table, c.Column, err)
	}
	update := fmt.Sprintf(`UPDATE %s SET %s = $1 WHERE %s = $2 AND %s = $3`, c.Table, c.Column, c.IDColumn, c.Column)
	for _, x := range todo {
		out, changed, err := k.Reseal(x.sealed, c.aad(x.id, x.cols))
		if err != nil {
			return fmt.Errorf("rekey: %s %s (%s): %w", c.Table, x.id, c.Column, err)
		}
		if !changed {
			r.Current++
			continue
		}
		// Compare-and-set: a value changed meanwhile (a new client secret)
		// is already under the current key and must not be overwritten.
		if _, err := db.ExecContext(ctx, update, out, x.id, x.sealed); err != nil {
			return fmt.Errorf("rekey: writing %s %s: %w", c.Table, x.id, err)
		}
		r.Resealed++
		r.PerColumn[c.Table+"."+c.Column]++
	}
	return nil
}

// Package directory holds the domain operations on users and groups. Every
// write of the directory goes through here, inside one transaction, so the
// rules (transitions, membership across organizations, seat limit) live in one
// place and later work (the outbox rows of remote sync) is added next to the
// state change it belongs to.
//
// Tenancy is not checked here: the ent privacy policy restricts every query and
// write to the viewer's organization, so another organization's id simply is
// not found.
package directory

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/ent"
	_ "github.com/dirsync/dirsync/ent/runtime" // registers schema hooks and privacy policies
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/txn"
)

// MaxIDsPerCall bounds the ids of one membership or binding change.
const MaxIDsPerCall = 1000

// Service performs directory writes.
type Service struct {
	client *ent.Client
}

// New returns a Service that opens its own transaction when the caller's
// context carries none (CLI, worker); under the GraphQL Transactioner it joins
// the request's transaction.
func New(client *ent.Client) *Service {
	return &Service{client: client}
}

// inTx runs fn with a transactional client: the one in ctx if any, else a new
// transaction committed when fn succeeds.
func (s *Service) inTx(ctx context.Context, fn func(ctx context.Context, c *ent.Client) error) error {
	return txn.Run(ctx, s.client, fn)
}

// detach makes an entity returned by inTx usable after its transaction ended:
// entities keep the client they were loaded with, and a transaction's client
// is dead after commit. Under a request transaction they stay attached to it.
func detach[T interface{ Unwrap() T }](ctx context.Context, v T, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if ent.TxFromContext(ctx) == nil {
		return v.Unwrap(), nil
	}
	return v, nil
}

// detachJob is detach for a job that may be nil (no remote work).
func detachJob(ctx context.Context, j *ent.Job) *ent.Job {
	if j != nil && ent.TxFromContext(ctx) == nil {
		return j.Unwrap()
	}
	return j
}

// notFound turns ent's not-found into a NOT_FOUND naming the input field.
func notFound(err error, field, kind string, id pulid.ID) error {
	if ent.IsNotFound(err) {
		return &gqlerr.Error{Code: gqlerr.NotFound, Field: field, Message: fmt.Sprintf("%s %s not found", kind, id), Err: err}
	}
	return err
}

// UniqueIDs returns ids without repetitions, in first-seen order, refusing more
// than MaxIDsPerCall (BAD_USER_INPUT on field). Every many-ids mutation uses it.
func UniqueIDs(field string, ids []pulid.ID) ([]pulid.ID, error) {
	if len(ids) > MaxIDsPerCall {
		return nil, gqlerr.BadInput(field, "at most %d ids per call", MaxIDsPerCall)
	}
	seen := make(map[pulid.ID]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

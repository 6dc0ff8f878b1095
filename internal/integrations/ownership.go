package integrations

import (
	"context"
	"fmt"
	"slices"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/ent/usergroup"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/ownership"
)

// BindOption adjusts a binding mutation's reconciles (docs/ownership.md).
type BindOption func(*bindOptions)

type bindOptions struct{ force, release bool }

// ForceTakeover: bind even users whose remote account another integration
// or dirsync deployment marked as its own (bindUsers/bindUserGroups force).
func ForceTakeover(on bool) BindOption { return func(o *bindOptions) { o.force = on } }

// ReleaseOwnership: remove this integration's ownership marker from the
// accounts the unbinding stops managing (unbind… releaseOwnership).
func ReleaseOwnership(on bool) BindOption { return func(o *bindOptions) { o.release = on } }

// withOwnership sets the options on the user targets of the integration
// the mutation is about (not on the users' other integrations).
func withOwnership(targets []jobs.Target, integrationID pulid.ID, opts []BindOption) {
	var o bindOptions
	for _, f := range opts {
		f(&o)
	}
	for i := range targets {
		t := &targets[i]
		if t.IntegrationID != integrationID {
			continue
		}
		t.ForceTakeover, t.ReleaseOwnership = o.force, o.release
	}
}

// withRefusedTakeovers: a bind with force also reconciles the already bound
// users (given directly, or members of the given groups) and groups whose
// takeover was refused because another owner marked the account — binding them again
// would otherwise change nothing and start nothing, leaving force no way
// to act.
func withRefusedTakeovers(ctx context.Context, c *ent.Client, integrationID pulid.ID, field string, ids, users []pulid.ID,
	extra []jobs.Target, opts []BindOption,
) ([]pulid.ID, []jobs.Target, error) {
	var o bindOptions
	for _, f := range opts {
		f(&o)
	}
	if !o.force || len(ids) == 0 {
		return users, extra, nil
	}
	if field == "groupIDs" {
		gl, err := c.RemoteLink.Query().Where(remotelink.IntegrationID(integrationID), remotelink.KindEQ(remotelink.KindGROUP),
			remotelink.GroupIDIn(ids...), remotelink.LastErrorCode(ownership.CodeOwnedElsewhere)).All(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations: reading refused group takeovers: %w", err)
		}
		for _, l := range gl {
			t := jobs.Target{IntegrationID: integrationID, GroupID: *l.GroupID, LinkID: l.ID, Group: true}
			if !slices.Contains(extra, t) {
				extra = append(extra, t)
			}
		}
	}
	q := c.User.Query().Where(user.HasLinksWith(remotelink.IntegrationID(integrationID),
		remotelink.LastErrorCode(ownership.CodeOwnedElsewhere)))
	if field == "groupIDs" {
		q = q.Where(user.HasGroupsWith(usergroup.IDIn(ids...)))
	} else {
		q = q.Where(user.IDIn(ids...))
	}
	refused, err := q.IDs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("integrations: reading refused takeovers: %w", err)
	}
	for _, id := range refused {
		if !slices.Contains(users, id) {
			users = append(users, id)
		}
	}
	return users, extra, nil
}

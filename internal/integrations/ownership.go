package integrations

import (
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
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
		if t.Group || t.IntegrationID != integrationID {
			continue
		}
		t.ForceTakeover, t.ReleaseOwnership = o.force, o.release
	}
}

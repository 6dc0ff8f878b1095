// Package driftinfo is the drift record a remote link carries (GraphQL
// RemoteDrift): a leaf package, so the ent schema can name it.
package driftinfo

import (
	"time"

	"github.com/dirsync/dirsync/ent/schema/pulid"
)

// What a drift round does with what it found (Integration.drift_action).
const (
	ActionCorrect = "CORRECT"
	ActionReport  = "REPORT"
)

// Drift is what a drift round found changed in the tenant on one linked
// object, compared with what dirsync last applied.
type Drift struct {
	// Properties are the Graph property names that differ (for a group also
	// "members"); for a deleted object just "deleted".
	Properties []string `json:"properties"`
	// DetectedAt is when the round that found it ran.
	DetectedAt time.Time `json:"detectedAt"`
	// Deleted: the object was deleted in the tenant (the link is REMOTE_DELETED).
	Deleted bool `json:"deleted"`
	// Action is what the round did: CORRECT (a job re-applies the directory's
	// values) or REPORT (only recorded).
	Action string `json:"action"`
	// JobID is the correcting job, when Action is CORRECT.
	JobID pulid.ID `json:"jobId,omitempty"`
}

// Package drift finds what was changed in an Entra tenant behind dirsync's
// back (issue 14): per integration, a periodic round of Graph delta queries
// (/users/delta, /groups/delta) resumes from the deltaLink stored on the
// integration, compares every changed linked object with what dirsync last
// applied, and records the drift on the link — then, by the integration's
// driftAction, either starts a job of forced reconciles that writes the
// directory's values again (CORRECT) or only records a remote_drift event
// (REPORT). A linked object deleted in the tenant marks its link
// REMOTE_DELETED; only a resync creates it again. See docs/drift.md.
//
// compare.go is the pure part: what to $select and what counts as drift.
package drift

import (
	"slices"
	"strings"

	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
)

// UserSelect is the $select of a users round: what a reconcile writes (the
// exported properties of table, plus the fixed ones every plan sends), so
// a change of anything else in the tenant costs no comparison.
func UserSelect(table mapping.Table) []string {
	sel := []string{"id", "userPrincipalName", "displayName", "accountEnabled", "passwordPolicies"}
	for _, r := range table {
		if !r.Export {
			continue
		}
		p, _, _ := strings.Cut(r.Property, ".")
		if !slices.Contains(sel, p) {
			sel = append(sel, p)
		}
	}
	return sel
}

// GroupSelect is the $select of a groups round: what group management
// writes, and members (members@delta).
var GroupSelect = []string{"id", "displayName", "description", "members"}

// UserDrift names the properties of a changed remote user that differ from
// what dirsync last applied, by the plan a reconcile would make now (plan)
// and the link (what was applied). ok false: the link is not settled — the
// directory changed since the last write, or a deprovisioning is pending —
// so the reconcile already queued will write anyway and nothing is drift.
func UserDrift(plan provision.Plan, appliedHash string, remoteEnabled *bool, remote map[string]any) (props []string, ok bool) {
	switch {
	case plan.Action == provision.Nothing && plan.Body != nil && plan.Hash == appliedHash:
		// Managed and in sync: every exported property must read as written.
		return provision.Drift(plan.Body, remote), true
	case plan.Action == provision.Nothing && plan.Body == nil && remoteEnabled != nil && !*remoteEnabled:
		// Deprovisioned (X1–X6): only accountEnabled is ours.
		if v, isBool := remote["accountEnabled"].(bool); isBool && v {
			return []string{"accountEnabled"}, true
		}
		return nil, true
	}
	return nil, false
}

// GroupDrift compares a changed remote group (its replays merged) with the
// link: name and description against what we applied when the directory
// has not changed since (wantHash == appliedHash), members we put in that
// were removed, and accounts of ours added that we did not put in (linked
// reports whether a remote id is a user dirsync manages in the
// integration). full: the round listed the whole membership, so a member
// of ours that is absent was removed.
func GroupDrift(g msgraph.Group, name, description, wantHash, appliedHash string, applied []string,
	linked func(id string) bool, full bool,
) []string {
	var props []string
	if g.DisplayName != "" && wantHash == appliedHash {
		// A page replaying only members carries no displayName: nothing to compare.
		if g.DisplayName != name {
			props = append(props, "displayName")
		}
		if g.Description != description {
			props = append(props, "description")
		}
	}
	ours := make(map[string]bool, len(applied))
	for _, id := range applied {
		ours[strings.ToLower(id)] = true
	}
	present := map[string]bool{}
	members := false
	for _, m := range g.MembersDelta {
		id := strings.ToLower(m.ID)
		if m.Removed != nil {
			members = members || ours[id]
			continue
		}
		present[id] = true
		members = members || !ours[id] && linked(id)
	}
	if full && !members {
		for id := range ours {
			if !present[id] {
				members = true
				break
			}
		}
	}
	if members {
		props = append(props, "members")
	}
	return props
}

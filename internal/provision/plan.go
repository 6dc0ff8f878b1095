// Package provision reconciles one user in one integration (SPEC P1–P4, X1–X4,
// D1–D5, I4): it reads the current desired state from PostgreSQL, the link of what
// we last did remotely, decides (plan.go, pure) and applies through msgraph.
// Reconciles are convergent: running one twice, late or out of order does no harm.
package provision

import (
	"maps"

	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/upn"
)

// User states (SPEC U1).
const (
	StateStaged    = "STAGED"
	StateActive    = "ACTIVE"
	StateSuspended = "SUSPENDED"
)

// Desired is the directory's side of one (user, integration), as of now.
type Desired struct {
	Exists    bool // the user row exists (X3 when false)
	Connected bool // bound directly or through a bound group (B1; X2, X4 when false)
	Owner     bool // this integration is the one the user syncs to (I4)
	Decision  upn.Decision
	State     string
	// Attributes is mapping.Table.Export of the user: the exported properties.
	Attributes  map[string]any
	DisplayName string
	// PasswordExpired: the password expired and the integration suspends on
	// expiry (X5). LockedOut: the user is locked out of the portal and the
	// integration suspends on lock-out (X6). Either keeps the account disabled
	// until a new password or the unlock; both are part of the desired state,
	// so the reconcile converges whatever order the changes come in.
	PasswordExpired bool
	LockedOut       bool
}

// Reasons a link records when X5/X6 keep the account disabled; the password
// sweep looks for them to enable the account again.
const (
	ReasonPasswordExpired = "password expired"
	ReasonLockedOut       = "locked out of the portal"
)

// Link is what we last did remotely for this (user, integration).
type Link struct {
	RemoteID      string
	UPN           string
	RemoteEnabled *bool
	TakenOver     bool
	AppliedHash   string
	// Released: the integration stopped managing the remote account (I5
	// de-authorization marks links OUT_OF_SCOPE and keeps their remote ids).
	// Until the user is connected again, it is left exactly as it is.
	Released bool
	Reason   string // the link's current status reason
}

// Action is the remote step a plan asks for.
type Action int

const (
	// Nothing remote; just record Status.
	Nothing Action = iota
	// LookupThenCreateOrTakeOver: find the remote user by UPN (P1); none → create,
	// one → take it over.
	LookupThenCreateOrTakeOver
	// Patch the linked remote object with Body (P4).
	Patch
	// Disable the linked remote account (X1–X4): accountEnabled false only.
	Disable
)

// Status values of a link (GraphQL RemoteLinkStatus).
const (
	StatusInSync     = "IN_SYNC"
	StatusPending    = "PENDING"
	StatusOutOfScope = "OUT_OF_SCOPE"
	StatusError      = "ERROR"
)

// Plan is the decision for one reconcile.
type Plan struct {
	Action Action
	// Body is the Graph PATCH/POST properties for Patch and the takeover/create
	// path, without passwordProfile (the applier adds a password on create only).
	Body map[string]any
	// Hash fingerprints Body; stored as the link's applied hash once applied.
	Hash string
	// Enable is the accountEnabled a create sends (P2 staged: false, P3 active: true).
	Enable bool
	// StatusAfter is the link status once the action succeeded.
	StatusAfter string
	Reason      string
	// DropLink: once the action succeeded the link holds nothing worth keeping
	// (never provisioned and no longer wanted, or its user is deleted and the
	// account disabled), so the applier deletes it. Dropping a deleted user's
	// link also frees the remote account for a later takeover.
	DropLink bool
}

// Decide computes the plan. It never touches a remote object the link does not
// name, so a wrong object can only be touched through a wrong UPN lookup — which the
// applier guards by exact, case-insensitive UPN comparison.
func Decide(d Desired, l Link) Plan {
	wanted := d.Exists && d.Connected && d.Owner && d.Decision.Scope == upn.InScope
	if !wanted {
		return planUnwanted(d, l)
	}
	enabled := wantEnabled(d.State, l.TakenOver)
	reason := ""
	if enabled != nil && *enabled && (d.PasswordExpired || d.LockedOut) {
		enabled = new(bool)
		reason = ReasonLockedOut
		if d.PasswordExpired {
			reason = ReasonPasswordExpired
		}
	}
	body := maps.Clone(d.Attributes)
	if body == nil {
		body = map[string]any{}
	}
	body["userPrincipalName"] = d.Decision.UPN
	if d.DisplayName != "" {
		body["displayName"] = d.DisplayName
	}
	// I7: the directory is the password-expiry authority.
	body["passwordPolicies"] = "DisablePasswordExpiration"
	if enabled != nil {
		body["accountEnabled"] = *enabled
	}
	hash := mapping.Hash(body)
	if l.RemoteID == "" {
		create := enabled != nil && *enabled
		return Plan{Action: LookupThenCreateOrTakeOver, Body: body, Hash: hash, Enable: create, StatusAfter: StatusInSync, Reason: reason}
	}
	if hash == l.AppliedHash {
		if reason == "" {
			reason = "unchanged"
		}
		return Plan{Action: Nothing, Body: body, Hash: hash, StatusAfter: StatusInSync, Reason: reason}
	}
	return Plan{Action: Patch, Body: body, Hash: hash, StatusAfter: StatusInSync, Reason: reason}
}

// wantEnabled: ACTIVE → enabled (P3, re-activation); SUSPENDED → disabled (X1);
// STAGED → disabled when we created the account (P2), untouched when we took over a
// live one: the person keeps signing in with the remote password (P2).
func wantEnabled(state string, takenOver bool) *bool {
	t, f := true, false
	switch state {
	case StateActive:
		return &t
	case StateSuspended:
		return &f
	default:
		if takenOver {
			return nil
		}
		return &f
	}
}

func planUnwanted(d Desired, l Link) Plan {
	if l.Released && l.RemoteID != "" && (!d.Exists || !d.Connected) {
		// I5: "users who are not bound again are left alone" — no X2/X3 disable.
		return Plan{Action: Nothing, StatusAfter: StatusOutOfScope, Reason: l.Reason, DropLink: !d.Exists}
	}
	status, reason := StatusInSync, "not connected"
	switch {
	case !d.Exists:
		reason = "user deleted"
	case !d.Connected:
	case !d.Owner:
		status, reason = StatusOutOfScope, "the user syncs to another integration (I4)"
	case d.Decision.Scope == upn.OutOfScope:
		status, reason = StatusOutOfScope, d.Decision.Reason
	case d.Decision.Scope == upn.Invalid:
		// A fixable per-user error (D2): the remote account, if any, is left as is.
		return Plan{Action: Nothing, StatusAfter: StatusError, Reason: d.Decision.Reason}
	}
	// X3: nobody will ever look at a deleted user's link once its account is off.
	drop := !d.Exists
	if l.RemoteID == "" {
		// Nothing remote to deprovision; keep a link only to show why it is out of scope.
		return Plan{Action: Nothing, StatusAfter: status, Reason: reason, DropLink: drop || status == StatusInSync}
	}
	if l.RemoteEnabled != nil && !*l.RemoteEnabled {
		return Plan{Action: Nothing, StatusAfter: status, Reason: reason, DropLink: drop}
	}
	return Plan{Action: Disable, StatusAfter: status, Reason: reason, DropLink: drop}
}

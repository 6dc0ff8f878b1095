package provision

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/connect"
	"github.com/dirsync/dirsync/internal/upn"
)

// DesiredOf reads the directory side of (u, in) as of now (SPEC B1, I4,
// D1–D5, A1–A2, X5, X6): what the reconcile plans from, and what the preview
// (internal/preview) and the mass-deprovision guard (internal/guard) plan
// from, so none of them can disagree. u nil: the user is deleted (X3).
// resolveErr is why the UPN is invalid (D2); dropped names exported
// properties msgraph cannot send yet.
func DesiredOf(ctx context.Context, c *ent.Client, in *ent.Integration, u *ent.User, now time.Time) (d Desired, resolveErr error, dropped []string, err error) {
	return desiredOf(ctx, c, in, u, nil, now)
}

// desiredOf is DesiredOf with the user's connected integrations
// (connect.Integrations) already read, or nil to read them.
func desiredOf(ctx context.Context, c *ent.Client, in *ent.Integration, u *ent.User, ins []*ent.Integration, now time.Time) (d Desired, resolveErr error, dropped []string, err error) {
	if u == nil {
		return Desired{}, nil, nil, nil
	}
	d = Desired{Exists: true, State: string(u.State), DisplayName: DisplayName(u)}
	// The authorized integrations the user is connected to. For an
	// authorized integration (every reconcile) being among them is being
	// connected: one query where Connected and Integrations took two
	// (issue 12). A preview may plan for one not authorized yet.
	if ins == nil {
		if ins, err = connect.Integrations(ctx, c, u.ID); err != nil {
			return d, nil, nil, err
		}
	}
	if in.Status == integration.StatusAUTHORIZED {
		d.Connected = slices.ContainsFunc(ins, func(x *ent.Integration) bool { return x.ID == in.ID })
	} else if d.Connected, err = connect.Connected(ctx, c, u.ID, in.ID); err != nil {
		return d, nil, nil, fmt.Errorf("provision: connected: %w", err)
	}
	if d.Connected {
		cands := make([]OwnerCandidate, len(ins))
		for i, x := range ins {
			cands[i] = OwnerCandidate{ID: string(x.ID), Rules: Rules(x), Email: MappedEmail(u, x)}
		}
		owner, _ := Owner(cands)
		d.Owner = owner == string(in.ID)
	}
	d.PasswordExpired = in.SuspendOnPasswordExpiry && u.PasswordExpiresAt != nil && !u.PasswordExpiresAt.After(now)
	d.LockedOut = in.SuspendOnLockout && u.LockedUntil != nil && u.LockedUntil.After(now)
	d.Decision, resolveErr = upn.Resolve(Rules(in), MappedEmail(u, in))
	d.Attributes, dropped = Sendable(Table(in).Export(Attributes(u)))
	return d, resolveErr, dropped, nil
}

// Stored is the plan a reconcile of one (user or orphan link, integration)
// would start from, computed from the database alone (no Graph call).
type Stored struct {
	Desired    Desired
	Link       Link
	Plan       Plan
	ResolveErr error
	// ErrorCode names a StatusError plan's cause (D2), as the link would record it.
	ErrorCode string
}

// PlanStored plans (u, in) with link as the link row (nil: never linked) the
// way the reconcile does before it calls Graph. Deleted user: u nil, link set.
func PlanStored(ctx context.Context, c *ent.Client, in *ent.Integration, u *ent.User, link *ent.RemoteLink, now time.Time) (Stored, error) {
	d, resolveErr, _, err := DesiredOf(ctx, c, in, u, now)
	if err != nil {
		return Stored{}, err
	}
	l := linkStateOf(link).plan()
	p := Decide(d, l)
	s := Stored{Desired: d, Link: l, Plan: p, ResolveErr: resolveErr}
	if p.StatusAfter == StatusError {
		s.ErrorCode = invalidCode(resolveErr)
	}
	return s, nil
}

// IsDisable reports whether applying p would take access away: a Disable, or
// a Patch that sets accountEnabled false on an account not known to be
// disabled already (X1, X5, X6), exactly the cases the applier records as
// user_deprovision.
func IsDisable(p Plan, l Link) bool {
	switch p.Action {
	case Disable:
		return true
	case Patch:
		enable, ok := p.Body["accountEnabled"].(bool)
		return ok && !enable && (l.RemoteEnabled == nil || *l.RemoteEnabled)
	}
	return false
}

// Guard is the mass-deprovision guard the reconcile consults before a job's
// item disables an account (internal/guard). It runs on the reconcile's
// transaction.
type Guard interface {
	Admit(ctx context.Context, c *ent.Client, in *ent.Integration, t GuardTask) (Verdict, error)
}

// GuardTask names the item asking.
type GuardTask struct {
	OrgID, JobID, ItemID pulid.ID
}

// Verdict is the guard's answer.
type Verdict int

const (
	// Proceed: disable now.
	Proceed Verdict = iota
	// Hold: the guard moved the item to AWAITING_APPROVAL; change nothing.
	Hold
	// Drop: an administrator cancelled the job's disables; skip this one.
	Drop
)

// ReasonDisableCancelled is the item message of a disable cancelJob dropped.
const ReasonDisableCancelled = "the disable was cancelled by an administrator (cancelJob); the remote account is left as it is"

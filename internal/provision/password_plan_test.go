package provision

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// X5, X6: an expired password or a lock-out disables an active user's
// account (or creates it disabled), with a reason the password sweep finds;
// once neither holds, the same link is enabled again. A staged takeover's
// live account is left alone, as P2 says.
func TestDecidePasswordExpiryAndLockout(t *testing.T) {
	for _, c := range []struct {
		name   string
		d      func(*Desired)
		reason string
	}{
		{"expired", func(d *Desired) { d.PasswordExpired = true }, ReasonPasswordExpired},
		{"locked", func(d *Desired) { d.LockedOut = true }, ReasonLockedOut},
		{"both", func(d *Desired) { d.PasswordExpired, d.LockedOut = true, true }, ReasonPasswordExpired},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := want(StateActive)
			c.d(&d)
			p := Decide(d, Link{})
			require.Equal(t, LookupThenCreateOrTakeOver, p.Action)
			require.False(t, p.Enable)

			enabled := Decide(want(StateActive), Link{RemoteID: "r1"})
			p = Decide(d, Link{RemoteID: "r1", RemoteEnabled: boolp(true), AppliedHash: enabled.Hash})
			require.Equal(t, Patch, p.Action)
			require.Equal(t, false, p.Body["accountEnabled"])
			require.Equal(t, c.reason, p.Reason)

			// Applied: nothing more to do, the reason stays on the link.
			again := Decide(d, Link{RemoteID: "r1", RemoteEnabled: boolp(false), AppliedHash: p.Hash})
			require.Equal(t, Nothing, again.Action)
			require.Equal(t, c.reason, again.Reason)

			// Neither holds any more: enabled again.
			back := Decide(want(StateActive), Link{RemoteID: "r1", RemoteEnabled: boolp(false), AppliedHash: p.Hash})
			require.Equal(t, Patch, back.Action)
			require.Equal(t, true, back.Body["accountEnabled"])

			// Suspension wins and carries no password reason.
			s := want(StateSuspended)
			c.d(&s)
			require.Empty(t, Decide(s, Link{RemoteID: "r1", RemoteEnabled: boolp(true)}).Reason)

			// A staged takeover keeps its live account as it is.
			st := want(StateStaged)
			c.d(&st)
			require.NotContains(t, Decide(st, Link{RemoteID: "r1", TakenOver: true}).Body, "accountEnabled")
		})
	}
}

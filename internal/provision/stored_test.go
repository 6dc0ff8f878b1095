package provision

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// IsDisable is exactly what the applier records as user_deprovision: a
// Disable, or a Patch turning off an account not known to be off already
// (X1–X6). The guard counts with it, the preview shows DISABLE with it.
func TestIsDisable(t *testing.T) {
	on, off := boolp(true), boolp(false)
	linked := func(enabled *bool) Link { return Link{RemoteID: "r1", RemoteEnabled: enabled, AppliedHash: "old"} }
	cases := []struct {
		name string
		d    Desired
		l    Link
		want bool
	}{
		{"unbound, account on (X2)", Desired{Exists: true}, linked(on), true},
		{"unbound, account state unknown", Desired{Exists: true}, linked(nil), true},
		{"unbound, account already off", Desired{Exists: true}, linked(off), false},
		{"deleted user (X3)", Desired{}, linked(on), true},
		{"never provisioned", Desired{Exists: true}, Link{}, false},
		{"suspended (X1)", want(StateSuspended), linked(on), true},
		{"suspended, already off", want(StateSuspended), linked(off), false},
		{"active: an update or enable", want(StateActive), linked(off), false},
		{"active, new: a create", want(StateActive), Link{}, false},
		{"released by de-authorization (I5)", Desired{Exists: true}, Link{RemoteID: "r1", RemoteEnabled: on, Released: true}, false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, IsDisable(Decide(c.d, c.l), c.l), c.name)
	}
}

package provision

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/upn"
)

func inScope(u string) upn.Decision { return upn.Decision{Scope: upn.InScope, UPN: u} }

func want(state string) Desired {
	return Desired{Exists: true, Connected: true, Owner: true, Decision: inScope("ann@contoso.com"), State: state,
		Attributes: map[string]any{"givenName": "Ann"}, DisplayName: "Ann Lee"}
}

func boolp(b bool) *bool { return &b }

func TestDecideProvisioning(t *testing.T) {
	// P1/P3: an active user without a link is looked up, then created enabled.
	p := Decide(want(StateActive), Link{})
	require.Equal(t, LookupThenCreateOrTakeOver, p.Action)
	require.True(t, p.Enable)
	require.Equal(t, true, p.Body["accountEnabled"])
	require.Equal(t, "ann@contoso.com", p.Body["userPrincipalName"])
	require.Equal(t, "DisablePasswordExpiration", p.Body["passwordPolicies"], "I7")

	// P2: staged → created disabled.
	p = Decide(want(StateStaged), Link{})
	require.False(t, p.Enable)
	require.Equal(t, false, p.Body["accountEnabled"])

	// P2: a staged takeover leaves the live account's accountEnabled alone.
	p = Decide(want(StateStaged), Link{RemoteID: "r1", TakenOver: true})
	require.Equal(t, Patch, p.Action)
	require.NotContains(t, p.Body, "accountEnabled")
}

func TestDecideSkipsNoOpWritesP4(t *testing.T) {
	first := Decide(want(StateActive), Link{RemoteID: "r1", AppliedHash: "old"})
	require.Equal(t, Patch, first.Action)
	again := Decide(want(StateActive), Link{RemoteID: "r1", AppliedHash: first.Hash})
	require.Equal(t, Nothing, again.Action)

	changed := want(StateActive)
	changed.Decision = inScope("ann.lee@contoso.com") // UPN change goes by remote id
	p := Decide(changed, Link{RemoteID: "r1", AppliedHash: first.Hash})
	require.Equal(t, Patch, p.Action)
	require.Equal(t, "ann.lee@contoso.com", p.Body["userPrincipalName"])
}

func TestDecideDeprovisioning(t *testing.T) {
	linked := Link{RemoteID: "r1", RemoteEnabled: boolp(true), AppliedHash: "h"}
	suspended := want(StateSuspended)
	p := Decide(suspended, linked)
	require.Equal(t, Patch, p.Action, "X1: suspension patches accountEnabled false")
	require.Equal(t, false, p.Body["accountEnabled"])

	for name, d := range map[string]Desired{
		"X2/X4 lost every connection": func() Desired { d := want(StateActive); d.Connected = false; return d }(),
		"X3 deleted":                  {Exists: false},
	} {
		t.Run(name, func(t *testing.T) {
			p := Decide(d, linked)
			require.Equal(t, Disable, p.Action)
			require.Equal(t, StatusInSync, p.StatusAfter)
			require.Equal(t, !d.Exists, p.DropLink, "only a deleted user's link goes once disabled")
			p = Decide(d, Link{RemoteID: "r1", RemoteEnabled: boolp(false)})
			require.Equal(t, Nothing, p.Action, "already disabled")
			require.Equal(t, !d.Exists, p.DropLink)
			p = Decide(d, Link{})
			require.Equal(t, Nothing, p.Action)
			require.True(t, p.DropLink, "never provisioned: nothing to keep")
		})
	}
}

func TestDecideScope(t *testing.T) {
	notOwner := want(StateActive)
	notOwner.Owner = false
	p := Decide(notOwner, Link{})
	require.Equal(t, Nothing, p.Action)
	require.Equal(t, StatusOutOfScope, p.StatusAfter, "I4")
	require.False(t, p.DropLink)

	outOfScope := want(StateActive)
	outOfScope.Decision = upn.Decision{Scope: upn.OutOfScope, Reason: "domain gmail.com is not listed"}
	p = Decide(outOfScope, Link{RemoteID: "r1", RemoteEnabled: boolp(true)})
	require.Equal(t, Disable, p.Action, "a provisioned user that falls out of scope is disabled")
	require.Equal(t, StatusOutOfScope, p.StatusAfter)

	invalid := want(StateActive)
	invalid.Decision = upn.Decision{Scope: upn.Invalid, Reason: "not verified"}
	p = Decide(invalid, Link{RemoteID: "r1", RemoteEnabled: boolp(true)})
	require.Equal(t, Nothing, p.Action, "D2 error leaves the remote account as is")
	require.Equal(t, StatusError, p.StatusAfter)
}

// I5: a link released by de-authorization is left alone until the user is
// connected again; re-binding manages the account again.
func TestDecideReleasedLink(t *testing.T) {
	released := Link{RemoteID: "r1", RemoteEnabled: boolp(true), AppliedHash: "h", Released: true, Reason: "released"}
	notConnected := want(StateActive)
	notConnected.Connected = false
	p := Decide(notConnected, released)
	require.Equal(t, Nothing, p.Action, "no X2 disable for a released account")
	require.Equal(t, StatusOutOfScope, p.StatusAfter)
	require.Equal(t, "released", p.Reason)
	require.False(t, p.DropLink)

	p = Decide(Desired{Exists: false}, released)
	require.Equal(t, Nothing, p.Action, "no X3 disable either")
	require.True(t, p.DropLink)

	p = Decide(want(StateActive), released)
	require.Equal(t, Patch, p.Action, "re-bound: managed again")
	require.Equal(t, true, p.Body["accountEnabled"])
}

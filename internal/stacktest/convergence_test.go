package stacktest_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The three kinds of integration a user whose email is …@alpha.com can meet
// (SPEC I4, D2, D4). Created in this order; ownership never needs the
// oldest-first tie-break between them.
const (
	owner = "Alpha" // tenant verifies alpha.com (D2): owns the user's domain
	deflt = "Delta" // domains [delta.com], default delta.com (D4): rewrites anyone
	unver = "Unver" // D2 in a tenant that does not verify alpha.com: a per-user error
)

type world struct {
	s  *stack
	in map[string]tenantIn
}

func newWorld(t *testing.T) *world {
	s := newStack(t)
	return &world{s: s, in: map[string]tenantIn{
		owner: s.integration(owner, []string{"alpha.com"}, nil),
		deflt: s.integration(deflt, []string{"delta.com"}, map[string]any{"domains": []string{"delta.com"}, "defaultDomain": "delta.com"}),
		unver: s.integration(unver, []string{"unver.com"}, nil),
	}}
}

// upn is what the user is called in the integration's tenant.
func upn(name, integ string) string {
	if integ == deflt {
		return name + "@delta.com"
	}
	return name + "@alpha.com"
}

// ownerOf is I4 for the bound set, whatever the order of binding: the
// integration owning the domain, else the one with a default domain, else the
// one that records the per-user error.
func ownerOf(bound map[string]bool) string {
	for _, x := range []string{owner, deflt, unver} {
		if bound[x] {
			return x
		}
	}
	return ""
}

type step struct {
	bind  bool
	integ string
}

func (st step) String() string {
	if st.bind {
		return "bind " + st.integ
	}
	return "unbind " + st.integ
}

// run applies the steps to a fresh user through the API, waiting for the jobs
// each one started, and after each step checks both tenants and both links
// against the order-independent end state.
func (w *world) run(t *testing.T, name string, pair [2]string, steps []step) {
	s := w.s
	uid := s.createUser(name, name+"@alpha.com")
	bound, everOwned := map[string]bool{}, map[string]bool{}
	for i, st := range steps {
		mut, field := "unbindUsers", "unbindUsers"
		if st.bind {
			mut, field = "bindUsers", "bindUsers"
		}
		js := s.mutateJobs(s.admin, field, fmt.Sprintf(`mutation($i: ID!, $u: [ID!]!) { %s(integrationID: $i, userIDs: $u) { jobs { %s } } }`, mut, jobFields),
			map[string]any{"i": w.in[st.integ].id, "u": []string{uid}})
		require.NotEmpty(t, js, "step %d (%s) started no job", i+1, st)
		s.wait(js...)
		bound[st.integ] = st.bind
		own := ownerOf(bound)
		if own != unver {
			everOwned[own] = true
		}
		for _, x := range pair {
			w.check(t, fmt.Sprintf("after step %d (%s), %s", i+1, st, x), uid, name, x, bound[x], own == x, everOwned[x])
		}
	}
}

func (w *world) check(t *testing.T, where, uid, name, x string, bound, owns, everOwned bool) {
	s := w.s
	in := w.in[x]
	l := s.link(uid, in.id)
	r := s.remote(in.tenantID, upn(name, x))
	switch {
	case owns && x == unver:
		if assert.NotNil(t, l, "%s: link", where) {
			assert.Equal(t, "ERROR", string(l.Status), "%s: link status (%s)", where, l.StatusReason)
			assert.Equal(t, "UNVERIFIED_DOMAIN", l.LastErrorCode, where)
		}
		assert.Nil(t, r, "%s: nothing may be created where the domain is unverified", where)
	case owns:
		if assert.NotNil(t, r, "%s: remote user", where) {
			assert.True(t, r.AccountEnabled, "%s: the owner's account is enabled", where)
		}
		if assert.NotNil(t, l, "%s: link", where) {
			assert.Equal(t, "IN_SYNC", string(l.Status), "%s: link status (%s)", where, l.StatusReason)
			assert.Empty(t, l.LastErrorCode, "%s: no stale error", where)
		}
	case bound:
		if assert.NotNil(t, l, "%s: link", where) {
			assert.Equal(t, "OUT_OF_SCOPE", string(l.Status), "%s: link status (%s, %s)", where, l.StatusReason, l.LastErrorCode)
			assert.Empty(t, l.LastErrorCode, "%s: no stale error", where)
		}
		fallthrough
	default:
		if everOwned {
			require.NotNil(t, r, "%s: an account we created is disabled, never deleted", where)
		}
		if r != nil {
			assert.False(t, r.AccountEnabled, "%s: only the owner's account is live", where)
		}
	}
}

// I4 must not depend on the order of binding: for every pair of the three
// kinds of integration, both binding orders end in the same state — live only
// in the owner, OUT_OF_SCOPE (and disabled, if we had created it) in the
// other — and unbinding either one afterwards hands the user to the one left.
// Before the fix a bind reconciled only the integration bound, so a user first
// provisioned by the D4 rewrite stayed live in two tenants, and a user first
// bound where its domain is unverified kept that stale ERROR.
func TestOwnershipDoesNotDependOnBindingOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pairs := [][2]string{{owner, deflt}, {owner, unver}, {deflt, unver}}
	n := 0
	for _, pair := range pairs {
		for _, order := range [][2]string{{pair[0], pair[1]}, {pair[1], pair[0]}} {
			for _, gone := range pair {
				n++
				name := fmt.Sprintf("u%d", n)
				steps := []step{{true, order[0]}, {true, order[1]}, {false, gone}}
				t.Run(fmt.Sprintf("%s_then_%s_unbind_%s", order[0], order[1], gone), func(t *testing.T) {
					t.Parallel()
					w.run(t, name, pair, steps)
				})
			}
		}
	}
}

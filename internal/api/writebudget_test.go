package api_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const writeBudgetQ = `mutation($id: ID!, $wb: WriteBudgetInput!) { updateIntegration(id: $id, input: {writeBudget: $wb}) {
	integration { writeBudget { size refillPerSecond custom } } } }`

type writeBudgetOut struct {
	Size            int
	RefillPerSecond float64
	Custom          bool
}

// Issue 12: an integration's write budget defaults to Graph's quota and can be
// set, partly changed, reset; nonsense is refused and changes nothing.
func TestIntegrationWriteBudget(t *testing.T) {
	t.Parallel()
	s := newSimEnv(t, true)
	org := s.tenant("acme")
	creds := s.bootstrap("contoso", "contoso.com")
	in := s.createIntegration(org.admin, s.input("wb", creds, nil))

	read := func() writeBudgetOut {
		var out struct {
			Node struct{ WriteBudget writeBudgetOut }
		}
		s.must(org.admin, `query($id: ID!) { node(id: $id) { ... on Integration { writeBudget { size refillPerSecond custom } } } }`,
			map[string]any{"id": in.ID}, &out)
		return out.Node.WriteBudget
	}
	set := func(wb map[string]any) writeBudgetOut {
		var out struct {
			UpdateIntegration struct {
				Integration struct{ WriteBudget writeBudgetOut }
			}
		}
		s.must(org.admin, writeBudgetQ, map[string]any{"id": in.ID, "wb": wb}, &out)
		return out.UpdateIntegration.Integration.WriteBudget
	}
	require.Equal(t, writeBudgetOut{Size: 3000, RefillPerSecond: 20}, read(), "Graph's documented quota")
	require.Equal(t, writeBudgetOut{Size: 600, RefillPerSecond: 4, Custom: true}, set(map[string]any{"size": 600, "refillPerSecond": 4}))
	require.Equal(t, writeBudgetOut{Size: 600, RefillPerSecond: 2.5, Custom: true}, set(map[string]any{"refillPerSecond": 2.5}), "size kept")

	for _, tc := range []struct {
		wb    map[string]any
		field string
	}{
		{map[string]any{"size": 0}, "writeBudget.size"},
		{map[string]any{"size": 100001}, "writeBudget.size"},
		{map[string]any{"refillPerSecond": 0}, "writeBudget.refillPerSecond"},
		{map[string]any{"refillPerSecond": -1}, "writeBudget.refillPerSecond"},
		{map[string]any{"reset": true, "size": 5}, "writeBudget.reset"},
	} {
		s.fails(org.admin, writeBudgetQ, map[string]any{"id": in.ID, "wb": tc.wb}, "BAD_USER_INPUT", tc.field)
	}
	s.fails(org.readOnly, writeBudgetQ, map[string]any{"id": in.ID, "wb": map[string]any{"size": 10}}, "FORBIDDEN", "")
	require.Equal(t, writeBudgetOut{Size: 600, RefillPerSecond: 2.5, Custom: true}, read(), "refused inputs changed nothing")

	require.Equal(t, writeBudgetOut{Size: 3000, RefillPerSecond: 20}, set(map[string]any{"reset": true}))
}

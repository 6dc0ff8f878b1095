package provision

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDrift(t *testing.T) {
	body := map[string]any{
		"userPrincipalName": "Ann@alpha.com",
		"accountEnabled":    true,
		"department":        "Sales",
		"jobTitle":          nil,
		"businessPhones":    []string{"+1 555"},
		"employeeOrgData":   map[string]any{"costCenter": "42"},
	}
	same := map[string]any{
		"userPrincipalName": "ann@ALPHA.com", // Graph compares UPNs case-insensitively
		"accountEnabled":    true,
		"department":        "Sales",
		"jobTitle":          "", // empty and null are one value
		"businessPhones":    []any{"+1 555"},
		"employeeOrgData":   map[string]any{"costCenter": "42", "division": "not ours"},
	}
	assert.Empty(t, Drift(body, same))

	for name, tc := range map[string]struct {
		remote map[string]any
		want   []string
	}{
		"disabled":          {map[string]any{"accountEnabled": false}, []string{"accountEnabled"}},
		"attribute edited":  {map[string]any{"department": "Hacked"}, []string{"department"}},
		"cleared attribute": {map[string]any{"jobTitle": "Boss"}, []string{"jobTitle"}},
		"list edited":       {map[string]any{"businessPhones": []any{}}, []string{"businessPhones"}},
		"nested edited":     {map[string]any{"employeeOrgData": map[string]any{"costCenter": "7"}}, []string{"employeeOrgData"}},
		"nested gone":       {map[string]any{"employeeOrgData": nil}, []string{"employeeOrgData"}},
		"property left out": {map[string]any{"department": nil}, []string{"department"}},
		"upn renamed":       {map[string]any{"userPrincipalName": "other@alpha.com"}, []string{"userPrincipalName"}},
		"several, in order": {map[string]any{"department": "x", "accountEnabled": false}, []string{"accountEnabled", "department"}},
	} {
		t.Run(name, func(t *testing.T) {
			remote := map[string]any{}
			for k, v := range same {
				remote[k] = v
			}
			for k, v := range tc.remote {
				remote[k] = v
			}
			assert.Equal(t, tc.want, Drift(body, remote))
		})
	}
	assert.Equal(t, []string{"accountEnabled"}, DriftSelect(nil), "an unwanted account: only whether it is enabled")
	assert.Equal(t, []string{"a", "b", "accountEnabled"}, DriftSelect(map[string]any{"b": 1, "a": 2}))
}

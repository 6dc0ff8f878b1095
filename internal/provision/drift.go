package provision

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Drift names the properties of body (what the plan wants written) whose value
// in remote (the same properties as read from Graph) differs: changed in the
// tenant behind our back. Absent, null, "" and [] count as one "empty" value,
// since Graph leaves empty properties out of an answer; a nested object
// (employeeOrgData) is compared only on the keys body sets, so properties
// nobody mapped are not drift; userPrincipalName compares case-insensitively,
// like Graph does.
func Drift(body, remote map[string]any) []string {
	var out []string
	for k, want := range body {
		got := remote[k]
		if !sameValue(k, normalize(want), normalize(got)) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// DriftSelect is the $select that reads back what Drift compares, plus
// accountEnabled (which the plan may leave unset for a staged takeover).
func DriftSelect(body map[string]any) []string {
	sel := slices.Sorted(maps.Keys(body))
	if _, ok := body["accountEnabled"]; !ok {
		sel = append(sel, "accountEnabled")
	}
	return sel
}

func sameValue(k string, want, got any) bool {
	if k == "userPrincipalName" {
		w, _ := want.(string)
		g, _ := got.(string)
		return strings.EqualFold(w, g)
	}
	if wm, ok := want.(map[string]any); ok {
		gm, _ := got.(map[string]any)
		for nk, nv := range wm {
			if !reflect.DeepEqual(nv, normalize(gm[nk])) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, got)
}

// normalize brings a value to its JSON form (so []string and []any compare)
// and maps every empty value to nil.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	switch x := out.(type) {
	case string:
		if x == "" {
			return nil
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
	case map[string]any:
		for k, nv := range x {
			x[k] = normalize(nv)
		}
	}
	return out
}

// Package mapping is the attribute mapping table of an integration (SPEC A1–A2):
// which directory attribute feeds which Graph user property, exported
// (directory → remote) and/or imported (remote → directory). Pure: the sync layer
// turns a user into Attributes, asks Export for the Graph body, and hashes it to skip
// writes that would change nothing.
package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Rule maps one directory attribute to one Graph user property.
type Rule struct {
	Attribute string `json:"attribute"` // directory attribute (see Attributes)
	Property  string `json:"property"`  // Graph user property, dotted for nested (employeeOrgData.costCenter)
	Export    bool   `json:"export"`
	Import    bool   `json:"import"`
}

// Table is an ordered list of rules.
type Table []Rule

// Attributes are a user's directory attributes by name. An empty value means "not
// set": exported as null so Graph clears it.
type Attributes map[string]string

// Directory attribute names the sync layer fills (User fields of SPEC U1).
var DirectoryAttributes = []string{
	"firstName", "lastName", "displayName", "jobTitle", "department", "companyName",
	"employeeId", "employeeType", "costCenter", "businessPhone", "mobilePhone",
	"officeLocation", "streetAddress", "city", "state", "postalCode", "country", "usageLocation",
	"email", "alternateEmail",
}

// Graph user properties a rule may target, with their JSON shape.
var graphProperties = map[string]shape{
	"givenName": scalar, "surname": scalar, "displayName": scalar, "jobTitle": scalar,
	"department": scalar, "companyName": scalar, "employeeId": scalar, "employeeType": scalar,
	"employeeOrgData.costCenter": scalar, "employeeOrgData.division": scalar,
	"businessPhones": list, "mobilePhone": scalar, "officeLocation": scalar,
	"streetAddress": scalar, "city": scalar, "state": scalar, "postalCode": scalar,
	"country": scalar, "usageLocation": scalar, "mail": scalar, "otherMails": list,
	"preferredLanguage": scalar,
}

type shape int

const (
	scalar shape = iota
	list
)

// Default is the table a new integration starts with. mail is not exported by
// default: on a takeover it would overwrite the address Exchange already routes.
func Default() Table {
	return Table{
		{"firstName", "givenName", true, true},
		{"lastName", "surname", true, true},
		{"displayName", "displayName", true, true},
		{"jobTitle", "jobTitle", true, true},
		{"department", "department", true, true},
		{"companyName", "companyName", true, true},
		{"employeeId", "employeeId", true, true},
		{"employeeType", "employeeType", true, true},
		{"costCenter", "employeeOrgData.costCenter", true, true},
		{"businessPhone", "businessPhones", true, true},
		{"mobilePhone", "mobilePhone", true, true},
		{"officeLocation", "officeLocation", true, true},
		{"streetAddress", "streetAddress", true, true},
		{"city", "city", true, true},
		{"state", "state", true, true},
		{"postalCode", "postalCode", true, true},
		{"country", "country", true, true},
		{"usageLocation", "usageLocation", true, true},
		{"email", "mail", false, false},
		{"alternateEmail", "otherMails", false, false},
	}
}

// Pointers lists the rules by pointer, as the GraphQL layer returns them.
func (t Table) Pointers() []*Rule {
	out := make([]*Rule, len(t))
	for i := range t {
		out[i] = &t[i]
	}
	return out
}

// Validate reports every bad rule: unknown attribute or property, and a property
// exported from two attributes (the remote value would flip between them).
func (t Table) Validate() error {
	var problems []string
	exported := map[string]string{}
	for i, r := range t {
		if !slices.Contains(DirectoryAttributes, r.Attribute) {
			problems = append(problems, fmt.Sprintf("rule %d: unknown directory attribute %q", i, r.Attribute))
		}
		if _, ok := graphProperties[r.Property]; !ok {
			problems = append(problems, fmt.Sprintf("rule %d: unsupported Graph property %q", i, r.Property))
		}
		if r.Export {
			if prev, dup := exported[r.Property]; dup {
				problems = append(problems, fmt.Sprintf("rule %d: %q is already exported from %q", i, r.Property, prev))
			}
			exported[r.Property] = r.Attribute
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid attribute mapping: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Export builds the Graph JSON properties for the exported rules (A2). Unset values
// become null (scalars) or [] (lists) so a cleared directory field clears remotely.
func (t Table) Export(attrs Attributes) map[string]any {
	out := map[string]any{}
	for _, r := range t {
		if !r.Export {
			continue
		}
		v := strings.TrimSpace(attrs[r.Attribute])
		var val any
		switch graphProperties[r.Property] {
		case list:
			if v == "" {
				val = []string{}
			} else {
				val = []string{v}
			}
		default:
			if v != "" {
				val = v
			}
		}
		parent, child, nested := strings.Cut(r.Property, ".")
		if !nested {
			out[r.Property] = val
			continue
		}
		obj, _ := out[parent].(map[string]any)
		if obj == nil {
			obj = map[string]any{}
			out[parent] = obj
		}
		obj[child] = val
	}
	return out
}

// Import reads the imported rules' values from a Graph user object (M4).
func (t Table) Import(remote map[string]any) Attributes {
	out := Attributes{}
	for _, r := range t {
		if !r.Import {
			continue
		}
		var v any
		if parent, child, nested := strings.Cut(r.Property, "."); nested {
			if obj, ok := remote[parent].(map[string]any); ok {
				v = obj[child]
			}
		} else {
			v = remote[r.Property]
		}
		switch x := v.(type) {
		case string:
			out[r.Attribute] = x
		case []any:
			if len(x) > 0 {
				if s, ok := x[0].(string); ok {
					out[r.Attribute] = s
				}
			}
		}
	}
	return out
}

// Hash fingerprints a Graph body so a reconcile can skip a PATCH whose content was
// already applied. encoding/json sorts map keys, so equal bodies hash equally.
func Hash(body map[string]any) string {
	b, err := json.Marshal(body)
	if err != nil {
		// Bodies are built from strings and string slices only.
		panic(fmt.Sprintf("mapping: unmarshalable body: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

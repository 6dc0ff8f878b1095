package provision

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/upn"
)

// Attributes turns a directory user into the mapping's attribute names
// (mapping.DirectoryAttributes), the input of mapping.Table.Export.
func Attributes(u *ent.User) mapping.Attributes {
	return mapping.Attributes{
		"firstName":      u.FirstName,
		"lastName":       u.LastName,
		"displayName":    u.DisplayName,
		"jobTitle":       u.JobTitle,
		"department":     u.Department,
		"companyName":    u.CompanyName,
		"employeeId":     u.EmployeeID,
		"employeeType":   u.EmployeeType,
		"costCenter":     u.CostCenter,
		"businessPhone":  u.BusinessPhone,
		"mobilePhone":    u.MobilePhone,
		"officeLocation": u.OfficeLocation,
		"streetAddress":  u.StreetAddress,
		"city":           u.City,
		"state":          u.AddressState,
		"postalCode":     u.PostalCode,
		"country":        u.Country,
		"usageLocation":  u.UsageLocation,
		"email":          u.Email,
		"alternateEmail": u.AlternateEmail,
	}
}

// DisplayName is what Graph gets as displayName, which it requires and refuses
// to clear: the directory's display name, else first + last name, else the
// username.
func DisplayName(u *ent.User) string {
	if s := strings.TrimSpace(u.DisplayName); s != "" {
		return s
	}
	if s := strings.TrimSpace(strings.TrimSpace(u.FirstName) + " " + strings.TrimSpace(u.LastName)); s != "" {
		return s
	}
	return u.Username
}

// MappedEmail is the email D1 selects for an integration: the company email, or
// the alternate email when the integration says so. An empty alternate email is
// not replaced by the company one: the administrator chose the alternate
// address as the UPN source, so the user gets a clear per-user error instead of
// a UPN nobody asked for.
func MappedEmail(u *ent.User, in *ent.Integration) string {
	if in.EmailSource == integration.EmailSourceALTERNATE {
		return u.AlternateEmail
	}
	return u.Email
}

// Rules are an integration's domain rules for upn.Resolve.
func Rules(in *ent.Integration) upn.Rules {
	return upn.Rules{Domains: in.Domains, DefaultDomain: in.DefaultDomain, VerifiedDomains: in.VerifiedDomains}
}

// Table is the integration's attribute mapping, the shipped default when unset.
func Table(in *ent.Integration) mapping.Table {
	if len(in.AttributeMappings) == 0 {
		return mapping.Default()
	}
	return in.AttributeMappings
}

// OwnerCandidate is one integration a user is connected to, with the email that
// integration maps (D1: each integration has its own email source).
type OwnerCandidate struct {
	ID    string
	Rules upn.Rules
	Email string
}

// Owner picks the one integration the user syncs to (I4), like upn.Owner but
// with each candidate judged on its own mapped email: the first (oldest) whose
// domains contain its email's domain; else the oldest with a default domain
// (D4 rewrites anything); else the oldest. Everyone else records the user as
// out of scope.
func Owner(cands []OwnerCandidate) (string, bool) {
	if len(cands) == 0 {
		return "", false
	}
	for _, c := range cands {
		if upn.Owns(c.Rules, c.Email) {
			return c.ID, true
		}
	}
	for _, c := range cands {
		if c.Rules.DefaultDomain != "" {
			return c.ID, true
		}
	}
	return cands[0].ID, true
}

// sendable is the set of Graph properties msgraph.UserFields can carry, read
// from its JSON tags so a property added there becomes sendable here.
var sendable = func() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeFor[msgraph.UserFields]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}()

// Sendable keeps the exported attributes msgraph can send and names the others.
// The planner hashes only what is kept, so the hash fingerprints exactly what
// was written, and a property that becomes sendable later changes the hash and
// gets written then.
func Sendable(attrs map[string]any) (kept map[string]any, dropped []string) {
	kept = make(map[string]any, len(attrs))
	for k, v := range attrs {
		if sendable[k] {
			kept[k] = v
		} else {
			dropped = append(dropped, k)
		}
	}
	slices.Sort(dropped)
	return kept, dropped
}

// UserFields converts a plan body into the msgraph request. JSON nulls (a
// cleared directory field) go to Null for a PATCH and are left out of a create,
// where there is nothing to clear.
func UserFields(body map[string]any, create bool) (msgraph.UserFields, error) {
	set := make(map[string]any, len(body))
	var nulls []string
	for k, v := range body {
		if !sendable[k] {
			return msgraph.UserFields{}, fmt.Errorf("provision: property %q cannot be sent", k)
		}
		if v == nil {
			if !create {
				nulls = append(nulls, k)
			}
			continue
		}
		set[k] = v
	}
	b, err := json.Marshal(set)
	if err != nil {
		return msgraph.UserFields{}, fmt.Errorf("provision: encode body: %w", err)
	}
	var f msgraph.UserFields
	if err := json.Unmarshal(b, &f); err != nil {
		return msgraph.UserFields{}, fmt.Errorf("provision: body to UserFields: %w", err)
	}
	slices.Sort(nulls)
	f.Null = nulls
	return f, nil
}

// Password character classes. The symbols are ones Entra accepts and that need
// no escaping anywhere (JSON, shells, logs are never shown the value anyway).
const (
	pwLower   = "abcdefghijkmnopqrstuvwxyz"
	pwUpper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	pwDigits  = "23456789"
	pwSymbols = "!#%+-=?@^_~"
	pwLength  = 24
)

// NewPassword returns a random password for a created account (P2): 24
// characters from crypto/rand with every character class present (Entra wants
// three of four), and none of the given words (UPN local part, given name,
// surname) in it, which Entra refuses too. It is sent once and never stored or
// logged: the person sets their own through the portal.
func NewPassword(avoid ...string) (string, error) {
	all := pwLower + pwUpper + pwDigits + pwSymbols
	for {
		b := make([]byte, 0, pwLength)
		for _, set := range []string{pwLower, pwUpper, pwDigits, pwSymbols} {
			c, err := pick(set)
			if err != nil {
				return "", err
			}
			b = append(b, c)
		}
		for len(b) < pwLength {
			c, err := pick(all)
			if err != nil {
				return "", err
			}
			b = append(b, c)
		}
		// Fisher–Yates with crypto randomness, so the class-guaranteed
		// characters are not always in front.
		for i := len(b) - 1; i > 0; i-- {
			j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
			if err != nil {
				return "", fmt.Errorf("provision: password: %w", err)
			}
			b[i], b[j.Int64()] = b[j.Int64()], b[i]
		}
		pw := string(b)
		if !containsAny(pw, avoid) {
			return pw, nil
		}
	}
}

func pick(set string) (byte, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
	if err != nil {
		return 0, fmt.Errorf("provision: password: %w", err)
	}
	return set[n.Int64()], nil
}

func containsAny(pw string, words []string) bool {
	low := strings.ToLower(pw)
	for _, w := range words {
		if len(w) >= 3 && strings.Contains(low, strings.ToLower(w)) {
			return true
		}
	}
	return false
}

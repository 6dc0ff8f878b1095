package msgraph

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Removed is the @removed marker of a delta answer.
type Removed struct {
	Reason string `json:"reason"` // "changed" (soft-deleted, restorable) or "deleted"
}

// User is a Graph user as read. Which fields are filled depends on $select:
// without it Graph returns only its default set (GRAPH.md, "Users").
type User struct {
	ID                string   `json:"id"`
	UserPrincipalName string   `json:"userPrincipalName,omitempty"`
	DisplayName       string   `json:"displayName,omitempty"`
	GivenName         string   `json:"givenName,omitempty"`
	Surname           string   `json:"surname,omitempty"`
	Mail              string   `json:"mail,omitempty"`
	MailNickname      string   `json:"mailNickname,omitempty"`
	AccountEnabled    *bool    `json:"accountEnabled,omitempty"`
	JobTitle          string   `json:"jobTitle,omitempty"`
	Department        string   `json:"department,omitempty"`
	CompanyName       string   `json:"companyName,omitempty"`
	EmployeeID        string   `json:"employeeId,omitempty"`
	EmployeeType      string   `json:"employeeType,omitempty"`
	BusinessPhones    []string `json:"businessPhones,omitempty"`
	MobilePhone       string   `json:"mobilePhone,omitempty"`
	OfficeLocation    string   `json:"officeLocation,omitempty"`
	StreetAddress     string   `json:"streetAddress,omitempty"`
	City              string   `json:"city,omitempty"`
	State             string   `json:"state,omitempty"`
	PostalCode        string   `json:"postalCode,omitempty"`
	Country           string   `json:"country,omitempty"`
	UsageLocation     string   `json:"usageLocation,omitempty"`
	PreferredLanguage string   `json:"preferredLanguage,omitempty"`
	PasswordPolicies  string   `json:"passwordPolicies,omitempty"`
	// Removed is set only in delta answers, for users deleted or out of scope.
	Removed *Removed `json:"@removed,omitempty"`
}

// PasswordProfile is write-only in Graph. Its String and LogValue never show the
// password (W2).
type PasswordProfile struct {
	Password                      string `json:"password"`
	ForceChangePasswordNextSignIn bool   `json:"forceChangePasswordNextSignIn"`
}

func (p PasswordProfile) String() string { return "PasswordProfile{Password:<redacted>}" }

// LogValue keeps the password out of slog output.
func (p PasswordProfile) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("forceChangePasswordNextSignIn", p.ForceChangePasswordNextSignIn))
}

// Format keeps the password out of fmt's %v/%+v/%#v.
func (p PasswordProfile) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }

// UserFields is the body of POST /users and PATCH /users/{id}. Only non-nil
// fields are sent, so a PATCH changes exactly what the caller set; Null lists
// Graph property names to clear (sent as JSON null).
type UserFields struct {
	AccountEnabled    *bool            `json:"accountEnabled,omitempty"`
	DisplayName       *string          `json:"displayName,omitempty"`
	MailNickname      *string          `json:"mailNickname,omitempty"`
	UserPrincipalName *string          `json:"userPrincipalName,omitempty"`
	PasswordProfile   *PasswordProfile `json:"passwordProfile,omitempty"`
	PasswordPolicies  *string          `json:"passwordPolicies,omitempty"`
	GivenName         *string          `json:"givenName,omitempty"`
	Surname           *string          `json:"surname,omitempty"`
	Mail              *string          `json:"mail,omitempty"`
	JobTitle          *string          `json:"jobTitle,omitempty"`
	Department        *string          `json:"department,omitempty"`
	CompanyName       *string          `json:"companyName,omitempty"`
	EmployeeID        *string          `json:"employeeId,omitempty"`
	EmployeeType      *string          `json:"employeeType,omitempty"`
	BusinessPhones    *[]string        `json:"businessPhones,omitempty"`
	MobilePhone       *string          `json:"mobilePhone,omitempty"`
	OfficeLocation    *string          `json:"officeLocation,omitempty"`
	StreetAddress     *string          `json:"streetAddress,omitempty"`
	City              *string          `json:"city,omitempty"`
	State             *string          `json:"state,omitempty"`
	PostalCode        *string          `json:"postalCode,omitempty"`
	Country           *string          `json:"country,omitempty"`
	UsageLocation     *string          `json:"usageLocation,omitempty"`
	PreferredLanguage *string          `json:"preferredLanguage,omitempty"`
	OtherMails        *[]string        `json:"otherMails,omitempty"`
	// EmployeeOrgData is a map so a nested null (a cleared cost centre) is sent
	// as null, and nested properties nobody mapped are not sent at all.
	EmployeeOrgData map[string]any `json:"employeeOrgData,omitempty"`

	Null []string `json:"-"`
}

// MarshalJSON adds the Null properties to the set ones.
func (u UserFields) MarshalJSON() ([]byte, error) {
	type plain UserFields
	return withNulls(plain(u), u.Null)
}

// GroupFields is the body of PATCH /groups/{id}.
type GroupFields struct {
	DisplayName  *string `json:"displayName,omitempty"`
	Description  *string `json:"description,omitempty"`
	MailNickname *string `json:"mailNickname,omitempty"`

	Null []string `json:"-"`
}

// MarshalJSON adds the Null properties to the set ones.
func (g GroupFields) MarshalJSON() ([]byte, error) {
	type plain GroupFields
	return withNulls(plain(g), g.Null)
}

func withNulls(v any, nulls []string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(nulls) == 0 {
		return b, err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, n := range nulls {
		m[n] = json.RawMessage("null")
	}
	return json.Marshal(m)
}

// Group is a Graph group as read.
type Group struct {
	ID              string   `json:"id"`
	DisplayName     string   `json:"displayName,omitempty"`
	Description     string   `json:"description,omitempty"`
	MailNickname    string   `json:"mailNickname,omitempty"`
	MailEnabled     *bool    `json:"mailEnabled,omitempty"`
	SecurityEnabled *bool    `json:"securityEnabled,omitempty"`
	GroupTypes      []string `json:"groupTypes,omitempty"`
	// Delta only: removal marker and membership changes (with $select=members).
	Removed      *Removed      `json:"@removed,omitempty"`
	MembersDelta []MemberDelta `json:"members@delta,omitempty"`
}

// MemberDelta is one entry of members@delta; Removed is set for removals.
type MemberDelta struct {
	ODataType string   `json:"@odata.type,omitempty"`
	ID        string   `json:"id"`
	Removed   *Removed `json:"@removed,omitempty"`
}

// NewSecurityGroup is what CreateGroup needs; the client adds the fixed
// security-group properties (mailEnabled false, securityEnabled true, no groupTypes).
type NewSecurityGroup struct {
	DisplayName  string
	MailNickname string
	Description  string
}

// DirectoryObject is a group member (user, group, device, service principal).
type DirectoryObject struct {
	ODataType         string `json:"@odata.type,omitempty"` // e.g. "#microsoft.graph.user"
	ID                string `json:"id"`
	DisplayName       string `json:"displayName,omitempty"`
	UserPrincipalName string `json:"userPrincipalName,omitempty"`
}

// Domain is an entry of GET /domains.
type Domain struct {
	ID                           string   `json:"id"`
	AuthenticationType           string   `json:"authenticationType,omitempty"`
	IsDefault                    bool     `json:"isDefault"`
	IsInitial                    bool     `json:"isInitial"`
	IsVerified                   bool     `json:"isVerified"`
	IsAdminManaged               bool     `json:"isAdminManaged,omitempty"`
	PasswordValidityPeriodInDays *int     `json:"passwordValidityPeriodInDays,omitempty"`
	SupportedServices            []string `json:"supportedServices,omitempty"`
}

// Organization is the tenant (GET /organization).
type Organization struct {
	ID              string           `json:"id"`
	DisplayName     string           `json:"displayName,omitempty"`
	TenantType      string           `json:"tenantType,omitempty"`
	VerifiedDomains []VerifiedDomain `json:"verifiedDomains,omitempty"`
}

// VerifiedDomain is an entry of organization.verifiedDomains.
type VerifiedDomain struct {
	Name      string `json:"name"`
	IsDefault bool   `json:"isDefault"`
	IsInitial bool   `json:"isInitial"`
	Type      string `json:"type,omitempty"`
}

// Ptr returns a pointer to v, for the pointer fields of UserFields/GroupFields.
func Ptr[T any](v T) *T { return &v }

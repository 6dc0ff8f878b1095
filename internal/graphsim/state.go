package graphsim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Application permissions the emulator knows. An app holds any subset.
const (
	PermUserReadAll                  = "User.Read.All"
	PermUserReadWriteAll             = "User.ReadWrite.All"
	PermUserPasswordProfileReadWrite = "User-PasswordProfile.ReadWrite.All"
	PermGroupReadAll                 = "Group.Read.All"
	PermGroupReadWriteAll            = "Group.ReadWrite.All"
	PermGroupMemberReadAll           = "GroupMember.Read.All"
	PermGroupMemberReadWriteAll      = "GroupMember.ReadWrite.All"
	PermDirectoryReadAll             = "Directory.Read.All"
	PermDirectoryReadWriteAll        = "Directory.ReadWrite.All"
	PermDomainReadAll                = "Domain.Read.All"
	PermOrganizationReadAll          = "Organization.Read.All"
)

// AllPermissions is every permission dirsync needs (and a few it does not),
// as granted by Bootstrap.
var AllPermissions = []string{
	PermUserReadWriteAll, PermUserPasswordProfileReadWrite, PermGroupReadWriteAll,
	PermGroupMemberReadWriteAll, PermDirectoryReadWriteAll, PermDomainReadAll, PermOrganizationReadAll,
}

// NeverExpires is the passwordValidityPeriodInDays Entra reports for a domain
// whose passwords never expire.
const NeverExpires = 2147483647

// TenantSpec describes a tenant to create.
type TenantSpec struct {
	// Name makes the initial domain <Name>.onmicrosoft.com. Required.
	Name string `json:"name"`
	// Domains are extra verified custom domains; the first becomes the
	// tenant's default domain (else the initial domain is).
	Domains []string `json:"domains,omitempty"`
	// PasswordValidityDays is reported as passwordValidityPeriodInDays on
	// GET /domains for every domain; 0 means passwords never expire.
	PasswordValidityDays int `json:"passwordValidityDays,omitempty"`

	// ID is the tenant id (a GUID); generated when empty.
	ID string `json:"id,omitempty"`
	// UnverifiedDomains are added to the tenant but not verified.
	UnverifiedDomains []string `json:"unverifiedDomains,omitempty"`
	// DisplayName of the organization; defaults to Name.
	DisplayName string `json:"displayName,omitempty"`
}

// Tenant is the public view of a tenant.
type Tenant struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	InitialDomain string   `json:"initialDomain"`
	DisplayName   string   `json:"displayName"`
	Domains       []Domain `json:"domains"`
	Apps          []App    `json:"apps,omitempty"`
	Users         int      `json:"users"`
	Groups        int      `json:"groups"`
}

// Domain is the public view of a domain.
type Domain struct {
	Name                         string `json:"name"`
	Verified                     bool   `json:"verified"`
	Default                      bool   `json:"default"`
	Initial                      bool   `json:"initial"`
	PasswordValidityPeriodInDays int    `json:"passwordValidityPeriodInDays"`
}

// AppSpec describes an app registration (a service principal in the tenant).
type AppSpec struct {
	Name string `json:"name,omitempty"`
	// Permissions are the granted (admin-consented) application permissions.
	Permissions []string `json:"permissions"`
	// UserAdministrator: the app's service principal holds the User
	// Administrator directory role (needed, with
	// User-PasswordProfile.ReadWrite.All, to write passwordProfile of
	// existing users).
	UserAdministrator bool `json:"userAdministrator,omitempty"`

	// ClientID and ClientSecret are generated when empty.
	ClientID     string `json:"clientId,omitempty"`
	ClientSecret string `json:"clientSecret,omitempty"`
}

// App is the public view of an app registration.
type App struct {
	ClientID          string   `json:"clientId"`
	ClientSecret      string   `json:"clientSecret"`
	TenantID          string   `json:"tenantId"`
	Name              string   `json:"name"`
	Permissions       []string `json:"permissions"`
	UserAdministrator bool     `json:"userAdministrator"`
}

// Credentials are what a Graph client needs to talk to a bootstrapped tenant.
type Credentials struct {
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

type objKind int

const (
	kindUser objKind = iota
	kindGroup
)

func (k objKind) String() string {
	if k == kindGroup {
		return "group"
	}
	return "user"
}

type tenant struct {
	id, name, displayName string
	created               time.Time
	domains               []*domain
	apps                  map[string]*app
	users                 map[string]*object
	upns                  map[string]*object // lower-cased UPN → user
	groups                map[string]*object
	tombs                 map[string]*object // deleted objects, for delta
	seq                   int64              // change counter for delta
	deltas                map[string]*deltaState
}

type domain struct {
	name                         string
	verified, isDefault, initial bool
	pwdDays                      int
}

type app struct {
	tenantID, clientID, secret, displayName string
	perms                                   []string
	userAdmin                               bool
}

type memberEvent struct {
	seq     int64
	id      string
	removed bool
}

type object struct {
	kind      objKind
	id        string
	props     map[string]any
	password  string
	created   time.Time
	visibleAt time.Time
	seq       int64
	deleted   bool

	members   []string
	memberSet map[string]bool
	memberLog []memberEvent
	// ext holds the open extensions: extensionName → custom properties.
	ext map[string]map[string]any
}

func (o *object) str(p string) string {
	s, _ := o.props[p].(string)
	return s
}

func (o *object) visible(now time.Time) bool { return !now.Before(o.visibleAt) }

func (t *tenant) initialDomain() string { return t.name + ".onmicrosoft.com" }

func (t *tenant) findDomain(name string) *domain {
	for _, d := range t.domains {
		if strings.EqualFold(d.name, name) {
			return d
		}
	}
	return nil
}

// object finds a live user or group by id.
func (t *tenant) object(id string) *object {
	if o := t.users[id]; o != nil {
		return o
	}
	return t.groups[id]
}

// bury turns a deleted object (already out of its live map) into a
// tombstone for delta, after dropping its memberships.
func (t *tenant) bury(o *object, now time.Time) {
	for _, g := range t.groups {
		if g.memberSet[o.id] {
			t.removeMember(g, o.id)
		}
	}
	o.deleted = true
	o.props["deletedDateTime"] = now.UTC().Format(time.RFC3339)
	t.tombs[o.id] = o
	t.touch(o)
}

// apply writes the declared, writable properties of a PATCH body (null
// clears one; passwordProfile is kept apart) and says whether any was there.
func (o *object) apply(body map[string]any) bool {
	changed := false
	for k, v := range body {
		if _, ok := defOf(o.kind).props[k]; !ok || k == "passwordProfile" {
			continue
		}
		changed = true
		if v == nil {
			delete(o.props, k)
		} else {
			o.props[k] = normalize(v)
		}
	}
	return changed
}

// touch records a change of o for delta.
func (t *tenant) touch(o *object) {
	t.seq++
	o.seq = t.seq
}

func (t *tenant) public() Tenant {
	pt := Tenant{ID: t.id, Name: t.name, DisplayName: t.displayName, InitialDomain: t.initialDomain(),
		Users: len(t.users), Groups: len(t.groups)}
	for _, d := range t.domains {
		pt.Domains = append(pt.Domains, d.public())
	}
	for _, a := range t.apps {
		pt.Apps = append(pt.Apps, a.public())
	}
	slices.SortFunc(pt.Apps, func(a, b App) int { return strings.Compare(a.ClientID, b.ClientID) })
	return pt
}

func (d *domain) public() Domain {
	return Domain{Name: d.name, Verified: d.verified, Default: d.isDefault, Initial: d.initial,
		PasswordValidityPeriodInDays: d.pwdDays}
}

func (a *app) public() App {
	return App{TenantID: a.tenantID, ClientID: a.clientID, ClientSecret: a.secret, Name: a.displayName,
		Permissions: slices.Clone(a.perms), UserAdministrator: a.userAdmin}
}

func (a *app) has(perms ...string) bool {
	for _, p := range perms {
		if slices.Contains(a.perms, p) {
			return true
		}
	}
	return false
}

// AddTenant creates a tenant with its initial domain <Name>.onmicrosoft.com
// (verified) and the given custom domains.
func (s *Sim) AddTenant(spec TenantSpec) (Tenant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addTenantLocked(spec)
}

func (s *Sim) addTenantLocked(spec TenantSpec) (Tenant, error) {
	name := strings.ToLower(strings.TrimSpace(spec.Name))
	if name == "" || strings.ContainsAny(name, ". /@") {
		return Tenant{}, fmt.Errorf("graphsim: tenant name %q must be a single DNS label", spec.Name)
	}
	id := spec.ID
	if id == "" {
		id = s.newID()
	}
	if s.tenants[id] != nil {
		return Tenant{}, fmt.Errorf("graphsim: tenant %s already exists", id)
	}
	pwdDays := spec.PasswordValidityDays
	if pwdDays <= 0 {
		pwdDays = NeverExpires
	}
	t := &tenant{id: id, name: name, displayName: spec.DisplayName, created: s.now(),
		apps: map[string]*app{}, users: map[string]*object{}, upns: map[string]*object{},
		groups: map[string]*object{}, tombs: map[string]*object{},
		deltas: map[string]*deltaState{}}
	if t.displayName == "" {
		t.displayName = spec.Name
	}
	names := append([]string{t.initialDomain()}, spec.Domains...)
	names = append(names, spec.UnverifiedDomains...)
	for i, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" || !strings.Contains(n, ".") || strings.ContainsAny(n, " /@") {
			return Tenant{}, fmt.Errorf("graphsim: invalid domain name %q", n)
		}
		if s.tenantByDomain(n) != nil || t.findDomain(n) != nil {
			return Tenant{}, fmt.Errorf("graphsim: domain %s already belongs to a tenant", n)
		}
		d := &domain{name: n, verified: i <= len(spec.Domains), initial: i == 0, pwdDays: pwdDays,
			isDefault: len(spec.Domains) == 0 && i == 0 || len(spec.Domains) > 0 && i == 1}
		t.domains = append(t.domains, d)
	}
	s.tenants[id] = t
	return t.public(), nil
}

// AddDomain adds a custom domain to a tenant at run time.
func (s *Sim) AddDomain(tenantID, name string, verified bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return fmt.Errorf("graphsim: no tenant %s", tenantID)
	}
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || !strings.Contains(n, ".") || strings.ContainsAny(n, " /@") {
		return fmt.Errorf("graphsim: invalid domain name %q", name)
	}
	if s.tenantByDomain(n) != nil {
		return fmt.Errorf("graphsim: domain %s already belongs to a tenant", n)
	}
	t.domains = append(t.domains, &domain{name: n, verified: verified, pwdDays: t.domains[0].pwdDays})
	return nil
}

// tenantByDomain finds the tenant owning a domain name (any case).
func (s *Sim) tenantByDomain(name string) *tenant {
	for _, t := range s.tenants {
		if t.findDomain(name) != nil {
			return t
		}
	}
	return nil
}

// AddApp registers an app in a tenant, generating the client id and secret
// when the spec leaves them empty.
func (s *Sim) AddApp(tenantID string, spec AppSpec) (App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return App{}, fmt.Errorf("graphsim: no tenant %s", tenantID)
	}
	a := &app{tenantID: t.id, clientID: spec.ClientID, secret: spec.ClientSecret, displayName: spec.Name,
		perms: slices.Clone(spec.Permissions), userAdmin: spec.UserAdministrator}
	if a.clientID == "" {
		a.clientID = s.newID()
	}
	if t.apps[a.clientID] != nil {
		return App{}, fmt.Errorf("graphsim: app %s already exists in tenant %s", a.clientID, t.id)
	}
	if a.secret == "" {
		a.secret = s.newSecret()
	}
	if a.displayName == "" {
		a.displayName = "dirsync"
	}
	t.apps[a.clientID] = a
	return a.public(), nil
}

// SetAppPermissions replaces an app's granted permissions and role at run time.
func (s *Sim) SetAppPermissions(tenantID, clientID string, perms []string, userAdministrator bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil || t.apps[clientID] == nil {
		return fmt.Errorf("graphsim: no app %s in tenant %s", clientID, tenantID)
	}
	a := t.apps[clientID]
	a.perms, a.userAdmin = slices.Clone(perms), userAdministrator
	return nil
}

// Bootstrap creates tenant name with the given extra verified domains (the
// first is the default) and an app holding AllPermissions and the User
// Administrator role, and returns the credentials a client needs.
func (s *Sim) Bootstrap(name string, domains ...string) (Credentials, error) {
	t, err := s.AddTenant(TenantSpec{Name: name, Domains: domains})
	if err != nil {
		return Credentials{}, err
	}
	a, err := s.AddApp(t.ID, AppSpec{Name: "dirsync", Permissions: AllPermissions, UserAdministrator: true})
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{TenantID: t.ID, ClientID: a.ClientID, ClientSecret: a.ClientSecret}, nil
}

// Tenants returns every tenant with its domains and apps.
func (s *Sim) Tenants() []Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t.public())
	}
	slices.SortFunc(out, func(a, b Tenant) int { return strings.Compare(a.Name, b.Name) })
	return out
}

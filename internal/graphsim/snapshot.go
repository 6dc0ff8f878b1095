package graphsim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// User is a snapshot of an emulated user, for test assertions.
type User struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
	GivenName         string `json:"givenName,omitempty"`
	Surname           string `json:"surname,omitempty"`
	Mail              string `json:"mail,omitempty"`
	MailNickname      string `json:"mailNickname"`
	AccountEnabled    bool   `json:"accountEnabled"`
	PasswordPolicies  string `json:"passwordPolicies,omitempty"`
	// Password is the last password written (Graph never reads it back;
	// the emulator keeps it so tests can check a push).
	Password string `json:"password,omitempty"`
	// Visible is false while replication delay hides a new user.
	Visible bool `json:"visible"`
	// Properties holds every stored Graph property.
	Properties map[string]any `json:"properties"`
}

// Group is a snapshot of an emulated group, for test assertions.
type Group struct {
	ID              string         `json:"id"`
	DisplayName     string         `json:"displayName"`
	MailNickname    string         `json:"mailNickname"`
	Description     string         `json:"description,omitempty"`
	SecurityEnabled bool           `json:"securityEnabled"`
	MailEnabled     bool           `json:"mailEnabled"`
	Members         []string       `json:"members"`
	Visible         bool           `json:"visible"`
	Properties      map[string]any `json:"properties"`
}

// Users returns a snapshot of a tenant's users ordered by UPN (nil for an
// unknown tenant).
func (s *Sim) Users(tenantID string) []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return nil
	}
	now := s.now()
	out := make([]User, 0, len(t.users))
	for _, o := range t.users {
		b, _ := o.props["accountEnabled"].(bool)
		out = append(out, User{ID: o.id, UserPrincipalName: o.str("userPrincipalName"), DisplayName: o.str("displayName"),
			GivenName: o.str("givenName"), Surname: o.str("surname"), Mail: o.str("mail"),
			MailNickname: o.str("mailNickname"), AccountEnabled: b, PasswordPolicies: o.str("passwordPolicies"),
			Password: o.password, Visible: o.visible(now), Properties: maps.Clone(o.props)})
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.UserPrincipalName, b.UserPrincipalName) })
	return out
}

// Groups returns a snapshot of a tenant's groups with their member ids,
// ordered by display name then id (nil for an unknown tenant).
func (s *Sim) Groups(tenantID string) []Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return nil
	}
	now := s.now()
	out := make([]Group, 0, len(t.groups))
	for _, o := range t.groups {
		se, _ := o.props["securityEnabled"].(bool)
		me, _ := o.props["mailEnabled"].(bool)
		out = append(out, Group{ID: o.id, DisplayName: o.str("displayName"), MailNickname: o.str("mailNickname"),
			Description: o.str("description"), SecurityEnabled: se, MailEnabled: me,
			Members: slices.Clone(o.members), Visible: o.visible(now), Properties: maps.Clone(o.props)})
	}
	slices.SortFunc(out, func(a, b Group) int {
		if c := strings.Compare(a.DisplayName, b.DisplayName); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

var (
	seedGiven = []string{"Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger"}
	seedSur   = []string{"Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra"}
	seedJobs  = []string{"Engineer", "Analyst", "Manager", "Designer", "Accountant"}
	seedDepts = []string{"Engineering", "Finance", "Sales", "Support", "Operations"}
)

// SeedUsers adds n enabled users on the tenant's default domain
// (seed.user.<k>@<domain>, k continuing after earlier seeds), visible at
// once, with mail set as a licensed mailbox would have it.
func (s *Sim) SeedUsers(tenantID string, n int) error {
	_, err := s.seedUsers(tenantID, n)
	return err
}

func (s *Sim) seedUsers(tenantID string, n int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return nil, fmt.Errorf("graphsim: no tenant %s", tenantID)
	}
	dom := t.initialDomain()
	for _, d := range t.domains {
		if d.isDefault {
			dom = d.name
		}
	}
	now := s.now()
	ids := make([]string, 0, n)
	for k := len(t.users) + len(t.tombs); len(ids) < n; k++ {
		nick := fmt.Sprintf("seed.user.%d", k)
		upn := nick + "@" + dom
		if t.upns[upn] != nil {
			continue
		}
		given, sur := seedGiven[k%len(seedGiven)], seedSur[(k/len(seedGiven))%len(seedSur)]
		u := &object{kind: kindUser, id: s.newID(), created: now, visibleAt: now, props: map[string]any{
			"accountEnabled": true, "displayName": fmt.Sprintf("%s %s %d", given, sur, k), "givenName": given,
			"surname": sur, "mailNickname": nick, "userPrincipalName": upn, "mail": upn,
			"proxyAddresses": []string{"SMTP:" + upn}, "jobTitle": seedJobs[k%len(seedJobs)],
			"department": seedDepts[k%len(seedDepts)], "usageLocation": "US", "userType": "Member",
			"createdDateTime": now.UTC().Format(time.RFC3339), "lastPasswordChangeDateTime": now.UTC().Format(time.RFC3339),
		}, password: s.newSecret()}
		u.props["id"] = u.id
		t.users[u.id] = u
		t.upns[upn] = u
		t.touch(u)
		ids = append(ids, u.id)
	}
	return ids, nil
}

// SeedGroups adds n security groups ("Seed Group <k>"), each with up to
// membersEach existing users as members, and returns their ids.
func (s *Sim) SeedGroups(tenantID string, n, membersEach int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return nil, fmt.Errorf("graphsim: no tenant %s", tenantID)
	}
	users := slices.Sorted(maps.Keys(t.users))
	now := s.now()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		k := len(t.groups) + len(t.tombs)
		g := t.newGroup(s.newID(), now, now, map[string]any{
			"displayName": fmt.Sprintf("Seed Group %d", k), "mailNickname": fmt.Sprintf("seed-group-%d", k),
			"mailEnabled": false, "securityEnabled": true, "groupTypes": []string{},
		})
		for j := 0; j < membersEach && j < len(users); j++ {
			t.addMember(g, users[(i*membersEach+j)%len(users)])
		}
		ids = append(ids, g.id)
	}
	return ids, nil
}

package groupsync_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/msgraph"
)

const converge = 60 * time.Second

// inSync waits until the group's link is IN_SYNC with n members in sync.
func (s *stack) inSync(groupID, inID string, n int) *linkOut {
	s.t.Helper()
	var l *linkOut
	eventually(s.t, converge, "group link in sync", func() bool {
		l = s.groupLink(groupID, inID)
		return l != nil && l.Status == "IN_SYNC" && l.MembersInSync == n && l.MembersPending == 0
	})
	return l
}

func (s *stack) events(typ string) []struct {
	Type, Detail   string
	GroupID, JobID *string
	IntegrationID  *string
} {
	s.t.Helper()
	var out struct {
		Events struct {
			Edges []struct {
				Node struct {
					Type, Detail   string
					GroupID, JobID *string
					IntegrationID  *string
				}
			}
		}
	}
	s.gql(`query($t: String!) { events(where: {type: $t}, first: 100) { edges { node { type detail groupID jobID integrationID } } } }`,
		map[string]any{"t": typ}, &out)
	var evs []struct {
		Type, Detail   string
		GroupID, JobID *string
		IntegrationID  *string
	}
	for _, e := range out.Events.Edges {
		evs = append(evs, e.Node)
	}
	return evs
}

func (s *stack) remoteUser(upn string) msgraph.User {
	s.t.Helper()
	u, err := s.gc.CreateUser(context.Background(), msgraph.UserFields{AccountEnabled: msgraph.Ptr(true),
		DisplayName: msgraph.Ptr(upn), MailNickname: msgraph.Ptr(strings.Split(upn, "@")[0]),
		UserPrincipalName: msgraph.Ptr(upn), PasswordProfile: &msgraph.PasswordProfile{Password: "Xy9!long-enough-pw"}})
	require.NoError(s.t, err)
	return u
}

func (s *stack) remoteSecurityGroup(name string, members ...string) string {
	s.t.Helper()
	ctx := context.Background()
	g, err := s.gc.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: name, MailNickname: "pre" + strings.ReplaceAll(name, " ", "")})
	require.NoError(s.t, err)
	if len(members) > 0 {
		require.NoError(s.t, s.gc.AddGroupMembers(ctx, g.ID, members))
	}
	return g.ID
}

// TestTakeoverOfTheOnlySameNameGroup: G2 exactly one → take it over; our
// members are added, a foreign member stays.
func TestTakeoverOfTheOnlySameNameGroup(t *testing.T) {
	s := newStack(t, stackOpts{})
	foreign := s.remoteUser("outsider@contoso.com")
	existing := s.remoteSecurityGroup("Sales", foreign.ID)
	inID := s.integration(true)
	users := s.users("sales", 3)
	g := s.group("Sales", "the sales team", users)
	s.bindGroups(inID, g)

	l := s.inSync(g, inID, 3)
	require.NotNil(t, l.RemoteID)
	require.Equal(t, existing, *l.RemoteID, "taken over, not created")
	require.True(t, l.TakenOver)
	require.Equal(t, 1, l.ForeignMembers)
	require.Len(t, s.remoteGroups("Sales"), 1, "no second group")
	rg := s.remoteGroup(existing)
	want := append(remoteOf(t, s.userRemoteIDs(inID), users), strings.ToLower(foreign.ID))
	require.ElementsMatch(t, want, lowerSorted(rg.Members))
	require.Equal(t, "the sales team", rg.Description, "description copied")

	evs := s.events("group_takeover")
	require.Len(t, evs, 1)
	require.Equal(t, g, *evs[0].GroupID)
	require.Equal(t, inID, *evs[0].IntegrationID)
	require.NotNil(t, evs[0].JobID)
	require.NotEmpty(t, s.events("group_membership_provision"))

	ls := s.integrationGroupLinks(inID)
	require.Len(t, ls, 1)
	require.Equal(t, "GROUP", ls[0].Kind)
	require.Equal(t, existing, *ls[0].RemoteID)

	// Re-running changes nothing: no Graph write.
	s.settled(converge)
	s.sim.ClearRequests()
	s.gql(`mutation($g: ID!, $u: [ID!]!) { addUserGroupMembers(groupID: $g, userIDs: $u) { jobs { id } } }`,
		map[string]any{"g": g, "u": users}, nil) // already members: no job, nothing sent
	s.setGroupManagement(inID, true) // unchanged setting: no job
	s.settled(converge)
	for _, r := range s.sim.Requests() {
		require.Equal(t, http.MethodGet, r.Method, "unexpected write %s %s", r.Method, r.Path)
	}
}

// TestCreateWhenNoneOrSeveralOrOnlyMailEnabled: G2 none → create; more than
// one → a new one; a name held only by a Microsoft 365 group counts as none
// and that group is never touched.
func TestCreateWhenNoneOrSeveralOrOnlyMailEnabled(t *testing.T) {
	s := newStack(t, stackOpts{})
	dup1 := s.remoteSecurityGroup("Ops")
	dup2 := s.remoteSecurityGroup("Ops")
	// A Microsoft 365 group named News, created as an admin would.
	tok, err := s.gc.Token(context.Background())
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, s.simURL+"/v1.0/groups", strings.NewReader(
		`{"displayName":"News","mailNickname":"news","mailEnabled":true,"securityEnabled":false,"groupTypes":["Unified"]}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)

	inID := s.integration(true)
	users := s.users("m", 2)
	eng := s.group("Engineering", "builds things", users)
	ops := s.group("Ops", "", users[:1])
	news := s.group("News", "", users[1:])
	s.bindGroups(inID, eng, ops, news)

	le := s.inSync(eng, inID, 2)
	lo := s.inSync(ops, inID, 1)
	ln := s.inSync(news, inID, 1)
	for _, l := range []*linkOut{le, lo, ln} {
		require.False(t, l.TakenOver)
	}
	rg := s.remoteGroup(*le.RemoteID)
	require.True(t, rg.SecurityEnabled)
	require.False(t, rg.MailEnabled)
	require.Equal(t, "builds things", rg.Description)
	require.True(t, strings.HasPrefix(rg.MailNickname, "Engineering-"), rg.MailNickname)

	require.Len(t, s.remoteGroups("Ops"), 3, "a new one beside the two")
	require.NotContains(t, []string{dup1, dup2}, *lo.RemoteID)
	newsGroups := s.remoteGroups("News")
	require.Len(t, newsGroups, 2)
	for _, g := range newsGroups {
		if g.MailEnabled {
			require.Empty(t, g.Members, "the Microsoft 365 group is never touched")
		} else {
			require.Equal(t, *ln.RemoteID, g.ID)
		}
	}

	details := s.itemDetails(inID)
	require.True(t, slices.ContainsFunc(details, func(d string) bool { return strings.Contains(d, `2 security groups named "Ops"`) }), details)
	require.True(t, slices.ContainsFunc(details, func(d string) bool { return strings.Contains(d, `Microsoft 365 group(s) named "News"`) }), details)
	require.Len(t, s.events("group_create_provision"), 3)
}

// itemDetails lists the details of the integration's job items.
func (s *stack) itemDetails(inID string) []string {
	s.t.Helper()
	var out struct {
		Jobs struct {
			Edges []struct {
				Node struct {
					Items struct {
						Edges []struct{ Node struct{ Detail *string } }
					}
				}
			}
		}
	}
	s.gql(`{ jobs(first: 20) { edges { node { items(first: 100, where: {groupIDNotNil: true}) { edges { node { detail } } } } } } }`, nil, &out)
	var ds []string
	for _, j := range out.Jobs.Edges {
		for _, it := range j.Node.Items.Edges {
			if it.Node.Detail != nil {
				ds = append(ds, *it.Node.Detail)
			}
		}
	}
	return ds
}

// TestMembershipRenameAndDescriptionFollow: G3 adds and removes, a member
// whose provisioning is in flight, renames and description changes.
func TestMembershipRenameAndDescriptionFollow(t *testing.T) {
	s := newStack(t, stackOpts{sim: graphsim.Config{Faults: graphsim.Faults{ReplicationDelay: 300 * time.Millisecond}}})
	inID := s.integration(true)
	users := s.users("d", 4)
	g := s.group("Design", "", users[:2])
	s.bindGroups(inID, g)
	l := s.inSync(g, inID, 2)
	remoteID := *l.RemoteID
	nick := s.remoteGroup(remoteID).MailNickname

	// users[2] is not provisioned anywhere yet: adding it starts its user
	// reconcile and the group's; it must end up a member either way round.
	s.addMembers(g, users[2:3])
	s.inSync(g, inID, 3)
	s.removeMembers(g, users[:1])
	s.inSync(g, inID, 2)
	ids := s.userRemoteIDs(inID)
	require.ElementsMatch(t, remoteOf(t, ids, users[1:3]), lowerSorted(s.remoteGroup(remoteID).Members))

	s.gql(`mutation($id: ID!) { updateUserGroup(id: $id, input: {name: "Product Design", description: "pixels"}) { jobs { id } } }`,
		map[string]any{"id": g}, nil)
	eventually(t, converge, "renamed", func() bool {
		rg := s.remoteGroup(remoteID)
		return rg.DisplayName == "Product Design" && rg.Description == "pixels"
	})
	require.Equal(t, nick, s.remoteGroup(remoteID).MailNickname, "mailNickname stays")
	s.gql(`mutation($id: ID!) { updateUserGroup(id: $id, input: {clearDescription: true}) { jobs { id } } }`, map[string]any{"id": g}, nil)
	eventually(t, converge, "description cleared", func() bool { return s.remoteGroup(remoteID).Description == "" })
	require.NotEmpty(t, s.events("group_update_provision"))
	require.Len(t, s.remoteGroups("Product Design"), 1)

	// Deleting a member user removes it from the remote group (G3, X3).
	s.gql(`mutation($id: ID!) { deleteUser(id: $id) { deletedID } }`, map[string]any{"id": users[1]}, nil)
	s.inSync(g, inID, 1)
	eventually(t, converge, "deleted user left the group", func() bool {
		return slices.Equal([]string{ids[users[2]]}, lowerSorted(s.remoteGroup(remoteID).Members))
	})
}

// TestManagementOffLeavesGroupsAndOnResumes: G1.
func TestManagementOffLeavesGroupsAndOnResumes(t *testing.T) {
	s := newStack(t, stackOpts{})
	inID := s.integration(false)
	users := s.users("p", 3)
	g := s.group("Pilots", "", users[:2])
	s.bindGroups(inID, g)
	s.settled(converge)
	require.Nil(t, s.groupLink(g, inID), "management off: no remote group")
	require.Empty(t, s.remoteGroups("Pilots"))

	require.NotEmpty(t, s.setGroupManagement(inID, true))
	l := s.inSync(g, inID, 2)
	remoteID := *l.RemoteID

	require.NotEmpty(t, s.setGroupManagement(inID, false))
	eventually(t, converge, "released", func() bool {
		l := s.groupLink(g, inID)
		return l.Status == "OUT_OF_SCOPE" && l.StatusReason != nil && strings.Contains(*l.StatusReason, "management is off")
	})
	before := s.remoteGroup(remoteID)
	s.gql(`mutation($id: ID!) { updateUserGroup(id: $id, input: {name: "Aviators"}) { jobs { id } } }`, map[string]any{"id": g}, nil)
	s.addMembers(g, users[2:])
	s.removeMembers(g, users[:1])
	s.settled(converge)
	after := s.remoteGroup(remoteID)
	require.Equal(t, before.DisplayName, after.DisplayName, "no rename sent while off")
	require.ElementsMatch(t, before.Members, after.Members, "no membership write while off")
	require.Equal(t, *l.RemoteID, *s.groupLink(g, inID).RemoteID, "link kept as history")

	require.NotEmpty(t, s.setGroupManagement(inID, true))
	l = s.inSync(g, inID, 2)
	require.Equal(t, remoteID, *l.RemoteID, "resumed on the same remote group")
	rg := s.remoteGroup(remoteID)
	require.Equal(t, "Aviators", rg.DisplayName)
	ids := s.userRemoteIDs(inID)
	require.ElementsMatch(t, remoteOf(t, ids, users[1:]), lowerSorted(rg.Members))
	require.Len(t, s.remoteGroups("Aviators"), 1)
	require.Empty(t, s.remoteGroups("Pilots"))
}

// TestUnbindAndDeleteStopManaging: G4 and X4.
func TestUnbindAndDeleteStopManaging(t *testing.T) {
	s := newStack(t, stackOpts{})
	inID := s.integration(true)
	users := s.users("q", 4)
	direct := users[0]
	s.bindUsers(inID, []string{direct})
	g := s.group("Quality", "", users[:2])
	h := s.group("Hardware", "", users[2:])
	s.bindGroups(inID, g, h)
	lg := s.inSync(g, inID, 2)
	lh := s.inSync(h, inID, 2)
	ids := s.userRemoteIDs(inID)

	s.unbindGroups(inID, g)
	eventually(t, converge, "unbound group released", func() bool {
		l := s.groupLink(g, inID)
		return l.Status == "OUT_OF_SCOPE" && strings.Contains(*l.StatusReason, "no longer bound")
	})
	s.settled(converge)
	rg := s.remoteGroup(*lg.RemoteID)
	require.Equal(t, "Quality", rg.DisplayName)
	require.ElementsMatch(t, remoteOf(t, ids, users[:2]), lowerSorted(rg.Members), "remote group left as it is")
	enabled := map[string]bool{}
	for _, u := range s.sim.Users(s.creds.TenantID) {
		enabled[strings.ToLower(u.ID)] = u.AccountEnabled
	}
	require.True(t, enabled[ids[direct]], "still bound directly")
	require.False(t, enabled[ids[users[1]]], "X4: lost its only connection")

	s.gql(`mutation($id: ID!) { deleteUserGroup(id: $id) { deletedID } }`, map[string]any{"id": h}, nil)
	eventually(t, converge, "deleted group released", func() bool {
		for _, l := range s.integrationGroupLinks(inID) {
			if l.ID == lh.ID {
				return l.Status == "OUT_OF_SCOPE" && strings.Contains(*l.StatusReason, "deleted")
			}
		}
		return false
	})
	s.settled(converge)
	rh := s.remoteGroup(*lh.RemoteID)
	require.ElementsMatch(t, remoteOf(t, ids, users[2:]), lowerSorted(rh.Members), "remote group left as it is")
	for _, u := range s.sim.Users(s.creds.TenantID) {
		if id := strings.ToLower(u.ID); id == ids[users[2]] || id == ids[users[3]] {
			require.False(t, u.AccountEnabled, "X4 after deletion")
		}
	}

	// Binding a group of the same name again takes the remote group over
	// (the deleted group's link was only history).
	h2 := s.group("Hardware", "", users[3:])
	s.bindGroups(inID, h2)
	l := s.inSync(h2, inID, 1)
	require.Equal(t, *lh.RemoteID, *l.RemoteID)
	require.True(t, l.TakenOver)
}

// TestGraphRefusalIsAPerItemError: a group write Graph refuses for good (here
// the app lacks Group.ReadWrite.All) fails that group's item with Graph's code
// and request id on the link; the users of the same job still provision.
func TestGraphRefusalIsAPerItemError(t *testing.T) {
	s := newStack(t, stackOpts{})
	app, err := s.sim.AddApp(s.creds.TenantID, graphsim.AppSpec{Name: "no-groups",
		Permissions: []string{graphsim.PermUserReadWriteAll, graphsim.PermDomainReadAll, graphsim.PermGroupReadAll}})
	require.NoError(t, err)
	inID := s.integrationAs(graphsim.Credentials{TenantID: s.creds.TenantID, ClientID: app.ClientID, ClientSecret: app.ClientSecret}, true)
	users := s.users("r", 2)
	g := s.group("Restricted", "", users)
	s.bindGroups(inID, g)
	var l *linkOut
	eventually(t, converge, "group link failed", func() bool {
		l = s.groupLink(g, inID)
		return l != nil && l.Status == "ERROR"
	})
	require.Equal(t, "Authorization_RequestDenied", *l.LastErrorCode)
	require.NotEmpty(t, *l.LastErrorRequestID)
	s.settled(converge)
	require.Len(t, s.userRemoteIDs(inID), 2, "the users of the job still provisioned")
	var out struct {
		Jobs struct {
			Edges []struct{ Node struct{ Status string } }
		}
	}
	s.gql(`{ jobs(first: 5, where: {kind: "BIND_USER_GROUPS"}) { edges { node { status } } } }`, nil, &out)
	require.Len(t, out.Jobs.Edges, 1)
	require.Equal(t, "PARTIAL", out.Jobs.Edges[0].Node.Status)
	evs := s.events("group_provision_failed")
	require.NotEmpty(t, evs)
	for _, e := range evs {
		require.Contains(t, e.Detail, "request-id")
		require.Equal(t, g, *e.GroupID)
	}
	require.Empty(t, s.remoteGroups("Restricted"))
}

package stacktest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/ownership"
)

// Issue 14 through the whole stack (API, relay, worker, emulator): a bind
// refused per item because another deployment marked the account, the same
// bind with force: true; a drift round corrected by a DRIFT_CORRECTION job
// the real worker runs; with driftAction REPORT the drift shows on the link
// and as a remote_drift event through the API.
func TestDriftAndOwnershipThroughTheStack(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	alpha := s.integration("Alpha", []string{"alpha.com"}, nil)
	gc := s.graph(alpha.id)
	ctx := context.Background()
	pre, err := gc.CreateUser(ctx, msgraph.UserFields{AccountEnabled: msgraph.Ptr(true), DisplayName: msgraph.Ptr("Zed"),
		MailNickname: msgraph.Ptr("zed"), UserPrincipalName: msgraph.Ptr("zed@alpha.com"),
		PasswordProfile: &msgraph.PasswordProfile{Password: "Xy9!long-enough-pw"}})
	require.NoError(t, err)
	require.NoError(t, gc.CreateExtension(ctx, "users", pre.ID, ownership.ExtensionName, map[string]any{
		"deployment": "staging", "organizationId": "ORx", "integrationId": "INx", "integrationName": "Staging M365"}))
	ann := s.createUserAs(s.admin, "ann", "ann@alpha.com", map[string]any{"jobTitle": "Buyer"})
	zed := s.createUser("zed", "zed@alpha.com")

	const bindQ = `mutation($i: ID!, $u: [ID!]!, $f: Boolean) { bindUsers(integrationID: $i, userIDs: $u, force: $f) { jobs { ` + jobFields + ` } } }`
	js := s.wait(s.mutateJobs(s.admin, "bindUsers", bindQ, map[string]any{"i": alpha.id, "u": []string{ann, zed}})...)
	require.Equal(t, "PARTIAL", js[0].Status)
	require.Equal(t, 1, js[0].Failed)
	l := s.link(zed, alpha.id)
	require.Equal(t, ownership.CodeOwnedElsewhere, l.LastErrorCode)
	require.Contains(t, l.LastErrorMessage, `"Staging M365"`)
	require.Contains(t, l.LastErrorMessage, `deployment "staging"`)

	js = s.wait(s.mutateJobs(s.admin, "bindUsers", bindQ, map[string]any{"i": alpha.id, "u": []string{zed}, "f": true})...)
	require.Equal(t, "SUCCEEDED", js[0].Status)
	require.Equal(t, []string{jobs.ResultTakenOver}, s.results(js[0].ID))
	require.Equal(t, pre.ID, s.link(zed, alpha.id).RemoteID)
	m, err := gc.GetExtension(ctx, "users", pre.ID, ownership.ExtensionName)
	require.NoError(t, err)
	require.Equal(t, alpha.id, m["integrationId"])
	require.Equal(t, "dirsync", m["deployment"])

	d, err := s.app.Drift()
	require.NoError(t, err)
	round := func() {
		_, err := d.Round(ctx, s.org, pulid.ID(alpha.id))
		require.NoError(t, err)
	}
	round() // baseline
	annRemote := s.link(ann, alpha.id).RemoteID
	require.NoError(t, s.sim.AdminUpdateUser(alpha.tenantID, annRemote, map[string]any{"jobTitle": "Intruder"}))
	res, err := d.Round(ctx, s.org, pulid.ID(alpha.id))
	require.NoError(t, err)
	require.NotNil(t, res.Job)
	done := s.wait(jobOut{ID: string(res.Job.ID)})
	require.Equal(t, "SUCCEEDED", done[0].Status)
	require.Equal(t, "Buyer", s.remote(alpha.tenantID, "ann@alpha.com").Properties["jobTitle"])

	s.must(s.admin, `mutation($id: ID!) { updateIntegration(id: $id, input: {driftAction: REPORT}) { integration { driftAction } } }`,
		map[string]any{"id": alpha.id}, nil)
	round()
	require.NoError(t, s.sim.AdminUpdateUser(alpha.tenantID, annRemote, map[string]any{"accountEnabled": false}))
	round()
	var out struct {
		Node struct {
			DriftAction string
			Links       struct {
				Edges []struct {
					Node struct {
						UserID      string
						Status      string
						OwnerMarked bool
						Drift       *struct {
							Properties []string
							Action     string
							Deleted    bool
							DetectedAt string
						}
					}
				}
			}
		}
	}
	s.must(s.readOnly, `query($id: ID!) { node(id: $id) { ... on Integration { driftAction links(first: 10) { edges { node {
		userID status ownerMarked drift { properties action deleted detectedAt } } } } } } }`, map[string]any{"id": alpha.id}, &out)
	require.Equal(t, "REPORT", out.Node.DriftAction)
	seen := 0
	for _, e := range out.Node.Links.Edges {
		n := e.Node
		require.True(t, n.OwnerMarked, "every account carries the marker")
		if n.UserID == ann {
			require.NotNil(t, n.Drift)
			require.Equal(t, []string{"accountEnabled"}, n.Drift.Properties)
			require.Equal(t, "REPORT", n.Drift.Action)
			require.NotEmpty(t, n.Drift.DetectedAt)
			seen++
		} else {
			require.Nil(t, n.Drift)
		}
	}
	require.Equal(t, 1, seen)
	var evs struct {
		Events struct {
			Edges []struct{ Node struct{ Type, Detail string } }
		}
	}
	s.must(s.readOnly, `{ events(where: {type: "remote_drift"}, first: 10) { edges { node { type detail } } } }`, nil, &evs)
	require.Len(t, evs.Events.Edges, 2)
	require.False(t, s.remote(alpha.tenantID, "ann@alpha.com").AccountEnabled, "REPORT leaves it as the admin made it")
}

// Managed security groups carry the marker too: a created group is marked;
// the only same-name group marked by another deployment is refused per item
// naming the owner; binding again with force takes it over and re-marks it;
// unbinding with releaseOwnership removes ours (issue 14, G2).
func TestGroupOwnershipThroughTheStack(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	beta := s.integration("Beta", []string{"beta.com"}, map[string]any{"groupManagement": true})
	gc := s.graph(beta.id)
	ctx := context.Background()
	theirs, err := gc.CreateGroup(ctx, msgraph.NewSecurityGroup{DisplayName: "Ops", MailNickname: "theirops"})
	require.NoError(t, err)
	require.NoError(t, gc.CreateExtension(ctx, "groups", theirs.ID, ownership.ExtensionName, map[string]any{
		"deployment": "staging", "organizationId": "ORx", "integrationId": "INx", "integrationName": "Staging M365"}))
	ops, fresh := s.createGroup("Ops"), s.createGroup("Fresh")

	const bindQ = `mutation($i: ID!, $g: [ID!]!, $f: Boolean) { bindUserGroups(integrationID: $i, groupIDs: $g, force: $f) { jobs { ` + jobFields + ` } } }`
	js := s.wait(s.mutateJobs(s.admin, "bindUserGroups", bindQ, map[string]any{"i": beta.id, "g": []string{ops, fresh}})...)
	require.Equal(t, "PARTIAL", js[0].Status)
	glink := func(g string) *ent.RemoteLink {
		l, err := s.app.Ent.RemoteLink.Query().Where(remotelink.GroupID(pulid.ID(g)), remotelink.IntegrationID(pulid.ID(beta.id))).Only(sys())
		require.NoError(t, err)
		return l
	}
	l := glink(ops)
	require.Equal(t, ownership.CodeOwnedElsewhere, l.LastErrorCode)
	require.Contains(t, l.LastErrorMessage, `remote group `+theirs.ID)
	require.Contains(t, l.LastErrorMessage, `"Staging M365"`)
	fl := glink(fresh)
	require.True(t, fl.OwnerMarked)
	m, err := gc.GetExtension(ctx, "groups", fl.RemoteID, ownership.ExtensionName)
	require.NoError(t, err)
	require.Equal(t, beta.id, m["integrationId"])

	js = s.wait(s.mutateJobs(s.admin, "bindUserGroups", bindQ, map[string]any{"i": beta.id, "g": []string{ops}, "f": true})...)
	require.Equal(t, "SUCCEEDED", js[0].Status)
	l = glink(ops)
	require.Equal(t, theirs.ID, l.RemoteID)
	require.True(t, l.OwnerMarked)
	m, err = gc.GetExtension(ctx, "groups", theirs.ID, ownership.ExtensionName)
	require.NoError(t, err)
	require.Equal(t, beta.id, m["integrationId"])

	const unbindQ = `mutation($i: ID!, $g: [ID!]!) { unbindUserGroups(integrationID: $i, groupIDs: $g, releaseOwnership: true) { jobs { ` + jobFields + ` } } }`
	s.wait(s.mutateJobs(s.admin, "unbindUserGroups", unbindQ, map[string]any{"i": beta.id, "g": []string{ops}})...)
	_, err = gc.GetExtension(ctx, "groups", theirs.ID, ownership.ExtensionName)
	require.True(t, msgraph.IsNotFound(err), "released: %v", err)
	require.False(t, glink(ops).OwnerMarked)
	require.Len(t, s.sim.Groups(beta.tenantID), 2, "nothing deleted")
}

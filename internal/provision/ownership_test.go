package provision_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/ownership"
	"github.com/dirsync/dirsync/internal/provision"
)

// owned is an env whose reconciler writes ownership markers as deployment.
func owned(t *testing.T, deployment string) (*env, *provision.Reconciler) {
	e := newEnv(t, envOpts{})
	return e, e.deployment(deployment)
}

func (e *env) deployment(name string) *provision.Reconciler {
	rec, err := provision.New(provision.Config{Ent: e.client, Tenants: e.tenants, Logger: quietLogger(), Deployment: name})
	require.NoError(e.t, err)
	return rec
}

func (e *env) runWith(rec *provision.Reconciler) {
	e.t.Helper()
	for _, task := range e.tasks() {
		require.NoError(e.t, rec.Handle(context.Background(), task, true))
	}
}

func (e *env) marker(in *ent.Integration, remoteID string) map[string]any {
	e.t.Helper()
	m, err := e.graph(in).GetExtension(context.Background(), "users", remoteID, ownership.ExtensionName)
	if msgraph.IsNotFound(err) {
		return nil
	}
	require.NoError(e.t, err)
	return m
}

// remoteAccount creates an account in the tenant as someone else did, with
// an optional marker of another owner.
func (e *env) remoteAccount(upn string, owner map[string]any) string {
	e.t.Helper()
	ctx := context.Background()
	gc := e.graph(e.in)
	u, err := gc.CreateUser(ctx, msgraph.UserFields{AccountEnabled: msgraph.Ptr(true), DisplayName: msgraph.Ptr("Pre Existing"),
		MailNickname: msgraph.Ptr("pre"), UserPrincipalName: msgraph.Ptr(upn), JobTitle: msgraph.Ptr("Theirs"),
		PasswordProfile: &msgraph.PasswordProfile{Password: "Xy9!long-enough-pw"}})
	require.NoError(e.t, err)
	if owner != nil {
		require.NoError(e.t, gc.CreateExtension(ctx, "users", u.ID, ownership.ExtensionName, owner))
	}
	return u.ID
}

func jobTitle(u *ent.UserCreate) { u.SetJobTitle("Pilot") }

// Created → marked with the deployment, organization and integration.
func TestMarkerOnCreate(t *testing.T) {
	t.Parallel()
	e, rec := owned(t, "dep-a")
	u := e.user("ann", "ann@contoso.com", active)
	e.bind(e.in, u)
	e.runWith(rec)
	l := e.link(e.in, u)
	require.True(t, l.OwnerMarked)
	m := e.marker(e.in, l.RemoteID)
	require.Equal(t, "dep-a", m["deployment"])
	require.Equal(t, string(e.in.ID), m["integrationId"])
	require.Equal(t, string(e.org.ID), m["organizationId"])
	require.Equal(t, e.in.Name, m["integrationName"])
}

// A takeover of an unmarked account marks it.
func TestTakeoverOfUnmarkedIsMarked(t *testing.T) {
	t.Parallel()
	e, rec := owned(t, "dep-a")
	rid := e.remoteAccount("bob@contoso.com", nil)
	u := e.user("bob", "bob@contoso.com", active, jobTitle)
	j := e.bind(e.in, u)
	e.runWith(rec)
	require.Equal(t, jobs.ResultTakenOver, e.items(j.ID)[0].Result)
	require.Equal(t, rid, e.link(e.in, u).RemoteID)
	require.Equal(t, string(e.in.ID), e.marker(e.in, rid)["integrationId"])
	require.True(t, e.link(e.in, u).OwnerMarked)
}

// An account marked by another integration, or by another deployment, is
// refused per item with an error naming the owner and left untouched; the
// other users of the job still provision; force takes it over and re-marks.
func TestTakeoverOfMarkedRefusedUnlessForced(t *testing.T) {
	t.Parallel()
	for name, owner := range map[string]map[string]any{
		"other integration": {"deployment": "dep-a", "organizationId": "ORother", "integrationId": "INother", "integrationName": "Other M365"},
		"other deployment":  {"deployment": "dep-b", "organizationId": "ORx", "integrationId": "INx", "integrationName": "Far Away"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, rec := owned(t, "dep-a")
			rid := e.remoteAccount("cat@contoso.com", owner)
			cat := e.user("cat", "cat@contoso.com", active, jobTitle)
			dan := e.user("dan", "dan@contoso.com", active)
			j := e.bind(e.in, cat, dan)
			e.runWith(rec)
			items := e.items(j.ID)
			byUser := map[string]*ent.JobItem{}
			for _, it := range items {
				byUser[string(*it.UserID)] = it
			}
			it := byUser[string(cat.ID)]
			require.Equal(t, jobitem.StatusFAILED, it.Status)
			require.Equal(t, ownership.CodeOwnedElsewhere, it.ErrorCode)
			require.Contains(t, it.ErrorMessage, owner["integrationName"])
			require.Contains(t, it.ErrorMessage, owner["integrationId"])
			require.Contains(t, it.ErrorMessage, owner["deployment"])
			require.Contains(t, it.ErrorMessage, "force: true")
			require.Equal(t, jobs.ResultCreated, byUser[string(dan.ID)].Result)
			r := e.remote(e.creds.TenantID, "cat@contoso.com")
			require.Equal(t, "Theirs", r.Properties["jobTitle"], "nothing written to a refused account")
			require.Equal(t, owner["integrationId"], e.marker(e.in, rid)["integrationId"])
			l := e.link(e.in, cat)
			require.Equal(t, remotelink.StatusERROR, l.Status)
			require.Empty(t, l.RemoteID)

			j = e.start(jobs.JobBindUsers, e.in.ID, jobs.Target{IntegrationID: e.in.ID, UserID: cat.ID, ForceTakeover: true})
			e.runWith(rec)
			require.Equal(t, jobs.ResultTakenOver, e.items(j.ID)[0].Result)
			require.Equal(t, rid, e.link(e.in, cat).RemoteID)
			m := e.marker(e.in, rid)
			require.Equal(t, string(e.in.ID), m["integrationId"])
			require.Equal(t, "dep-a", m["deployment"])
			require.Equal(t, "Pilot", e.remote(e.creds.TenantID, "cat@contoso.com").Properties["jobTitle"])
			evs := e.events(provision.EventUserCreate)
			require.Contains(t, evs[len(evs)-1].Detail, "forced: it was managed by")
		})
	}
}

// Two deployments on one tenant, both orders: whoever provisions first
// owns the account; the other is refused naming it.
func TestTwoDeploymentsBothOrders(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"dep-a", "dep-b"} {
		t.Run(first+" first", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{})
			org2, err := directory.New(e.client).CreateOrganization(e.ctx, "other")
			require.NoError(t, err)
			in2 := e.integration("Theirs", e.creds, func(c *ent.IntegrationCreate) { c.SetOrganizationID(org2.ID) })
			u1 := e.user("eve", "eve@contoso.com", active)
			u2, err := e.client.User.Create().SetOrganizationID(org2.ID).SetUsername("eve").SetEmail("eve@contoso.com").
				SetState(user.StateACTIVE).Save(e.ctx)
			require.NoError(t, err)
			recs := map[string]*provision.Reconciler{"dep-a": e.deployment("dep-a"), "dep-b": e.deployment("dep-b")}
			steps := map[string]func() *ent.Job{
				"dep-a": func() *ent.Job { j := e.bind(e.in, u1); e.runWith(recs["dep-a"]); return j },
				"dep-b": func() *ent.Job {
					require.NoError(t, e.client.UserBinding.Create().SetOrganizationID(org2.ID).SetIntegrationID(in2.ID).
						SetUserID(u2.ID).Exec(e.ctx))
					j, err := jobs.Start(e.ctx, e.client, org2.ID, jobs.JobBindUsers, in2.ID,
						[]jobs.Target{{IntegrationID: in2.ID, UserID: u2.ID}})
					require.NoError(t, err)
					e.runWith(recs["dep-b"])
					return j
				},
			}
			second := map[string]string{"dep-a": "dep-b", "dep-b": "dep-a"}[first]
			j1 := steps[first]()
			require.Equal(t, jobs.ResultCreated, e.items(j1.ID)[0].Result)
			j2 := steps[second]()
			it := e.items(j2.ID)[0]
			require.Equal(t, ownership.CodeOwnedElsewhere, it.ErrorCode)
			require.Contains(t, it.ErrorMessage, `deployment "`+first+`"`)
			require.Len(t, e.sim.Users(e.creds.TenantID), 1)
		})
	}
}

// Unbinding removes nothing remote but the account's access (X2); the
// marker stays unless releaseOwnership asks to remove it.
func TestReleaseOwnershipOnUnbind(t *testing.T) {
	t.Parallel()
	for _, release := range []bool{false, true} {
		t.Run(map[bool]string{false: "kept", true: "released"}[release], func(t *testing.T) {
			t.Parallel()
			e, rec := owned(t, "dep-a")
			u := e.user("fay", "fay@contoso.com", active)
			e.bind(e.in, u)
			e.runWith(rec)
			rid := e.link(e.in, u).RemoteID
			require.NotNil(t, e.marker(e.in, rid))
			_, err := e.client.UserBinding.Delete().Exec(e.ctx)
			require.NoError(t, err)
			e.start(jobs.JobUnbindUsers, e.in.ID, jobs.Target{IntegrationID: e.in.ID, UserID: u.ID, ReleaseOwnership: release})
			e.runWith(rec)
			r := e.remote(e.creds.TenantID, "fay@contoso.com")
			require.NotNil(t, r, "nothing is deleted")
			require.False(t, r.AccountEnabled)
			if release {
				require.Nil(t, e.marker(e.in, rid))
				require.False(t, e.link(e.in, u).OwnerMarked)
			} else {
				require.NotNil(t, e.marker(e.in, rid))
				require.True(t, e.link(e.in, u).OwnerMarked)
			}
		})
	}
}

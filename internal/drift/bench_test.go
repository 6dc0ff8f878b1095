package drift_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/ent/user"
)

// BenchmarkDriftRoundNoChange: a drift round of an integration with 10,000
// linked users and 10 managed groups of 100 in which nothing changed since
// the last round — the common case every interval. Reports Graph calls per
// round (the goal: ≤ 5) and, as the same-run baseline, the full first round
// that read all 10,000 users and the groups (quiet/full = the ratio).
func BenchmarkDriftRoundNoChange(b *testing.B) {
	const users, groups, members = 10000, 10, 100
	e := newEnv(b, envOpts{groups: true})
	tn := e.creds.TenantID
	require.NoError(b, e.sim.SeedUsers(tn, users))
	_, err := e.sim.SeedGroups(tn, groups, members)
	require.NoError(b, err)

	// The baseline: a full round (read only; the links come next, so this
	// measures what Graph costs, not the comparison).
	start := time.Now()
	res := e.round()
	full := time.Since(start)
	require.True(b, res.FullUsers)
	e.sim.ClearRequests()

	remote := e.sim.Users(tn)
	for chunk := range slices.Chunk(remote, 1000) {
		us := make([]*ent.UserCreate, len(chunk))
		for i, r := range chunk {
			us[i] = e.client.User.Create().SetOrganizationID(e.org.ID).SetUsername(fmt.Sprintf("u%s", r.ID[:13])).
				SetEmail(r.UserPrincipalName).SetState(user.StateACTIVE)
		}
		created, err := e.client.User.CreateBulk(us...).Save(e.ctx)
		require.NoError(b, err)
		ls := make([]*ent.RemoteLinkCreate, len(chunk))
		bs := make([]*ent.UserBindingCreate, len(chunk))
		for i, r := range chunk {
			ls[i] = e.client.RemoteLink.Create().SetOrganizationID(e.org.ID).SetIntegrationID(e.in.ID).
				SetUserID(created[i].ID).SetRemoteID(r.ID).SetUpn(r.UserPrincipalName).SetStatus(remotelink.StatusIN_SYNC).
				SetRemoteEnabled(true).SetAppliedHash("h")
			bs[i] = e.client.UserBinding.Create().SetOrganizationID(e.org.ID).SetIntegrationID(e.in.ID).SetUserID(created[i].ID)
		}
		require.NoError(b, e.client.RemoteLink.CreateBulk(ls...).Exec(e.ctx))
		require.NoError(b, e.client.UserBinding.CreateBulk(bs...).Exec(e.ctx))
	}
	for i, g := range e.sim.Groups(tn) {
		ug, err := e.client.UserGroup.Create().SetOrganizationID(e.org.ID).SetName(fmt.Sprintf("G%d", i)).Save(e.ctx)
		require.NoError(b, err)
		require.NoError(b, e.client.RemoteLink.Create().SetOrganizationID(e.org.ID).SetIntegrationID(e.in.ID).
			SetKind(remotelink.KindGROUP).SetGroupID(ug.ID).SetRemoteID(g.ID).SetDisplayName(g.DisplayName).
			SetMemberIds(g.Members).SetStatus(remotelink.StatusIN_SYNC).Exec(e.ctx))
	}

	b.ResetTimer()
	calls := 0
	for range b.N {
		e.sim.ClearRequests()
		res := e.round()
		calls += e.graphCalls()
		if res.Changed != 0 || len(res.Drifted) != 0 {
			b.Fatalf("a quiet round saw changes: %+v", res)
		}
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(calls)/float64(b.N), "graph-calls/op")
	b.ReportMetric(float64(full.Milliseconds()), "full-round-ms")
	b.ReportMetric(float64(per)/float64(full), "quiet/full")
}

package groupsync_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/user"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/graphsim"
)

// bulkUsers creates n ACTIVE users directly in PostgreSQL (setup only: what
// is under test goes through GraphQL).
func (s *stack) bulkUsers(prefix string, n int) []string {
	s.t.Helper()
	ctx := auth.SystemContext(context.Background())
	org, err := s.client.Organization.Query().Only(ctx)
	require.NoError(s.t, err)
	creates := make([]*ent.UserCreate, n)
	for i := range n {
		name := fmt.Sprintf("%s%05d", prefix, i)
		creates[i] = s.client.User.Create().SetOrganizationID(org.ID).SetUsername(name).
			SetEmail(name + "@contoso.com").SetFirstName("F" + name).SetLastName("L" + name).
			SetDisplayName("User " + name).SetState(user.StateACTIVE)
	}
	var ids []string
	for chunk := range chunks(creates, 500) {
		us, err := s.client.User.CreateBulk(chunk...).Save(ctx)
		require.NoError(s.t, err)
		for _, u := range us {
			ids = append(ids, string(u.ID))
		}
	}
	return ids
}

// TestFaultsEveryGroupConverges: 10 % 5xx and 429 bursts while binding 5
// groups of 200 members (none provisioned before) through GraphQL: every
// remote group ends with exactly its members, no group is created twice.
func TestFaultsEveryGroupConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 users")
	}
	s := newStack(t, stackOpts{sim: graphsim.Config{Seed: 9, TimeScale: 20,
		Faults: graphsim.Faults{ServerErrorRate: 0.10, ReplicationDelay: 200 * time.Millisecond}}, concurrency: 20})
	inID := s.integration(true)
	// A same-name group already there for one of them: it must be taken over once.
	existing := s.remoteSecurityGroup("team-2")
	users := s.bulkUsers("f", 1000)
	groups := make([]string, 5)
	for i := range groups {
		groups[i] = s.group(fmt.Sprintf("team-%d", i), "", users[i*200:(i+1)*200])
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // six 429 bursts, 2 s apart, while the bind runs
		defer wg.Done()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for range 6 {
			f := s.sim.Faults()
			f.Force429, f.Force429RetryAfter = 15, 2*time.Second
			s.sim.SetFaults(f)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	s.bindGroups(inID, groups...)
	links := make([]*linkOut, len(groups))
	for i, g := range groups {
		var l *linkOut
		eventually(t, 4*time.Minute, "group converged under faults", func() bool {
			l = s.groupLink(g, inID)
			return l != nil && l.Status == "IN_SYNC" && l.MembersInSync == 200 && l.MembersPending == 0
		})
		links[i] = l
	}
	cancel()
	wg.Wait()
	s.sim.SetFaults(graphsim.Faults{})
	s.settled(2 * time.Minute)

	ids := s.userRemoteIDs(inID)
	require.Len(t, ids, 1000)
	for i, g := range groups {
		name := fmt.Sprintf("team-%d", i)
		rgs := s.remoteGroups(name)
		require.Len(t, rgs, 1, "exactly one remote group named %s", name)
		require.Equal(t, strings.ToLower(rgs[0].ID), strings.ToLower(*links[i].RemoteID))
		require.Equal(t, remoteOf(t, ids, users[i*200:(i+1)*200]), lowerSorted(rgs[0].Members), "members of %s", name)
		l := s.groupLink(g, inID)
		require.Equal(t, 200, l.MembersInSync)
	}
	require.Equal(t, existing, *links[2].RemoteID, "the existing team-2 was taken over")
	require.Len(t, s.sim.Groups(s.creds.TenantID), 5)
	var faults int
	for _, r := range s.sim.Requests() {
		if r.Fault != "" {
			faults++
		}
	}
	t.Logf("requests logged %d, injected faults %d", len(s.sim.Requests()), faults)
	require.Positive(t, faults)
}

package groupsync_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/graphsim"
)

// BenchmarkBindGroup2000 binds one group of 2,000 already provisioned
// members to an integration with group management on, through GraphQL, and
// measures until the remote group holds all 2,000: the Graph writes used
// (target ≤ 110: one create and 100 members@odata.bind PATCHes of 20) and
// the wall time as a ratio of what the emulator's write quota allows for
// those writes (Graph: 3,000 writes per 150 s = 20/s; the emulator runs at
// TimeScale 10, so 200/s). Setup (creating and provisioning the users) is
// not measured. Run once:
//
//	go test -run '^$' -bench BindGroup2000 -benchtime 1x ./internal/groupsync/
func BenchmarkBindGroup2000(b *testing.B) {
	const members, scale = 2000, 10.0
	for range b.N {
		b.StopTimer()
		s := newStack(b, stackOpts{sim: graphsim.Config{Seed: 3, TimeScale: scale}, concurrency: 20})
		inID := s.integration(true)
		users := s.bulkUsers("b", members)
		s.bindUsers(inID, users)
		s.settled(5 * time.Minute)
		g := s.group("Everyone", "all of us", users)
		s.settled(time.Minute)
		s.sim.ClearRequests()

		b.StartTimer()
		start := time.Now()
		s.bindGroups(inID, g)
		eventually(b, 5*time.Minute, "group converged", func() bool {
			l := s.groupLink(g, inID)
			return l != nil && l.Status == "IN_SYNC" && l.MembersInSync == members
		})
		wall := time.Since(start)
		b.StopTimer()

		s.settled(time.Minute)
		writes, attempts, reads := 0, 0, 0
		var first, last time.Time
		for _, r := range s.sim.Requests() {
			if first.IsZero() {
				first = r.Time
			}
			last = r.Time
			if strings.Contains(r.Path, "/oauth2/") {
				continue
			}
			if r.Method == http.MethodGet {
				reads++
				continue
			}
			attempts++
			if r.Status < 300 {
				writes++
			}
		}
		require.Len(b, s.remoteGroup(*s.groupLink(g, inID).RemoteID).Members, members)
		quota := float64(writes) / (20 * scale) // seconds the write quota needs for these writes
		b.ReportMetric(float64(writes), "writes")
		b.ReportMetric(float64(attempts), "write-attempts")
		b.ReportMetric(float64(reads), "reads")
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(wall.Seconds()/quota, "wall/quota")
		b.ReportMetric(last.Sub(first).Seconds()/quota, "graph-span/quota")
		b.Logf("bind 1 group of %d: %d writes (%d attempts), %d reads, wall %s (first Graph request after %s, Graph span %s), write-quota time %.2fs, ratio %.2f",
			members, writes, attempts, reads, wall.Round(time.Millisecond), first.Sub(start).Round(time.Millisecond),
			last.Sub(first).Round(time.Millisecond), quota, wall.Seconds()/quota)
		s.stop()
	}
}

package guard_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	_ "github.com/dirsync/dirsync/ent/runtime"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/guard"
	"github.com/dirsync/dirsync/internal/mapping"
	"github.com/dirsync/dirsync/internal/testdb"
)

// unbound builds an integration with n linked, enabled users none of whom is
// connected any more, and a job with one item each: every item plans a
// disable (X2).
func unbound(tb testing.TB, c *ent.Client, n int) (*ent.Integration, pulid.ID) {
	ctx := auth.SystemContext(context.Background())
	org, err := directory.New(c).CreateOrganization(ctx, fmt.Sprintf("org%d", n))
	require.NoError(tb, err)
	in, err := c.Integration.Create().SetOrganizationID(org.ID).SetName("Alpha").SetTenantID("t").SetClientID("c").
		SetClientSecretSealed("x").SetStatus(integration.StatusAUTHORIZED).SetVerifiedDomains([]string{"alpha.com"}).SetAttributeMappings(mapping.Default()).Save(ctx)
	require.NoError(tb, err)
	job, err := c.Job.Create().SetOrganizationID(org.ID).SetKind("UNBIND_USERS").SetTotal(n).Save(ctx)
	require.NoError(tb, err)
	for i := range n {
		u, err := c.User.Create().SetOrganizationID(org.ID).SetUsername(fmt.Sprintf("u%d", i)).
			SetEmail(fmt.Sprintf("u%d@alpha.com", i)).SetState("ACTIVE").Save(ctx)
		require.NoError(tb, err)
		require.NoError(tb, c.RemoteLink.Create().SetOrganizationID(org.ID).SetIntegrationID(in.ID).SetUserID(u.ID).
			SetRemoteID(fmt.Sprintf("r%d", i)).SetUpn(u.Email).SetStatus("IN_SYNC").SetRemoteEnabled(true).Exec(ctx))
		require.NoError(tb, c.JobItem.Create().SetOrganizationID(org.ID).SetJobID(job.ID).SetIntegrationID(in.ID).
			SetUserID(u.ID).Exec(ctx))
	}
	return in, job.ID
}

// BenchmarkPlannedDisables measures the guard's one-off decision cost: the
// planning of every pending item of a job, for 100 and 1,000 items in the
// same run; per-item cost and the ratio show whether it stays linear.
//
//	go test -run '^$' -bench PlannedDisables -benchtime 3x ./internal/guard/
func BenchmarkPlannedDisables(b *testing.B) {
	db := testdb.New(b, dbmigrate.Migrator{})
	c := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.Postgres, db)))
	ctx := auth.SystemContext(context.Background())
	in100, job100 := unbound(b, c, 100)
	in1000, job1000 := unbound(b, c, 1000)
	var small, large time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		n, err := guard.PlannedDisables(ctx, c, in100, job100, time.Now())
		require.NoError(b, err)
		require.Equal(b, 100, n)
		small += time.Since(start)
		start = time.Now()
		n, err = guard.PlannedDisables(ctx, c, in1000, job1000, time.Now())
		require.NoError(b, err)
		require.Equal(b, 1000, n)
		large += time.Since(start)
	}
	b.ReportMetric(float64(small.Microseconds())/float64(b.N)/100, "µs/item@100")
	b.ReportMetric(float64(large.Microseconds())/float64(b.N)/1000, "µs/item@1000")
	b.ReportMetric(float64(large)/float64(small), "ratio-1000/100")
}

package live_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// A job the mass-deprovision guard holds shows AWAITING_APPROVAL to its
// subscribers on another API process, and the stream goes on — it is not a
// terminal state — until approval lets it finish (issue 14; J2).
func TestJobSubscriptionShowsAwaitingApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rw := e.realWorker()
	a := e.api(api.Config{Deps: graph.Deps{Tenants: rw.app.Tenants}}, pubsub.HubConfig{})
	b := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	integ := rw.integration(a.url, o.admin)
	const n = 30 // beyond the default threshold of 25
	ids := make([]string, n)
	for i := range ids {
		var u struct {
			CreateUser struct{ User struct{ ID string } }
		}
		name := fmt.Sprintf("g%03d", i)
		gql(t, a.url, o.admin, `mutation($in: CreateUserInput!) { createUser(input: $in) { user { id } } }`,
			map[string]any{"in": map[string]any{"username": name, "email": name + "@contoso.com", "state": "ACTIVE"}}, &u)
		ids[i] = u.CreateUser.User.ID
	}

	run := func(query string) string {
		var out map[string]struct{ Jobs []struct{ ID string } }
		gql(t, a.url, o.admin, query, map[string]any{"i": integ, "u": ids}, &out)
		for _, p := range out {
			require.Len(t, p.Jobs, 1)
			return p.Jobs[0].ID
		}
		return ""
	}
	watch := func(id string) *wsClient {
		c, err := dial(t, b.ws, dialOpts{init: bearer(o.readOnly)})
		require.NoError(t, err)
		c.ack()
		c.subscribe("1", jobUpdatedQ, map[string]any{"id": id})
		return c
	}
	bound := watch(run(`mutation($i: ID!, $u: [ID!]!) { bindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`))
	res := bound.collect("1", 60*time.Second)
	require.Equal(t, "SUCCEEDED", field[jobOut](t, res[len(res)-1], "jobUpdated").Status)

	jobID := run(`mutation($i: ID!, $u: [ID!]!) { unbindUsers(integrationID: $i, userIDs: $u) { jobs { id } } }`)
	sub := watch(jobID)
	deadline := time.Now().Add(60 * time.Second)
	for {
		j := field[jobOut](t, sub.nextResult("1", time.Until(deadline)), "jobUpdated")
		require.Contains(t, []string{"QUEUED", "RUNNING", "AWAITING_APPROVAL"}, j.Status)
		if j.Status == "AWAITING_APPROVAL" {
			require.Zero(t, j.Done, "no disable ran")
			break
		}
	}
	gql(t, a.url, o.admin, `mutation($id: ID!) { approveJob(id: $id) { id status } }`, map[string]any{"id": jobID}, nil)
	rest := sub.collect("1", 60*time.Second)
	require.NotEmpty(t, rest)
	require.Equal(t, jobOut{ID: jobID, Status: "SUCCEEDED", Done: n, Total: n}, field[jobOut](t, rest[len(rest)-1], "jobUpdated"))
}

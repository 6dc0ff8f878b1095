package provision_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
)

// Issue 12, P1: concurrent reconciles share `userPrincipalName in (…)` lookups
// (at most 15 UPNs each, Graph's limit); every user still gets exactly its own
// answer: a UPN the batch found is taken over, never created a second time,
// the others are created.
func TestBatchedLookupsTakeOverWhatTheyFind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{sim: graphsim.Config{DisableThrottling: true, Faults: graphsim.Faults{LatencyBase: 20 * time.Millisecond}}})
	gc := e.graph(e.in)
	ctx := context.Background()
	const n, existing = 40, 10
	var users []*ent.User
	for i := range n {
		name := fmt.Sprintf("b%02d", i)
		if i < existing { // already in the tenant, with another case
			_, err := gc.CreateUser(ctx, msgraph.UserFields{AccountEnabled: msgraph.Ptr(true), DisplayName: msgraph.Ptr("Old " + name),
				MailNickname: msgraph.Ptr(name), UserPrincipalName: msgraph.Ptr(strings.ToUpper(name) + "@contoso.com"),
				PasswordProfile: &msgraph.PasswordProfile{Password: "Remote-Pass-1234"}})
			require.NoError(t, err)
		}
		users = append(users, e.user(name, name+"@contoso.com", active))
	}
	e.sim.ClearRequests()
	j := e.bind(e.in, users...)
	tasks := e.tasks()
	require.Len(t, tasks, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.rec.Handle(context.Background(), task, false)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	require.Equal(t, n, e.remoteCount(e.creds.TenantID), "no duplicate")
	require.Equal(t, n-existing, e.writes(http.MethodPost), "only the missing users are created")
	lookups, upnsAsked := 0, 0
	for _, r := range e.sim.Requests() {
		if r.Method == http.MethodGet && r.Path == "/v1.0/users" {
			lookups++
			require.Contains(t, r.Query, "userPrincipalName")
			k := strings.Count(r.Query, "%40contoso.com") + strings.Count(r.Query, "@contoso.com")
			require.LessOrEqual(t, k, msgraph.MaxInValues, r.Query)
			upnsAsked += k
		}
	}
	require.Equal(t, n, upnsAsked, "each UPN looked up once")
	require.Less(t, lookups, n, "lookups of concurrent reconciles leave together")
	results := map[string]int{}
	for _, it := range e.items(j.ID) {
		results[it.Result]++
	}
	require.Equal(t, map[string]int{jobs.ResultTakenOver: existing, jobs.ResultCreated: n - existing}, results)
	require.Equal(t, job.StatusSUCCEEDED, e.job(j.ID).Status)
	for i, u := range users {
		l := e.link(e.in, u)
		require.Equal(t, i < existing, l.TakenOver, u.Username)
		require.Equal(t, e.remote(e.creds.TenantID, u.Email).ID, l.RemoteID)
	}
}

// A create that meets ObjectConflict (the holder is not visible to lookups
// yet: Graph's replication delay) never creates a second user: the attempt is
// retried and, once the holder shows, takes it over.
func TestObjectConflictConvergesToTakeover(t *testing.T) {
	t.Parallel()
	const delay = 700 * time.Millisecond
	e := newEnv(t, envOpts{sim: graphsim.Config{DisableThrottling: true, Faults: graphsim.Faults{ReplicationDelay: delay}}})
	_, err := e.graph(e.in).CreateUser(context.Background(), msgraph.UserFields{AccountEnabled: msgraph.Ptr(true),
		DisplayName: msgraph.Ptr("Hidden"), MailNickname: msgraph.Ptr("hid"), UserPrincipalName: msgraph.Ptr("hid@contoso.com"),
		PasswordProfile: &msgraph.PasswordProfile{Password: "Remote-Pass-1234"}})
	require.NoError(t, err)
	created := time.Now()
	u := e.user("hid", "hid@contoso.com", active)
	j := e.bind(e.in, u)
	tasks := e.tasks()
	require.Len(t, tasks, 1)
	require.Error(t, e.rec.Handle(context.Background(), tasks[0], false), "taken, holder invisible: retry later")
	require.Equal(t, 1, e.remoteCount(e.creds.TenantID))
	time.Sleep(time.Until(created.Add(delay + 100*time.Millisecond)))
	require.NoError(t, e.rec.Handle(context.Background(), tasks[0], false))
	require.Equal(t, 1, e.remoteCount(e.creds.TenantID), "never a second user")
	require.Equal(t, jobs.ResultTakenOver, e.items(j.ID)[0].Result)
	require.True(t, e.link(e.in, u).TakenOver)
}

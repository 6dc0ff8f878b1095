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
	// Lookups are held until every reconcile waits for one, so the test does
	// not depend on how closely a busy machine runs the 40 of them: the
	// first lookups leave alone, the rest queue and leave together.
	release := make(chan struct{})
	var releaseOnce sync.Once
	hold := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/v1.0/users" {
				<-release
			}
			h.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, envOpts{sim: graphsim.Config{DisableThrottling: true, Faults: graphsim.Faults{LatencyBase: 20 * time.Millisecond}}, wrap: hold})
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
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
	go func() {
		// Each reconcile takes its user's and then its UPN's advisory lock
		// right before it looks the UPN up: 2n locks, all waiting.
		defer releaseOnce.Do(func() { close(release) })
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			var locks int
			rows, err := e.client.QueryContext(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
				WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()`)
			if err != nil {
				return
			}
			if rows.Next() {
				_ = rows.Scan(&locks)
			}
			_ = rows.Close()
			if locks >= 2*n {
				return
			}
		}
	}()
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
	// The first lookups (up to 4 in flight) leave with one UPN each, the
	// others queue meanwhile and leave 15 at a time: 4 + 3 requests for 40
	// users, one more if a reconcile was still on its way to the queue.
	require.LessOrEqual(t, lookups, 4+(n-4+msgraph.MaxInValues-1)/msgraph.MaxInValues+1,
		"lookups of concurrent reconciles leave together")
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

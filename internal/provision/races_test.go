package provision_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
)

// gate holds the first POST /v1.0/users: started is closed when it arrives,
// and it goes on once release is called. With after, the request is served
// first (the remote user exists) and only its answer is held back.
type gate struct {
	after    bool
	started  chan struct{}
	released chan struct{}
	first    sync.Once
	rel      sync.Once
}

func newGate(after bool) *gate {
	return &gate{after: after, started: make(chan struct{}), released: make(chan struct{})}
}

func (g *gate) release() { g.rel.Do(func() { close(g.released) }) }

func (g *gate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hold := false
		if r.Method == http.MethodPost && r.URL.Path == "/v1.0/users" {
			g.first.Do(func() { hold = true })
		}
		if !hold {
			h.ServeHTTP(w, r)
			return
		}
		if !g.after {
			close(g.started)
			<-g.released
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		close(g.started)
		<-g.released
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// settle handles task until it finishes (as asynq's retries would).
func settle(t *testing.T, rec *provision.Reconciler, task jobs.ReconcileUser) {
	t.Helper()
	var err error
	for range 20 {
		if err = rec.Handle(context.Background(), task, false); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("task never finished: %v", err)
}

// X3 while the user's create is in flight: the deletion waits for the
// reconcile to record its link, so the deletion's job disables the new
// account rather than leaving it enabled with nothing pointing at it.
func TestDeleteDuringCreateDisablesAccount(t *testing.T) {
	t.Parallel()
	g := newGate(false)
	e := newEnv(t, envOpts{wrap: g.wrap})
	t.Cleanup(g.release) // runs before the server closes: never leave a handler hanging
	u := e.user("dana", "dana@contoso.com", active)
	e.bind(e.in, u)
	task := e.tasks()[0]

	created := make(chan error, 1)
	go func() { created <- e.rec.Handle(context.Background(), task, false) }()
	<-g.started
	deleted := make(chan error, 1)
	go func() {
		_, err := directory.New(e.client).DeleteUser(e.ctx, u.ID)
		deleted <- err
	}()
	time.Sleep(300 * time.Millisecond) // let DeleteUser commit (the bug) or queue behind the reconcile
	g.release()
	require.NoError(t, <-deleted)
	if err := <-created; err != nil {
		settle(t, e.rec, task)
	}
	for _, tk := range e.tasks() {
		settle(t, e.rec, tk)
	}

	r := e.remote(e.creds.TenantID, "dana@contoso.com")
	require.NotNil(t, r, "the create went through")
	require.False(t, r.AccountEnabled, "X3: the deleted user's account must end disabled")
	n, err := e.client.RemoteLink.Query().Count(e.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the orphan link is gone after the disable")
	require.Len(t, e.events(provision.EventUserDeprovision), 1)
}

// Two directory users resolving to one UPN (D4 rewrite) reconciled at the same
// time: one creates the account, the other never takes it over, even while
// the creator's link is not committed yet.
func TestConcurrentSameUPNNeverShareAccount(t *testing.T) {
	t.Parallel()
	g := newGate(true)
	e := newEnv(t, envOpts{wrap: g.wrap})
	t.Cleanup(g.release) // runs before the server closes: never leave a handler hanging
	require.NoError(t, e.client.Integration.UpdateOne(e.in).SetDomains([]string{"contoso.com"}).
		SetDefaultDomain("contoso.com").Exec(e.ctx))
	a := e.user("sam", "sam@contoso.com", active)
	b := e.user("sam2", "sam@fabrikam.org", active)
	j := e.bind(e.in, a, b)
	var ta, tb jobs.ReconcileUser
	for _, tk := range e.tasks() {
		if tk.UserID == a.ID {
			ta = tk
		} else {
			tb = tk
		}
	}

	errA := make(chan error, 1)
	go func() { errA <- e.reconciler().Handle(context.Background(), ta, false) }()
	<-g.started // A's account exists remotely; A has not recorded its link yet
	errB := make(chan error, 1)
	go func() { errB <- e.reconciler().Handle(context.Background(), tb, false) }()
	time.Sleep(300 * time.Millisecond)
	g.release()
	if err := <-errA; err != nil {
		settle(t, e.rec, ta)
	}
	if err := <-errB; err != nil {
		settle(t, e.rec, tb)
	}

	require.Equal(t, 1, e.remoteCount(e.creds.TenantID))
	r := e.remote(e.creds.TenantID, "sam@contoso.com")
	require.NotNil(t, r)
	holders, err := e.client.RemoteLink.Query().Where(remotelink.IntegrationID(e.in.ID), remotelink.RemoteID(r.ID)).All(e.ctx)
	require.NoError(t, err)
	require.Len(t, holders, 1, "exactly one link holds the remote user")
	require.Equal(t, a.ID, *holders[0].UserID)
	require.Equal(t, remotelink.StatusIN_SYNC, holders[0].Status)
	lb := e.link(e.in, b)
	require.Equal(t, remotelink.StatusERROR, lb.Status)
	require.Equal(t, provision.CodeRemoteUserLinked, lb.LastErrorCode)
	require.Empty(t, lb.RemoteID)
	got := e.job(j.ID)
	require.Equal(t, 2, got.Done)
	require.Equal(t, job.StatusPARTIAL, got.Status)
}

// The database refuses a second link to one remote user, whatever the code
// above it does (backstop of the UPN lock).
func TestRemoteIDUniquePerIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.user("ann", "ann@contoso.com")
	b := e.user("bob", "bob@contoso.com")
	mk := func(u *ent.User, remoteID string) error {
		return e.client.RemoteLink.Create().SetOrganizationID(e.org.ID).SetIntegrationID(e.in.ID).
			SetUserID(u.ID).SetRemoteID(remoteID).Exec(e.ctx)
	}
	require.NoError(t, mk(a, "r-1"))
	require.True(t, ent.IsConstraintError(mk(b, "r-1")))
	_, err := e.client.RemoteLink.Delete().Exec(e.ctx)
	require.NoError(t, err)
	require.NoError(t, mk(a, ""), "links without a remote id do not collide")
	require.NoError(t, mk(b, ""))
}

// A throttled last attempt is not final: asynq does not count it (Retry-After)
// and retries it, so the item stays PENDING, no failure is recorded, and the
// later success counts.
func TestThrottledFinalAttemptNotRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{retry: &msgraph.RetryPolicy{MaxAttempts: 1}})
	u := e.user("tay", "tay@contoso.com", active)
	j := e.bind(e.in, u)
	task := e.tasks()[0]
	ctx := context.Background()

	e.sim.SetFaults(graphsim.Faults{Force429: 1, Force429RetryAfter: 2 * time.Second})
	err := e.rec.Handle(ctx, task, true)
	require.Error(t, err)
	require.Positive(t, provision.RetryAfter(err))
	require.Equal(t, jobitem.StatusPENDING, e.items(j.ID)[0].Status)
	require.Equal(t, remotelink.StatusPENDING, e.link(e.in, u).Status)
	require.Empty(t, e.events(provision.EventProvisionFailed))

	e.sim.SetFaults(graphsim.Faults{})
	require.NoError(t, e.rec.Handle(ctx, task, true))
	it := e.items(j.ID)[0]
	require.Equal(t, jobitem.StatusSUCCEEDED, it.Status)
	require.Equal(t, jobs.ResultCreated, it.Result)
	require.Equal(t, job.StatusSUCCEEDED, e.job(j.ID).Status)
	require.Empty(t, e.events(provision.EventProvisionFailed))
}

// Attribute and state changes never wait for a reconcile's Graph calls: the
// reconcile's FOR KEY SHARE on the user row does not block FOR NO KEY UPDATE.
func TestUserChangesDoNotWaitOnReconcile(t *testing.T) {
	t.Parallel()
	g := newGate(false)
	e := newEnv(t, envOpts{wrap: g.wrap})
	t.Cleanup(g.release)
	u := e.user("lee", "lee@contoso.com", active)
	e.bind(e.in, u)
	task := e.tasks()[0]
	created := make(chan error, 1)
	go func() { created <- e.rec.Handle(context.Background(), task, false) }()
	<-g.started // the reconcile holds its locks and waits on Graph

	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
	defer cancel()
	svc := directory.New(e.client)
	_, _, err := svc.UpdateUser(ctx, u.ID, ent.UpdateUserInput{JobTitle: ptr("Pilot")})
	require.NoError(t, err, "UpdateUser must not wait for the reconcile")
	_, _, err = svc.SuspendUser(ctx, u.ID)
	require.NoError(t, err, "SuspendUser must not wait for the reconcile")
	g.release()
	require.NoError(t, <-created)
}

func ptr[T any](v T) *T { return &v }

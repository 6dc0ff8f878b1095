package provision_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/integration"
	"github.com/dirsync/dirsync/ent/job"
	"github.com/dirsync/dirsync/ent/jobitem"
	"github.com/dirsync/dirsync/ent/remotelink"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/provision"
)

// A permanent Graph refusal (a domain the integration still believes verified
// but the tenant no longer does) is recorded with Graph's code and request id,
// fails the item, and is not retried. The job ends PARTIAL next to a success.
func TestPermanentErrorRecordedNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	require.NoError(t, e.client.Integration.UpdateOne(e.in).
		SetVerifiedDomains(append(e.in.VerifiedDomains, "stale.example")).Exec(e.ctx))
	bad := e.user("pat", "pat@stale.example", active)
	good := e.user("gus", "gus@contoso.com", active)
	j := e.bind(e.in, bad, good)
	e.run() // requires nil from Handle: permanent means "finished"

	l := e.link(e.in, bad)
	require.Equal(t, remotelink.StatusERROR, l.Status)
	require.Equal(t, msgraph.CodeBadRequest, l.LastErrorCode)
	require.Contains(t, l.LastErrorMessage, "domain portion")
	require.NotEmpty(t, l.LastErrorRequestID)
	require.Empty(t, l.RemoteID)
	posts := 0
	for _, r := range e.sim.Requests() {
		if r.Method == "POST" && r.Path == "/v1.0/users" {
			posts++
		}
	}
	require.Equal(t, 2, posts, "one refused POST, one good one: no retries")

	got := e.job(j.ID)
	require.Equal(t, job.StatusPARTIAL, got.Status)
	require.Equal(t, 2, got.Done)
	require.Equal(t, 1, got.Failed)
	evs := e.events(provision.EventProvisionFailed)
	require.Len(t, evs, 1)
	require.Contains(t, evs[0].Detail, "request-id")
	var failed *ent.JobItem
	for _, it := range e.items(j.ID) {
		if it.Status == jobitem.StatusFAILED {
			failed = it
		}
	}
	require.Equal(t, jobs.ResultError, failed.Result)
	require.Equal(t, msgraph.CodeBadRequest, failed.ErrorCode)
}

// Transient failures return an error for asynq to retry and leave the item
// PENDING; the last attempt records the failure. 429's Retry-After reaches
// RetryAfter. The job ends FAILED when every item failed.
func TestTransientErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{retry: &msgraph.RetryPolicy{MaxAttempts: 1}})
	u := e.user("tia", "tia@contoso.com", active)
	j := e.bind(e.in, u)
	tasks := e.tasks()
	ctx := context.Background()

	e.sim.SetFaults(graphsim.Faults{Force429: 1, Force429RetryAfter: 3 * time.Second})
	err := e.rec.Handle(ctx, tasks[0], false)
	require.Error(t, err)
	require.True(t, msgraph.IsThrottled(err))
	require.Equal(t, 3*time.Second, provision.RetryAfter(err))
	require.Equal(t, jobitem.StatusPENDING, e.items(j.ID)[0].Status)
	l := e.link(e.in, u)
	require.Equal(t, remotelink.StatusPENDING, l.Status)
	require.Equal(t, msgraph.CodeTooManyRequests, l.LastErrorCode)
	require.Equal(t, job.StatusRUNNING, e.job(j.ID).Status)

	e.sim.SetFaults(graphsim.Faults{ServerErrorRate: 1})
	err = e.rec.Handle(ctx, tasks[0], false)
	require.Error(t, err)
	require.Zero(t, provision.RetryAfter(err))
	require.Equal(t, jobitem.StatusPENDING, e.items(j.ID)[0].Status)

	// Final attempt: recorded, and still returned so asynq archives it.
	err = e.rec.Handle(ctx, tasks[0], true)
	require.Error(t, err)
	it := e.items(j.ID)[0]
	require.Equal(t, jobitem.StatusFAILED, it.Status)
	require.Equal(t, jobs.ResultError, it.Result)
	require.Equal(t, remotelink.StatusERROR, e.link(e.in, u).Status)
	got := e.job(j.ID)
	require.Equal(t, job.StatusFAILED, got.Status)
	require.NotNil(t, got.FinishedAt)
	require.Len(t, e.events(provision.EventProvisionFailed), 1)

	// A late duplicate after recovery converges the remote state but never
	// counts the item twice.
	e.sim.SetFaults(graphsim.Faults{})
	require.NoError(t, e.rec.Handle(ctx, tasks[0], false))
	require.NotNil(t, e.remote(e.creds.TenantID, "tia@contoso.com"))
	require.Equal(t, remotelink.StatusIN_SYNC, e.link(e.in, u).Status)
	got = e.job(j.ID)
	require.Equal(t, 1, got.Done)
	require.Equal(t, job.StatusFAILED, got.Status)
}

// Our own POST whose answer was lost (the object exists, its UPN is taken, yet
// replication hides it): the reconcile retries rather than fail or duplicate,
// and takes the object over once visible.
func TestLostCreateAnswerConverges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.sim.SetFaults(graphsim.Faults{ReplicationDelay: 700 * time.Millisecond})
	// "Our" earlier POST, from a client the reconciler does not share.
	_, err := e.graph(e.in).CreateUser(context.Background(), msgraph.UserFields{AccountEnabled: msgraph.Ptr(false),
		DisplayName: msgraph.Ptr("Lu"), MailNickname: msgraph.Ptr("lu"), UserPrincipalName: msgraph.Ptr("lu@contoso.com"),
		PasswordProfile: &msgraph.PasswordProfile{Password: "Xy-12345-abcdef"}})
	require.NoError(t, err)
	u := e.user("lu", "lu@contoso.com")
	j := e.bind(e.in, u)
	task := e.tasks()[0]
	err = e.rec.Handle(context.Background(), task, false)
	require.Error(t, err, "UPN taken but invisible: retry later")
	require.Equal(t, jobitem.StatusPENDING, e.items(j.ID)[0].Status)
	require.Eventually(t, func() bool {
		return e.rec.Handle(context.Background(), task, false) == nil
	}, 5*time.Second, 100*time.Millisecond)
	require.Equal(t, 1, e.remoteCount(e.creds.TenantID))
	require.Equal(t, jobs.ResultTakenOver, e.items(j.ID)[0].Result)
	require.NotEmpty(t, e.link(e.in, u).RemoteID)
}

// A remote user deleted in Entra by someone else (PATCH 404 long after
// creation) is not created again behind the admin's back: the link becomes
// REMOTE_DELETED and the item SKIPPED (issue 14); a forced reconcile (resync)
// creates it again, never leaving a dangling link.
func TestRemoteDeletedIsRecreatedOnlyByResync(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := newEnv(t, envOpts{})
	u := e.user("rex", "rex@contoso.com", active)
	e.bind(e.in, u)
	e.run()
	old := e.link(e.in, u).RemoteID
	require.NoError(t, e.graph(e.in).DeleteUser(context.Background(), old))
	// Pretend creation was long ago (outside the replication window).
	require.NoError(t, e.client.RemoteLink.UpdateOne(e.link(e.in, u)).SetRemoteCreatedAt(now.Add(-time.Hour)).Exec(e.ctx))
	require.NoError(t, e.client.User.UpdateOne(u).SetJobTitle("Pilot").Exec(e.ctx))
	j := e.start(jobs.JobUserChange, "", jobs.Target{IntegrationID: e.in.ID, UserID: u.ID})
	e.run()
	require.Nil(t, e.remote(e.creds.TenantID, "rex@contoso.com"))
	require.Equal(t, remotelink.StatusREMOTE_DELETED, e.link(e.in, u).Status)
	require.Equal(t, jobs.ResultSkipped, e.items(j.ID)[0].Result)
	// Another ordinary change still creates nothing.
	require.NoError(t, e.client.User.UpdateOne(u).SetJobTitle("Captain").Exec(e.ctx))
	e.start(jobs.JobUserChange, "", jobs.Target{IntegrationID: e.in.ID, UserID: u.ID})
	e.run()
	require.Nil(t, e.remote(e.creds.TenantID, "rex@contoso.com"))

	j = e.start(jobs.JobResyncUsers, "", jobs.Target{IntegrationID: e.in.ID, UserID: u.ID, Force: true})
	e.run()
	r := e.remote(e.creds.TenantID, "rex@contoso.com")
	require.NotNil(t, r)
	require.NotEqual(t, old, r.ID)
	require.Equal(t, r.ID, e.link(e.in, u).RemoteID)
	require.Equal(t, remotelink.StatusIN_SYNC, e.link(e.in, u).Status)
	require.Equal(t, jobs.ResultCreated, e.items(j.ID)[0].Result)
}

// I5/I6: a de-authorized or deleted integration gets nothing sent; the item is
// SKIPPED and the job still completes.
func TestUnauthorizedIntegrationSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	u := e.user("sky", "sky@contoso.com", active)
	j := e.bind(e.in, u)
	require.NoError(t, e.client.Integration.UpdateOne(e.in).SetStatus(integration.StatusUNAUTHORIZED).Exec(e.ctx))
	e.sim.ClearRequests()
	e.run()
	require.Empty(t, e.sim.Requests())
	require.Equal(t, jobs.ResultSkipped, e.items(j.ID)[0].Result)
	require.Equal(t, job.StatusSUCCEEDED, e.job(j.ID).Status)
	require.Nil(t, e.link(e.in, u))
	require.Empty(t, e.events())
}

// Many items of one job handled concurrently under 5xx faults and replication
// delay, each task retried until it finishes (as asynq would): every user
// converges to exactly one remote account and the job counts each item once.
func TestConcurrentJobUnderFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{retry: &msgraph.RetryPolicy{MaxAttempts: 2, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}})
	e.sim.SetFaults(graphsim.Faults{ServerErrorRate: 0.2, ReplicationDelay: 200 * time.Millisecond})
	var users []*ent.User
	for i := range 24 {
		users = append(users, e.user(fmt.Sprintf("c%02d", i), fmt.Sprintf("c%02d@contoso.com", i), active))
	}
	j := e.bind(e.in, users...)
	tasks := e.tasks()
	// Every task twice: duplicates must be harmless.
	tasks = append(tasks, tasks...)
	work := make(chan jobs.ReconcileUser)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := e.reconciler() // one per "worker process"
			for task := range work {
				for attempt := 0; ; attempt++ {
					err := rec.Handle(context.Background(), task, false)
					if err == nil {
						break
					}
					if attempt > 50 {
						t.Errorf("task %s never finished: %v", task.UserID, err)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for _, task := range tasks {
		work <- task
	}
	close(work)
	wg.Wait()
	require.Equal(t, 24, e.remoteCount(e.creds.TenantID))
	got := e.job(j.ID)
	require.Equal(t, 24, got.Done)
	require.Equal(t, job.StatusSUCCEEDED, got.Status)
	for _, u := range users {
		l := e.link(e.in, u)
		require.Equal(t, remotelink.StatusIN_SYNC, l.Status)
		require.Equal(t, e.remote(e.creds.TenantID, u.Username+"@contoso.com").ID, l.RemoteID)
	}
}

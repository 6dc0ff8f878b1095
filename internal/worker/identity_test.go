package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/worker"
)

// foreignTasks fills the stack's Redis as another deployment (or this one
// before its database was reset) would have left it: completed tasks
// "outbox-1" … "outbox-<completed>" still retained, and "outbox-<completed+1>"
// … "outbox-<completed+scheduled>" waiting to run, all in our queue with task
// ids built from row ids as earlier versions did. Their payloads name objects
// that do not exist here.
func (s *stack) foreignTasks(completed, scheduled int) {
	s.t.Helper()
	client := asynq.NewClient(s.redis)
	defer client.Close()
	payload := func(i int) []byte {
		b, err := json.Marshal(jobs.ReconcileUser{OrgID: "ORforeign", IntegrationID: "INforeign",
			UserID: pulid.ID(fmt.Sprint("USforeign", i)), JobID: "JBforeign", ItemID: pulid.ID(fmt.Sprint("JIforeign", i))})
		require.NoError(s.t, err)
		return b
	}
	for i := 1; i <= completed; i++ {
		_, err := client.Enqueue(asynq.NewTask(jobs.KindReconcileUser, payload(i)), asynq.TaskID(fmt.Sprintf("outbox-%d", i)),
			asynq.Queue(worker.DefaultQueue), asynq.Retention(worker.DefaultRetention))
		require.NoError(s.t, err)
	}
	// The other deployment's worker runs them to completion.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := asynq.NewServer(s.redis, asynq.Config{Queues: map[string]int{worker.DefaultQueue: 1}, Concurrency: 4,
		TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.FatalLevel, BaseContext: func() context.Context { return ctx }})
	require.NoError(s.t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	ins := asynq.NewInspector(s.redis)
	defer ins.Close()
	require.Eventually(s.t, func() bool {
		qi, err := ins.GetQueueInfo(worker.DefaultQueue)
		return err == nil && qi.Completed == completed
	}, 20*time.Second, 20*time.Millisecond)
	srv.Shutdown()
	for i := completed + 1; i <= completed+scheduled; i++ {
		_, err := client.Enqueue(asynq.NewTask(jobs.KindReconcileUser, payload(i)), asynq.TaskID(fmt.Sprintf("outbox-%d", i)),
			asynq.Queue(worker.DefaultQueue), asynq.ProcessIn(time.Hour))
		require.NoError(s.t, err)
	}
}

// TestWorkSurvivesARedisThatRemembersOtherDatabases: a fresh database (row ids
// from 1) meets a Redis that still holds tasks named after another database's
// rows 1…60, completed and scheduled. Every new row must still run: task ids
// are the rows' own UUIDs, not their ids. Before, each enqueue answered "task id
// conflicts", the relay counted that as delivered and the job stayed QUEUED.
func TestWorkSurvivesARedisThatRemembersOtherDatabases(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOpts{sim: graphsim.Config{DisableThrottling: true}})
	s.foreignTasks(40, 20)
	s.startWorker(nil)
	ids := s.users(0, 60)
	jobIDs := s.bind(ids, 60)
	s.waitConverged(60, 30*time.Second)
	s.checkNoDuplicates(60)
	j, err := s.client.Job.Get(s.ctx, jobIDs[0])
	require.NoError(t, err)
	require.Equal(t, "SUCCEEDED", string(j.Status))

	ins := asynq.NewInspector(s.redis)
	defer ins.Close()
	info, err := ins.GetTaskInfo(worker.DefaultQueue, "outbox-50")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateScheduled, info.State, "the other deployment's task is left alone")
}

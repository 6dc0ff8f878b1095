package worker

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/logctx"
)

// A task's handler runs with the job and integration ids in its context, so
// every log line it writes carries them (internal/logctx).
func TestTaskContextCarriesJobAndIntegration(t *testing.T) {
	var got context.Context
	w := &Worker{cfg: Config{Handler: HandlerFunc(func(ctx context.Context, _ jobs.ReconcileUser, _ bool) error {
		got = ctx
		return nil
	})}}
	payload, _ := json.Marshal(jobs.ReconcileUser{OrgID: "ORa", IntegrationID: "INb", UserID: "USc", JobID: "JBd"})
	require.NoError(t, w.reconcileUser(context.Background(), asynq.NewTask(jobs.KindReconcileUser, payload)))
	require.Equal(t, "JBd", logctx.Value(got, "job"))
	require.Equal(t, "INb", logctx.Value(got, "integration"))
	require.Empty(t, logctx.Value(got, "user"), "no user ids in every line")
}

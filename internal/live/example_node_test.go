package live_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/pubsub"
)

// The runnable example examples/follow-job (the graphql-ws npm client) against
// the real handler: it prints the job's progress and exits 0 on SUCCEEDED.
// Skipped unless node is installed and `npm install` ran in the example.
func TestNodeFollowJobExample(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs("../../examples/follow-job")
	require.NoError(t, err)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "graphql-ws")); err != nil {
		t.Skip("run `npm install` in examples/follow-job first")
	}
	e := newEnv(t)
	p := e.api(api.Config{}, pubsub.HubConfig{})
	o := e.org("acme")
	w := e.startJob(o.id, 20)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "follow-job.mjs", string(w.job.ID))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DIRSYNC_KEY="+o.readOnly, "DIRSYNC_WS_URL="+p.ws)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	waitFor(t, 20*time.Second, func() bool { return p.hub.Stats().Subscriptions == 1 })
	require.NoError(t, w.runAll(2))
	require.NoError(t, cmd.Wait(), "output:\n%s", out.String())
	require.Contains(t, out.String(), "QUEUED 0/20")
	require.Contains(t, out.String(), "SUCCEEDED 20/20")
	t.Logf("node output:\n%s", out.String())
}

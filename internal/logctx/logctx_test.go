package logctx_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/logctx"
)

func TestContextIDsOnEveryLineOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logctx.NewHandler(slog.NewTextHandler(&buf, nil)))
	ctx := logctx.With(context.Background(), slog.String("request_id", "r1"))
	ctx = logctx.With(ctx, slog.String("job", "JB1"), slog.String("integration", "IN1"))

	log.InfoContext(ctx, "plain")
	log.With("integration", "IN1").InfoContext(ctx, "logger has it")
	log.InfoContext(ctx, "call has it", "job", "JB1")
	log.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 4)
	for _, l := range lines[:3] {
		require.Contains(t, l, "request_id=r1")
		require.Equal(t, 1, strings.Count(l, "job=JB1"), l)
		require.Equal(t, 1, strings.Count(l, "integration=IN1"), l)
	}
	require.NotContains(t, lines[3], "request_id")
	require.Equal(t, "JB1", logctx.Value(ctx, "job"))
}

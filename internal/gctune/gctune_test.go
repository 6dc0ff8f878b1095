package gctune_test

import (
	"runtime/debug"
	"testing"

	"github.com/dirsync/dirsync/internal/gctune"
)

func TestApply(t *testing.T) {
	// Not parallel: the GC percent is the process's.
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}
	}
	if got := gctune.Apply(env("")); got != gctune.DefaultPercent {
		t.Fatalf("GOGC unset: Apply = %d, want %d", got, gctune.DefaultPercent)
	}
	if got := debug.SetGCPercent(100); got != gctune.DefaultPercent {
		t.Fatalf("GOGC unset: the runtime runs with %d, want %d", got, gctune.DefaultPercent)
	}
	// The operator's GOGC (here 100, as the runtime applied it) stays.
	if got := gctune.Apply(env("100")); got != 100 {
		t.Fatalf("GOGC=100: Apply = %d, want 100", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC=100: the runtime runs with %d, want 100", got)
	}
}

package main

import (
	"context"
	"flag"
	"io"

	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/devenv"
)

// runDev is the newcomer's default: local database created and migrated, a
// default organization and admin key, GraphiQL, everything in one process.
func runDev(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	stateDir := fs.String("state-dir", ".dirsync", "where dev keeps its generated key material (gitignored)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	cfg.Playground, cfg.Introspection, cfg.AllowCustomGraphURLs = true, true, true
	cfg.AllowInsecureGraphURLs = true // the embedded emulator listens on 127.0.0.1 over http
	log := cfg.Logger()
	if err := app.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	env, err := devenv.Prepare(ctx, cfg, *stateDir, log)
	if err != nil {
		return err
	}
	defer env.Close()
	env.PrintWelcome(out)
	return env.Run(ctx)
}

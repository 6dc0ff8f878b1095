// Command dirsync is the whole service in one binary: the API server, the worker,
// the all-in-one dev mode, migrations, the Graph emulator and small admin helpers.
// This package only parses flags and wires; the work lives in internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dirsync/dirsync/internal/gctune"
)

const usage = `dirsync — directory sync into Microsoft 365 / Entra ID

Usage:
  dirsync dev                      API + worker + embedded Graph emulator, for a first look
  dirsync serve                    the GraphQL API server
  dirsync worker [--concurrency N] [--no-relay]
                                   the background worker: reconcile tasks + outbox relay
  dirsync migrate                  apply database migrations
  dirsync org create NAME          create an organization
  dirsync apikey create --org NAME --role admin|readonly [--name LABEL]
                                   create an API key (printed once)
  dirsync secrets rotate           re-seal every stored secret under the current key
  dirsync graphsim [--addr A] [--seed-users N] [--config FILE]
                                   run the Microsoft Graph emulator on its own
  dirsync healthcheck [--url U]    GET a probe (default /healthz on DIRSYNC_LISTEN); exit 0 on 200
  dirsync version                  version, commit and build time (also --version)

Configuration comes from DIRSYNC_* environment variables (see README.md).
`

func main() {
	gctune.Apply(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		// Stopped by SIGINT/SIGTERM and drained: that is a clean exit, not a
		// failure (make would otherwise report "*** Error 1" on Ctrl-C).
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return
		}
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "dirsync:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return flag.ErrHelp
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "dev":
		return runDev(ctx, rest, out)
	case "serve":
		return runServe(ctx, rest)
	case "worker":
		return runWorker(ctx, rest)
	case "migrate":
		return runMigrate(ctx, rest, out)
	case "org":
		return runOrg(ctx, rest, out)
	case "apikey":
		return runAPIKey(ctx, rest, out)
	case "graphsim":
		return runGraphsim(ctx, rest, out)
	case "healthcheck":
		return runHealthcheck(ctx, rest, out)
	case "version", "--version", "-version":
		fmt.Fprint(out, versionInfo())
		return nil
	case "secrets":
		return runSecrets(ctx, rest, out)
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

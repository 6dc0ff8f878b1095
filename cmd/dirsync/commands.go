package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/dirsync/dirsync/internal/app"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/config"
	"github.com/dirsync/dirsync/internal/dbmigrate"
	"github.com/dirsync/dirsync/internal/directory"
	"github.com/dirsync/dirsync/internal/gqlerr"
	"github.com/dirsync/dirsync/internal/graphsim"
)

// open reads the config and connects; requireSecretKey as in config.Validate.
func open(ctx context.Context, requireSecretKey bool) (*app.App, error) {
	cfg, err := config.FromEnv()
	if err == nil {
		err = cfg.Validate(requireSecretKey)
	}
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return app.Open(ctx, cfg, cfg.Logger())
}

func runServe(ctx context.Context, args []string) error {
	if err := flag.NewFlagSet("serve", flag.ContinueOnError).Parse(args); err != nil {
		return err
	}
	a, err := open(ctx, true)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.ServeAPI(ctx)
}

func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	if err := flag.NewFlagSet("migrate", flag.ContinueOnError).Parse(args); err != nil {
		return err
	}
	a, err := open(ctx, false)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := dbmigrate.Up(ctx, a.DB); err != nil {
		return err
	}
	fmt.Fprintln(out, "migrations applied")
	return nil
}

func runOrg(ctx context.Context, args []string, out io.Writer) error {
	if len(args) != 2 || args[0] != "create" {
		return errors.New("usage: dirsync org create NAME")
	}
	a, err := open(ctx, false)
	if err != nil {
		return err
	}
	defer a.Close()
	o, err := directory.New(a.Ent).CreateOrganization(auth.SystemContext(ctx), args[1])
	if err != nil {
		return plain(err)
	}
	fmt.Fprintf(out, "organization %q created: %s\n", o.Name, o.ID)
	return nil
}

func runAPIKey(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: dirsync apikey create --org NAME --role admin|readonly [--name LABEL]")
	}
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	org := fs.String("org", "", "organization name")
	roleName := fs.String("role", "admin", "admin or readonly")
	name := fs.String("name", "cli", "a label for the key")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *org == "" {
		return errors.New("--org is required")
	}
	role, err := auth.ParseRole(*roleName)
	if err != nil {
		return err
	}
	a, err := open(ctx, false)
	if err != nil {
		return err
	}
	defer a.Close()
	sys := auth.SystemContext(ctx)
	o, err := directory.New(a.Ent).OrganizationByName(sys, *org)
	if err != nil {
		return plain(err)
	}
	key, _, err := auth.CreateAPIKey(sys, a.Ent, o.ID, *name, role)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s\n# shown once: store it now; only its hash is kept\n", key)
	return nil
}

// plain turns an error the API would show a client (a bad name, a taken
// name, an unknown organization) into its one-line message; anything else
// keeps its details for the operator.
func plain(err error) error {
	if e := gqlerr.Translate(err); e.Code != gqlerr.Internal {
		return errors.New(e.Message)
	}
	return err
}

func runGraphsim(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	seed := fs.Int("seed-users", 0, "users to seed into the default tenant")
	cfgFile := fs.String("config", "", "emulator config file (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return graphsim.RunStandalone(ctx, *addr, *seed, *cfgFile, out)
}

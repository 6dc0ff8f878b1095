package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// buildTime is set at link time (-ldflags "-X main.buildTime=..."); the VCS
// commit time stands in without it.
var buildTime string

// versionInfo describes the binary from its embedded build information.
func versionInfo() string {
	version, commit, when, modified := "(devel)", "unknown", buildTime, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				if when == "" {
					when = s.Value + " (commit)"
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += "-dirty"
	}
	if when == "" {
		when = "unknown"
	}
	return fmt.Sprintf("dirsync %s\n  commit: %s\n  built:  %s\n  go:     %s %s/%s\n",
		version, commit, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// runHealthcheck is the container HEALTHCHECK (the image has no shell or
// curl): GET a probe URL, exit 0 only on 200.
func runHealthcheck(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "", "probe URL (default: /healthz on DIRSYNC_LISTEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		*url = "http://" + localAddr(os.Getenv("DIRSYNC_LISTEN"), "127.0.0.1:8080") + "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status + ": " + strings.TrimSpace(string(body)))
	}
	fmt.Fprintln(out, strings.TrimSpace(string(body)))
	return nil
}

// localAddr turns a listen address (":8080", "0.0.0.0:8080") into one to dial.
func localAddr(listen, def string) string {
	if listen == "" {
		return def
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return def
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

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

// Set at link time (-ldflags "-X main.buildTime=... -X main.commit=...") by
// make build and the Dockerfile. Go's own VCS stamp stands in without them;
// it is missing when .git is not there (the image's build context).
var buildTime, commit string

// versionInfo describes the binary from its embedded build information.
func versionInfo() string {
	version, rev, when, modified := "(devel)", commit, buildTime, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				if when == "" {
					when = s.Value + " (commit)"
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if modified {
		rev += "-dirty"
	}
	if when == "" {
		when = "unknown"
	}
	return fmt.Sprintf("dirsync %s\n  commit: %s\n  built:  %s\n  go:     %s %s/%s\n",
		version, rev, when, runtime.Version(), runtime.GOOS, runtime.GOARCH)
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

package msgraph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults point at the real Microsoft cloud; tests point both at the emulator.
const (
	DefaultLoginBaseURL = "https://login.microsoftonline.com"
	DefaultGraphBaseURL = "https://graph.microsoft.com/v1.0"
	graphScope          = "https://graph.microsoft.com/.default"
)

// Limiter is the hook for a budget shared by every client of one app+tenant
// (the Redis-backed write quota of DESIGN.md). Wait runs before every attempt;
// Penalize runs on a 429 so the whole tenant pauses, not only this caller.
type Limiter interface {
	// writes is how many Graph writes the request carries (0 for a read; a
	// $batch counts its inner writes), so budgets can hold writes to the write
	// quota and reads to the resource-unit bucket separately.
	Wait(ctx context.Context, writes int) error
	Penalize(ctx context.Context, d time.Duration)
}

// Feedback is implemented by Limiters that adapt to Graph's answers. After a
// Wait that returned nil, the client calls Answered exactly once for that
// attempt: with Graph's status and headers, or status 0 when no answer came.
type Feedback interface {
	Answered(ctx context.Context, writes, status int, header http.Header)
}

// Observer is told about every HTTP request the client sends to Graph (each
// attempt, retries included), for metrics. status is 0 when no answer came
// (transport error). It must not block.
type Observer interface {
	ObserveRequest(ctx context.Context, method string, status int, d time.Duration)
}

// Config configures a Client. Zero values get defaults from SetDefaults.
type Config struct {
	TenantID     string
	ClientID     string
	ClientSecret string

	LoginBaseURL string // default https://login.microsoftonline.com
	GraphBaseURL string // default https://graph.microsoft.com/v1.0
	// Scope of the token; default https://graph.microsoft.com/.default. National
	// clouds use their own Graph host here (e.g. https://graph.microsoft.us/.default).
	Scope string

	HTTPClient *http.Client // used for both token and Graph calls
	Clock      func() time.Time
	// Sleep waits d or until ctx ends; tests replace it to retry without sleeping.
	Sleep func(ctx context.Context, d time.Duration) error

	Retry    RetryPolicy
	Limiter  Limiter  // nil = no shared budget
	Observer Observer // nil = not observed
	Logger   *slog.Logger

	// ReplicationWindow is how long after creating an object this client treats
	// a 404 about it as replication delay and retries. Default 2 min.
	ReplicationWindow time.Duration
}

// SetDefaults fills every unset field.
func (c *Config) SetDefaults() {
	if c.LoginBaseURL == "" {
		c.LoginBaseURL = DefaultLoginBaseURL
	}
	if c.GraphBaseURL == "" {
		c.GraphBaseURL = DefaultGraphBaseURL
	}
	if c.Scope == "" {
		c.Scope = graphScope
	}
	c.LoginBaseURL = strings.TrimRight(c.LoginBaseURL, "/")
	c.GraphBaseURL = strings.TrimRight(c.GraphBaseURL, "/")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleepCtx
	}
	c.Retry.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReplicationWindow <= 0 {
		c.ReplicationWindow = 2 * time.Minute
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.TenantID) == "" {
		errs = append(errs, errors.New("tenant id is required"))
	} else if strings.ContainsAny(c.TenantID, "/?#% ") {
		errs = append(errs, errors.New("tenant id contains characters not allowed in a URL path segment"))
	}
	if strings.TrimSpace(c.ClientID) == "" {
		errs = append(errs, errors.New("client id is required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("client secret is required"))
	}
	for name, raw := range map[string]string{"login base URL": c.LoginBaseURL, "graph base URL": c.GraphBaseURL} {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute http(s) URL", name, raw))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("msgraph: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Package tenant turns an Integration row into a Microsoft Graph client: it opens
// the sealed client secret, enforces which Graph/login hosts an integration may
// point at (a secret and tokens would otherwise go wherever an admin points: SSRF),
// plugs in the app+tenant's shared throttle budget, and keeps one client per
// integration so tokens are reused across reconciles.
package tenant

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/internal/egress"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/secrets"
	"github.com/dirsync/dirsync/internal/throttle"
)

// Config configures a Connector.
type Config struct {
	Keyring *secrets.Keyring
	// Budgets is the shared Redis budget; nil means none (tests of single calls).
	Budgets *throttle.Budgets
	// AllowCustomURLs lets integrations use Graph/login base URLs other than
	// Microsoft's (the emulator in dev and tests). Off in production.
	AllowCustomURLs bool
	// AllowInsecureURLs lets those URLs use plain http and reach loopback,
	// private and link-local addresses (an emulator on 127.0.0.1). Off in
	// production; see internal/egress.
	AllowInsecureURLs bool
	// HTTPClient replaces the policy-enforcing client (tests). Redirects are
	// never followed whatever the client.
	HTTPClient *http.Client
	// Retry overrides the client's retry policy (tests and benchmarks).
	Retry  *msgraph.RetryPolicy
	Logger *slog.Logger
	// Observer, when set, gives each integration's client its request
	// observer (metrics by integration).
	Observer func(integrationID string) msgraph.Observer
}

// Connector builds Graph clients for integrations.
type Connector struct {
	cfg     Config
	mu      sync.Mutex
	clients map[pulid.ID]cached
}

type cached struct {
	version time.Time
	client  *msgraph.Client
}

// New validates cfg.
func New(cfg Config) (*Connector, error) {
	if cfg.Keyring == nil {
		return nil, errors.New("tenant: Keyring required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		// Many reconciles call one Graph host at once: keep their connections
		// (net/http keeps 2 idle per host by default, so the rest would be
		// closed and re-dialled, TLS handshake included, on every call).
		t := cfg.policy().Transport()
		t.MaxIdleConnsPerHost = 256
		cfg.HTTPClient = &http.Client{Transport: t, Timeout: 60 * time.Second, CheckRedirect: egress.NoRedirect}
	}
	return &Connector{cfg: cfg, clients: map[pulid.ID]cached{}}, nil
}

// ErrCustomURL is returned when an integration names a Graph or login host the
// server does not allow.
var ErrCustomURL = errors.New("custom Graph and login URLs are not allowed on this server")

func (cfg Config) policy() egress.Policy { return egress.Policy{AllowInsecure: cfg.AllowInsecureURLs} }

// CheckURLs validates an integration's optional base URLs: absolute
// http(s), Microsoft's own unless custom URLs are allowed, and https to a
// host that is not a literal loopback/private address unless insecure URLs
// are allowed (an *egress.BlockedError). Names are checked again when
// dialled.
func (c *Connector) CheckURLs(graphURL, loginURL string) error {
	for _, raw := range []string{graphURL, loginURL} {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("%q is not an absolute http(s) URL", raw)
		}
		if !c.cfg.AllowCustomURLs && !isMicrosoft(u) {
			return ErrCustomURL
		}
		if err := c.cfg.policy().CheckURL(u); err != nil {
			return err
		}
	}
	return nil
}

func isMicrosoft(u *url.URL) bool {
	if u.Scheme != "https" {
		return false
	}
	switch u.Hostname() {
	case "graph.microsoft.com", "login.microsoftonline.com":
		return true
	}
	return false
}

// SealSecret seals a client secret for the integration row it will be stored in.
func (c *Connector) SealSecret(integrationID pulid.ID, secret string) (string, error) {
	return c.cfg.Keyring.Seal([]byte(secret), []byte(integrationID))
}

// Client returns the Graph client of the integration, reusing the one built for
// the same row version.
func (c *Connector) Client(in *ent.Integration) (*msgraph.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[in.ID]; ok && cl.version.Equal(in.UpdatedAt) {
		return cl.client, nil
	}
	client, err := c.build(in)
	if err != nil {
		return nil, err
	}
	c.clients[in.ID] = cached{version: in.UpdatedAt, client: client}
	return client, nil
}

// Build returns a fresh client (authorization wants a fresh token).
func (c *Connector) Build(in *ent.Integration) (*msgraph.Client, error) { return c.build(in) }

func (c *Connector) build(in *ent.Integration) (*msgraph.Client, error) {
	if err := c.CheckURLs(in.GraphBaseURL, in.LoginBaseURL); err != nil {
		return nil, err
	}
	secret, err := c.cfg.Keyring.Open(in.ClientSecretSealed, []byte(in.ID))
	if err != nil {
		return nil, fmt.Errorf("tenant: integration %s: %w", in.ID, err)
	}
	cfg := msgraph.Config{
		TenantID:     in.TenantID,
		ClientID:     in.ClientID,
		ClientSecret: string(secret),
		LoginBaseURL: in.LoginBaseURL,
		GraphBaseURL: in.GraphBaseURL,
		HTTPClient:   c.cfg.HTTPClient,
		Logger:       c.cfg.Logger.With("integration", string(in.ID)),
	}
	if c.cfg.Observer != nil {
		cfg.Observer = c.cfg.Observer(string(in.ID))
	}
	if c.cfg.Retry != nil {
		cfg.Retry = *c.cfg.Retry
	} else {
		// Graph's 500/502 are mostly passing; every call dirsync makes is safe
		// to repeat or converges (a repeated create meets ObjectConflict and
		// is taken over), so retry them here rather than requeue the whole
		// reconcile, which costs seconds of task backoff (issue 12).
		cfg.Retry.Retry5xx = true
	}
	if c.cfg.Budgets != nil {
		cfg.Limiter = c.cfg.Budgets.ForWrites(BudgetKey(in.TenantID, in.ClientID), WriteBudget(in))
	}
	return msgraph.New(cfg)
}

// BudgetKey names the throttle budget of an app+tenant: Graph throttles per app
// per tenant, so two integrations with the same app and tenant share one.
func BudgetKey(tenantID, clientID string) string { return tenantID + "/" + clientID }

// WriteBudget is the integration's write bucket: its own size and refill where
// set, Graph's documented quota otherwise.
func WriteBudget(in *ent.Integration) throttle.WriteBudget {
	w := throttle.WriteBudget{Size: throttle.DefaultWriteSize, RefillPerSecond: throttle.DefaultWriteRefillPerSecond}
	if in.WriteBudgetSize != nil {
		w.Size = *in.WriteBudgetSize
	}
	if in.WriteBudgetRefillPerSecond != nil {
		w.RefillPerSecond = *in.WriteBudgetRefillPerSecond
	}
	return w
}

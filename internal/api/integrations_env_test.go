package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/ent"
	"github.com/dirsync/dirsync/ent/schema/pulid"
	"github.com/dirsync/dirsync/graph"
	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/auth"
	"github.com/dirsync/dirsync/internal/graphsim"
	"github.com/dirsync/dirsync/internal/jobs"
	"github.com/dirsync/dirsync/internal/msgraph"
	"github.com/dirsync/dirsync/internal/secrets"
	tenantconn "github.com/dirsync/dirsync/internal/tenant"
)

// simEnv is env plus a Graph emulator behind httptest and a tenant connector
// (sealing key, SSRF rule) handed to the resolvers.
type simEnv struct {
	*env
	sim    *graphsim.Sim
	simURL string
}

func newSimEnv(t *testing.T, allowCustomURLs bool) *simEnv {
	t.Helper()
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return newSimEnvWith(t, tenantconn.Config{
		AllowCustomURLs: allowCustomURLs,
		// The emulator listens on 127.0.0.1 over plain http.
		AllowInsecureURLs: allowCustomURLs,
		HTTPClient:        &http.Client{Transport: transport, Timeout: 10 * time.Second},
	})
}

// newSimEnvWith is newSimEnv with the connector's URL policy and HTTP client
// given (a nil HTTPClient gets the production, policy-enforcing one).
func newSimEnvWith(t *testing.T, cfg tenantconn.Config) *simEnv {
	t.Helper()
	sim := graphsim.New(graphsim.Config{Seed: 7, DisableThrottling: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	kr, err := secrets.NewKeyring("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	require.NoError(t, err)
	cfg.Keyring = kr
	// Unreachable endpoints fail fast instead of backing off for seconds.
	cfg.Retry = &msgraph.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := tenantconn.New(cfg)
	require.NoError(t, err)
	return &simEnv{env: newEnv(t, api.Config{Deps: graph.Deps{Tenants: conn}}), sim: sim, simURL: srv.URL}
}

// input returns a valid createIntegration input for creds, pointing at the emulator.
func (s *simEnv) input(name string, creds graphsim.Credentials, extra map[string]any) map[string]any {
	in := map[string]any{
		"name": name, "tenantID": creds.TenantID, "clientID": creds.ClientID, "clientSecret": creds.ClientSecret,
		"graphBaseURL": s.simURL + "/v1.0", "loginBaseURL": s.simURL,
	}
	for k, v := range extra {
		in[k] = v
	}
	return in
}

const integrationFields = `id name status tenantID clientID graphBaseURL loginBaseURL hasClientSecret
	domains defaultDomain verifiedDomains tenantPasswordExpiry lastError emailSource authorizedAt
	groupManagement suspendOnPasswordExpiry suspendOnLockout
	attributeMappings { attribute property export import }`

const jobFields = `id kind status total integrationID items { totalCount edges { node { userID linkID integrationID } } }`

type integrationOut struct {
	ID                   string
	Name                 string
	Status               string
	TenantID             string
	ClientID             string
	GraphBaseURL         *string
	LoginBaseURL         *string
	HasClientSecret      bool
	Domains              []string
	DefaultDomain        *string
	VerifiedDomains      []string
	TenantPasswordExpiry bool
	LastError            *string
	EmailSource          string
	AuthorizedAt         *string
	GroupManagement      bool
	AttributeMappings    []struct {
		Attribute, Property string
		Export, Import      bool
	}
}

func (i integrationOut) lastError() string {
	if i.LastError == nil {
		return ""
	}
	return *i.LastError
}

type jobOut struct {
	ID            string
	Kind          string
	Status        string
	Total         int
	IntegrationID *string
	Items         struct {
		TotalCount int
		Edges      []struct {
			Node struct {
				UserID        *string
				LinkID        *string
				IntegrationID string
			}
		}
	}
}

// users returns the user ids of the job's items, sorted.
func (j jobOut) users() []string {
	var out []string
	for _, e := range j.Items.Edges {
		if e.Node.UserID != nil {
			out = append(out, *e.Node.UserID)
		}
	}
	sort.Strings(out)
	return out
}

type payloadOut struct {
	Integration integrationOut
	Jobs        []jobOut
	DeletedID   string
}

// mutate runs a one-field mutation that must succeed and returns its payload.
func (s *simEnv) mutate(key, query string, vars map[string]any) payloadOut {
	s.t.Helper()
	var out map[string]payloadOut
	s.must(key, query, vars, &out)
	require.Len(s.t, out, 1)
	for _, p := range out {
		return p
	}
	return payloadOut{}
}

const (
	createIntegration    = `mutation($in: CreateIntegrationInput!) { createIntegration(input: $in) { integration { ` + integrationFields + ` } jobs { id } } }`
	updateIntegration    = `mutation($id: ID!, $in: UpdateIntegrationInput!) { updateIntegration(id: $id, input: $in) { integration { ` + integrationFields + ` } jobs { ` + jobFields + ` } } }`
	authorizeIntegration = `mutation($id: ID!) { authorizeIntegration(id: $id) { integration { ` + integrationFields + ` } jobs { ` + jobFields + ` } } }`
	deauthorize          = `mutation($id: ID!) { deauthorizeIntegration(id: $id) { integration { ` + integrationFields + ` } jobs { id } } }`
	deleteIntegration    = `mutation($id: ID!) { deleteIntegration(id: $id) { deletedID } }`
	bindUsers            = `mutation($i: ID!, $ids: [ID!]!) { bindUsers(integrationID: $i, userIDs: $ids) { integration { id } jobs { ` + jobFields + ` } } }`
	unbindUsers          = `mutation($i: ID!, $ids: [ID!]!) { unbindUsers(integrationID: $i, userIDs: $ids) { integration { id } jobs { ` + jobFields + ` } } }`
	bindGroups           = `mutation($i: ID!, $ids: [ID!]!) { bindUserGroups(integrationID: $i, groupIDs: $ids) { integration { id } jobs { ` + jobFields + ` } } }`
	unbindGroups         = `mutation($i: ID!, $ids: [ID!]!) { unbindUserGroups(integrationID: $i, groupIDs: $ids) { integration { id } jobs { ` + jobFields + ` } } }`
	integrationByID      = `query($id: ID!) { node(id: $id) { ... on Integration { ` + integrationFields + ` } } }`
)

func (s *simEnv) createIntegration(key string, in map[string]any) integrationOut {
	s.t.Helper()
	return s.mutate(key, createIntegration, map[string]any{"in": in}).Integration
}

// authorized creates and authorizes an integration for creds.
func (s *simEnv) authorized(key, name string, creds graphsim.Credentials, extra map[string]any) integrationOut {
	s.t.Helper()
	in := s.createIntegration(key, s.input(name, creds, extra))
	p := s.mutate(key, authorizeIntegration, map[string]any{"id": in.ID})
	require.Equal(s.t, "AUTHORIZED", p.Integration.Status)
	return p.Integration
}

func (s *simEnv) integration(key, id string) integrationOut {
	s.t.Helper()
	var out struct{ Node integrationOut }
	s.must(key, integrationByID, map[string]any{"id": id}, &out)
	return out.Node
}

func (s *simEnv) bootstrap(name string, domains ...string) graphsim.Credentials {
	s.t.Helper()
	creds, err := s.sim.Bootstrap(name, domains...)
	require.NoError(s.t, err)
	return creds
}

func sysCtx() context.Context { return auth.SystemContext(context.Background()) }

// outboxFor decodes the outbox rows of one job.
func (e *env) outboxFor(jobID string) []jobs.ReconcileUser {
	e.t.Helper()
	rows, err := e.client.Outbox.Query().All(sysCtx())
	require.NoError(e.t, err)
	var out []jobs.ReconcileUser
	for _, r := range rows {
		require.Equal(e.t, jobs.KindReconcileUser, r.Kind)
		var p jobs.ReconcileUser
		require.NoError(e.t, json.Unmarshal(r.Payload, &p))
		if string(p.JobID) == jobID {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) outboxCount() int {
	e.t.Helper()
	n, err := e.client.Outbox.Query().Count(sysCtx())
	require.NoError(e.t, err)
	return n
}

// link records a provisioned remote user, as the worker would.
func (e *env) link(orgID, integrationID, userID, remoteID string) *ent.RemoteLink {
	e.t.Helper()
	l, err := e.client.RemoteLink.Create().SetOrganizationID(pulid.ID(orgID)).SetIntegrationID(pulid.ID(integrationID)).
		SetUserID(pulid.ID(userID)).SetRemoteID(remoteID).SetUpn(remoteID + "@contoso.com").
		SetStatus("IN_SYNC").Save(sysCtx())
	require.NoError(e.t, err)
	return l
}

func sortedIDs(ids ...string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	return out
}

func jsonUnmarshal(raw []byte, out any) error { return json.Unmarshal(raw, out) }

func pulidID(s string) pulid.ID { return pulid.ID(s) }

func emptyToNil(p *string) *string {
	if p == nil || *p == "" {
		return nil
	}
	return p
}

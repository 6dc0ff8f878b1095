// Package graphsim emulates the parts of Microsoft Graph v1.0 (and the
// Microsoft identity platform token endpoint) that dirsync uses: tenants with
// verified domains, app registrations and their permissions, users, security
// groups and memberships, OData queries, delta, $batch, throttling and
// injected faults. It behaves as ../shared/GRAPH.md says Graph behaves —
// never more leniently — and docs/graphsim.md lists every known difference.
//
// A Sim is an http.Handler. Mount it at the root of an HTTP server:
//
//	POST /{tenant}/oauth2/v2.0/token   token endpoint (login base URL = server URL)
//	     /v1.0/...                      Graph (Graph base URL = server URL + "/v1.0")
//	     /_sim/...                      admin API (no auth; see admin.go)
//
// In Go tests:
//
//	sim := graphsim.New(graphsim.Config{})
//	srv := httptest.NewServer(sim)
//	creds, _ := sim.Bootstrap("contoso", "contoso.com")
//	// token URL: srv.URL + "/" + creds.TenantID + "/oauth2/v2.0/token"
//	// Graph:     srv.URL + "/v1.0"
//
// All state is in memory and safe for concurrent use.
package graphsim

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config is read at New. Zero values mean: no faults, the throttling model
// on at Microsoft's quotas in real time.
type Config struct {
	// Seed makes generated ids, secrets and fault decisions deterministic.
	Seed int64
	// TimeScale > 1 runs the throttling windows (and so Retry-After values)
	// faster: with 10 the 150 s write window lasts 15 s. 0 means 1.
	// Retry-After stays whole seconds, at least 1, as Graph sends it.
	TimeScale float64
	// QuotaMultiplier multiplies every throttling quota; 0 means 1.
	QuotaMultiplier float64
	// DisableThrottling turns the throttling model off (x-ms-resource-unit
	// is still sent).
	DisableThrottling bool
	// Faults in force from the start; change them with SetFaults.
	Faults Faults
	// Now is the clock (token lifetime, throttling, replication delay, delta
	// token age); nil means time.Now.
	Now func() time.Time

	// DeltaTokenLifetime defaults to 7 days, as Graph.
	DeltaTokenLifetime time.Duration
	// DeltaMembersPerPage caps the members@delta entries of one group in one
	// delta page; a bigger group continues on the next page(s) as another
	// item with the same id, which clients must merge. Default 100.
	DeltaMembersPerPage int
	// DeltaResync400 answers an expired or unknown delta token with
	// 400 syncStateNotFound instead of 410 Gone + Location (Graph does both).
	DeltaResync400 bool
	// BatchThrottled424 makes a $batch whose inner requests were throttled
	// answer with outer status 424 (older Graph docs) instead of 200.
	BatchThrottled424 bool
	// RequestLogSize bounds the request log; default 10000.
	RequestLogSize int
}

// Sim is the emulator, an http.Handler. Create it with New.
type Sim struct {
	cfg Config

	rmu sync.Mutex
	rnd *rand.Rand

	mu       sync.Mutex
	tenants  map[string]*tenant
	tokens   map[string]*accessToken
	faults   Faults
	throttle *throttler
	reqLog   []RequestLog
	reqNext  int // ring index once reqLog is full

	admin *http.ServeMux
}

// New returns an emulator with no tenants.
func New(cfg Config) *Sim {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeltaTokenLifetime <= 0 {
		cfg.DeltaTokenLifetime = 7 * 24 * time.Hour
	}
	if cfg.DeltaMembersPerPage <= 0 {
		cfg.DeltaMembersPerPage = 100
	}
	if cfg.RequestLogSize <= 0 {
		cfg.RequestLogSize = 10000
	}
	seed := uint64(cfg.Seed)
	s := &Sim{cfg: cfg, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	s.resetLocked()
	s.admin = s.adminMux()
	return s
}

func (s *Sim) resetLocked() {
	s.tenants = map[string]*tenant{}
	s.tokens = map[string]*accessToken{}
	s.faults = s.cfg.Faults
	s.throttle = newThrottler(s.cfg)
	s.reqLog, s.reqNext = nil, 0
}

// Reset drops every tenant, token, log entry and throttling state, and puts
// the faults back to those of the Config.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Sim) now() time.Time { return s.cfg.Now() }

// newID returns a random GUID (version 4 layout).
func (s *Sim) newID() string {
	var b [16]byte
	s.rmu.Lock()
	for i := 0; i < 16; i += 8 {
		v := s.rnd.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	s.rmu.Unlock()
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-"

// newSecret returns a 40-character client secret, like Entra's.
func (s *Sim) newSecret() string {
	b := make([]byte, 40)
	s.rmu.Lock()
	for i := range b {
		b[i] = secretAlphabet[s.rnd.IntN(len(secretAlphabet))]
	}
	s.rmu.Unlock()
	return string(b)
}

func (s *Sim) randFloat() float64 {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.rnd.Float64()
}

// ServeHTTP serves the token endpoint, Graph under /v1.0 and the admin API
// under /_sim.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/_sim" || strings.HasPrefix(p, "/_sim/"):
		s.serveAdmin(w, r)
	case strings.HasPrefix(p, "/v1.0/") || p == "/v1.0":
		s.serveGraphOuter(w, r)
	case strings.HasSuffix(p, "/oauth2/v2.0/token"):
		s.serveToken(w, r)
	default:
		http.NotFound(w, r)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

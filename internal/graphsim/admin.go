package graphsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// The admin API under /_sim/ drives the emulator from outside a Go test
// (the standalone `dirsync graphsim`, scripts, curl). It has no auth: the
// emulator is a test double listening on loopback. JSON in and out:
//
//	GET    /_sim/state                      every tenant with its apps, users, groups; faults
//	POST   /_sim/bootstrap                  {"name","domains":[]} → Credentials
//	POST   /_sim/tenants                    TenantSpec → Tenant
//	POST   /_sim/tenants/{id}/apps          AppSpec → App
//	POST   /_sim/tenants/{id}/domains       {"name","verified"} → 204
//	POST   /_sim/tenants/{id}/seed          {"users":N,"groups":M,"membersPerGroup":K} → {"groupIds"}
//	GET    /_sim/tenants/{id}/users         []User
//	GET    /_sim/tenants/{id}/groups        []Group
//	GET    /_sim/faults, PUT /_sim/faults   Faults (durations in ms)
//	POST   /_sim/tokens/expire              expire every access token
//	POST   /_sim/delta/expire               forget every delta/skip token
//	GET    /_sim/requests, DELETE /_sim/requests   the request log
//	POST   /_sim/reset                      drop everything
func (s *Sim) adminMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, r *http.Request) {
		type tenantState struct {
			Tenant
			UserList  []User  `json:"userList"`
			GroupList []Group `json:"groupList"`
		}
		var out []tenantState
		for _, t := range s.Tenants() {
			out = append(out, tenantState{Tenant: t, UserList: s.Users(t.ID), GroupList: s.Groups(t.ID)})
		}
		adminJSON(w, http.StatusOK, map[string]any{"tenants": out, "faults": s.Faults()})
	})
	m.HandleFunc("POST /_sim/bootstrap", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name    string   `json:"name"`
			Domains []string `json:"domains"`
		}
		if decodeAdmin(w, r, &in) {
			v, err := s.Bootstrap(in.Name, in.Domains...)
			adminResult(w, http.StatusCreated, v, err)
		}
	})
	m.HandleFunc("POST /_sim/tenants", func(w http.ResponseWriter, r *http.Request) {
		var in TenantSpec
		if decodeAdmin(w, r, &in) {
			v, err := s.AddTenant(in)
			adminResult(w, http.StatusCreated, v, err)
		}
	})
	m.HandleFunc("POST /_sim/tenants/{id}/apps", func(w http.ResponseWriter, r *http.Request) {
		var in AppSpec
		if decodeAdmin(w, r, &in) {
			v, err := s.AddApp(r.PathValue("id"), in)
			adminResult(w, http.StatusCreated, v, err)
		}
	})
	m.HandleFunc("POST /_sim/tenants/{id}/domains", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name     string `json:"name"`
			Verified bool   `json:"verified"`
		}
		if decodeAdmin(w, r, &in) {
			adminResult(w, http.StatusNoContent, nil, s.AddDomain(r.PathValue("id"), in.Name, in.Verified))
		}
	})
	m.HandleFunc("POST /_sim/tenants/{id}/seed", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Users           int `json:"users"`
			Groups          int `json:"groups"`
			MembersPerGroup int `json:"membersPerGroup"`
		}
		if !decodeAdmin(w, r, &in) {
			return
		}
		if err := s.SeedUsers(r.PathValue("id"), in.Users); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		ids, err := s.SeedGroups(r.PathValue("id"), in.Groups, in.MembersPerGroup)
		adminResult(w, http.StatusOK, map[string]any{"groupIds": ids}, err)
	})
	m.HandleFunc("GET /_sim/tenants/{id}/users", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, s.Users(r.PathValue("id")))
	})
	m.HandleFunc("GET /_sim/tenants/{id}/groups", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, s.Groups(r.PathValue("id")))
	})
	m.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, s.Faults())
	})
	m.HandleFunc("PUT /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var in Faults
		if decodeAdmin(w, r, &in) {
			s.SetFaults(in)
			adminJSON(w, http.StatusOK, s.Faults())
		}
	})
	m.HandleFunc("POST /_sim/tokens/expire", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/delta/expire", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireDeltaTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_sim/requests", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, s.Requests())
	})
	m.HandleFunc("DELETE /_sim/requests", func(w http.ResponseWriter, r *http.Request) {
		s.ClearRequests()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	s.tenantAdminRoutes(m)
	return m
}

func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) { s.admin.ServeHTTP(w, r) }

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, status int, err error) {
	adminJSON(w, status, map[string]string{"error": err.Error()})
}

func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("graphsim admin: bad JSON body: %w", err))
		return false
	}
	return true
}

// adminResult writes v with status, or the error as 400.
func adminResult(w http.ResponseWriter, status int, v any, err error) {
	switch {
	case err != nil:
		adminError(w, http.StatusBadRequest, err)
	case status == http.StatusNoContent:
		w.WriteHeader(status)
	default:
		adminJSON(w, status, v)
	}
}

// faultsJSON is Faults on the wire: durations in milliseconds.
type faultsJSON struct {
	LatencyBaseMs        int64   `json:"latencyBaseMs,omitempty"`
	LatencyJitterMs      int64   `json:"latencyJitterMs,omitempty"`
	ServerErrorRate      float64 `json:"serverErrorRate,omitempty"`
	Force429             int     `json:"force429,omitempty"`
	Force429RetryAfterMs int64   `json:"force429RetryAfterMs,omitempty"`
	ReplicationDelayMs   int64   `json:"replicationDelayMs,omitempty"`
	TokenLifetimeMs      int64   `json:"tokenLifetimeMs,omitempty"`
}

// MarshalJSON writes durations as milliseconds (latencyBaseMs, …).
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{f.LatencyBase.Milliseconds(), f.LatencyJitter.Milliseconds(), f.ServerErrorRate,
		f.Force429, f.Force429RetryAfter.Milliseconds(), f.ReplicationDelay.Milliseconds(), f.TokenLifetime.Milliseconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	*f = Faults{LatencyBase: ms(j.LatencyBaseMs), LatencyJitter: ms(j.LatencyJitterMs), ServerErrorRate: j.ServerErrorRate,
		Force429: j.Force429, Force429RetryAfter: ms(j.Force429RetryAfterMs), ReplicationDelay: ms(j.ReplicationDelayMs),
		TokenLifetime: ms(j.TokenLifetimeMs)}
	return nil
}

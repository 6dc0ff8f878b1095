package graphsim

import (
	"net/http"
	"strconv"
	"time"
)

// Faults are the failures the emulator injects into Graph calls (not into
// the token endpoint or the admin API). Decisions come from the seeded
// random source, so a run with the same seed and request order repeats.
type Faults struct {
	// LatencyBase is added to every Graph request (not to inner $batch
	// requests), plus a uniform random part up to LatencyJitter.
	LatencyBase   time.Duration
	LatencyJitter time.Duration
	// ServerErrorRate is the share (0..1) of Graph requests answered 500,
	// 503 or 504 with a Graph error body, before any state change.
	ServerErrorRate float64
	// Force429 answers the next Force429 Graph requests 429 TooManyRequests
	// (a burst), with Retry-After: Force429RetryAfter (default 1 s, divided
	// by Config.TimeScale, at least 1 s).
	Force429           int
	Force429RetryAfter time.Duration
	// ReplicationDelay keeps a created user or group invisible to GET,
	// $filter/list, delta, $ref and PATCH for that long after its POST: they
	// answer 404 Request_ResourceNotFound (or leave it out) as Graph does.
	ReplicationDelay time.Duration
	// TokenLifetime of newly issued access tokens; 0 means 3599 s.
	TokenLifetime time.Duration
}

// SetFaults replaces the faults in force.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the faults in force (Force429 counts what is left of a burst).
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

type injected struct {
	fault string
	err   *graphError
}

// injectFault decides whether this request fails by injection. Called with s.mu held.
func (s *Sim) injectFault(t *tenant, a *app) *injected {
	f := &s.faults
	if f.Force429 > 0 {
		f.Force429--
		ra := f.Force429RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		ra = time.Duration(float64(ra) / s.throttle.timeScale)
		e := gerr(http.StatusTooManyRequests, codeTooManyRequests, msgRetryLater)
		e.header = http.Header{
			"Retry-After":               {strconv.Itoa(retryAfterSeconds(ra))},
			"X-Ms-Throttle-Scope":       {"Tenant_Application/ReadWrite/" + a.clientID + "/" + t.id},
			"X-Ms-Throttle-Information": {"ResourceUnitLimitExceeded"},
		}
		return &injected{fault: "429", err: e}
	}
	if f.ServerErrorRate > 0 {
		if x := s.randFloat(); x < f.ServerErrorRate {
			switch int(x / f.ServerErrorRate * 3) {
			case 0:
				return &injected{fault: "5xx", err: gerr(http.StatusInternalServerError, "generalException",
					"General exception while processing.")}
			case 1:
				return &injected{fault: "5xx", err: gerr(http.StatusServiceUnavailable, codeServiceNotAvail,
					"Service unavailable. Please try again later.")}
			}
			return &injected{fault: "5xx", err: gerr(http.StatusGatewayTimeout, "gatewayTimeout",
				"The gateway did not receive a response in time.")}
		}
	}
	return nil
}

package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// DefaultTokenLifetime is the expires_in Entra gives client-credentials tokens.
const DefaultTokenLifetime = 3599 * time.Second

const graphScope = "https://graph.microsoft.com/.default"

type accessToken struct {
	tenantID, clientID string
	expires            time.Time
}

type tokenError struct {
	status int
	err    string
	code   int
	desc   string
}

// serveToken answers POST /{tenant}/oauth2/v2.0/token for the client
// credentials grant, with AADSTS-style errors.
func (s *Sim) serveToken(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	tenantKey := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	rec := RequestLog{Time: start, Method: r.Method, Path: r.URL.Path, TenantID: tenantKey}
	status := s.token(w, r, tenantKey, &rec)
	rec.Status = status
	s.logRequest(rec)
}

func (s *Sim) token(w http.ResponseWriter, r *http.Request, tenantKey string, rec *RequestLog) int {
	if r.Method != http.MethodPost {
		return s.writeTokenError(w, tokenError{http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST requests. Received a " + r.Method + " request."})
	}
	if err := r.ParseForm(); err != nil {
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'."})
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantKey]
	if t == nil {
		t = s.tenantByDomain(tenantKey)
	}
	if t == nil {
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", 90002,
			"Tenant '" + tenantKey + "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."})
	}
	rec.TenantID = t.id
	rec.ClientID = clientID
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'."})
	default:
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '" + gt + "'."})
	}
	if clientID == "" {
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'."})
	}
	a := t.apps[clientID]
	if a == nil {
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "unauthorized_client", 700016,
			"Application with identifier '" + clientID + "' was not found in the directory '" + t.displayName + "'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."})
	}
	if secret == "" {
		return s.writeTokenError(w, tokenError{http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'."})
	}
	if secret != a.secret {
		return s.writeTokenError(w, tokenError{http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + clientID + "'."})
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'scope'."})
	}
	if !strings.EqualFold(scope, graphScope) && !strings.EqualFold(scope, "00000003-0000-0000-c000-000000000000/.default") {
		return s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_scope", 1002012,
			"The provided value for scope " + scope + " is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."})
	}
	life := s.faults.TokenLifetime
	if life <= 0 {
		life = DefaultTokenLifetime
	}
	s.pruneTokens()
	tok := s.newAccessToken(t.id, clientID)
	s.tokens[tok] = &accessToken{tenantID: t.id, clientID: clientID, expires: s.now().Add(life)}
	secs := int(life / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
	})
	return http.StatusOK
}

// newAccessToken returns an opaque token shaped like a JWT (three base64url
// parts), so clients that peek at its form see what they would see from Entra.
func (s *Sim) newAccessToken(tenantID, clientID string) string {
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "none"})
	body, _ := json.Marshal(map[string]string{"tid": tenantID, "appid": clientID, "aud": "https://graph.microsoft.com", "jti": s.newID()})
	return enc.EncodeToString(hdr) + "." + enc.EncodeToString(body) + "." + enc.EncodeToString([]byte(s.newSecret()))
}

func (s *Sim) writeTokenError(w http.ResponseWriter, e tokenError) int {
	now := s.now().UTC()
	traceID, corrID := s.newID(), s.newID()
	desc := "AADSTS" + itoa(e.code) + ": " + e.desc + " Trace ID: " + traceID + " Correlation ID: " + corrID +
		" Timestamp: " + now.Format("2006-01-02 15:04:05Z")
	writeJSON(w, e.status, map[string]any{
		"error": e.err, "error_description": desc, "error_codes": []int{e.code},
		"timestamp": now.Format("2006-01-02 15:04:05Z"), "trace_id": traceID, "correlation_id": corrID,
		"error_uri": "https://login.microsoftonline.com/error?code=" + itoa(e.code),
	})
	return e.status
}

// authenticate resolves the bearer token of a Graph request. Called with s.mu held.
func (s *Sim) authenticate(r *http.Request) (*tenant, *app, *graphError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil, unauthenticated("Access token is empty.")
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, nil, unauthenticated("Access token is empty.")
	}
	at := s.tokens[tok]
	if at == nil {
		if strings.Count(tok, ".") != 2 {
			return nil, nil, unauthenticated("IDX14100: JWT is not well formed, there are no dots (.).")
		}
		return nil, nil, unauthenticated("Access token validation failure. Invalid audience.")
	}
	if !s.now().Before(at.expires) {
		return nil, nil, unauthenticated("Lifetime validation failed, the token is expired.")
	}
	t := s.tenants[at.tenantID]
	if t == nil || t.apps[at.clientID] == nil {
		return nil, nil, unauthenticated("Access token validation failure. Invalid audience.")
	}
	return t, t.apps[at.clientID], nil
}

func unauthenticated(msg string) *graphError {
	e := gerr(http.StatusUnauthorized, codeInvalidToken, msg)
	e.header = http.Header{"Www-Authenticate": {`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`}}
	return e
}

// pruneTokens forgets expired tokens once there are many, so the map stays
// bounded however long a benchmark runs. Called with s.mu held.
func (s *Sim) pruneTokens() {
	if len(s.tokens) < 4096 {
		return
	}
	now := s.now()
	for k, t := range s.tokens {
		if !now.Before(t.expires) {
			delete(s.tokens, k)
		}
	}
}

// ExpireTokens makes every access token issued so far expired, so the next
// Graph call with one of them answers 401 InvalidAuthenticationToken.
func (s *Sim) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, t := range s.tokens {
		t.expires = now
	}
}

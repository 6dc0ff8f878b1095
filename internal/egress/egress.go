// Package egress is the policy for outbound HTTP calls to hosts that an
// administrator names: an integration's Graph and login base URLs. Such a
// call carries the integration's client secret (token request) or a bearer
// token (Graph), so the server must not be steerable into handing them to an
// internal service or to a host a redirect points at:
//
//   - redirects are never followed (the answer is returned as it is, and
//     callers treat 3xx as an error);
//   - unless AllowInsecure is set (development, tests, an emulator on the
//     LAN), URLs must be https and every address actually dialled must be a
//     public unicast address. The address is checked when the connection is
//     made, after name resolution, so a name that resolves to a public
//     address when the URL is saved and to 127.0.0.1 later (DNS rebinding)
//     is refused all the same.
package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is in the chain of every refusal of this package.
var ErrBlocked = errors.New("egress: destination not allowed")

// BlockedError says which destination was refused and why. It never carries
// a URL's query or user info.
type BlockedError struct {
	Target string // host, host:port or address
	Reason string
}

func (e *BlockedError) Error() string {
	return "destination " + e.Target + " not allowed: " + e.Reason
}

// Is makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// Policy decides which destinations outbound calls may reach.
type Policy struct {
	// AllowInsecure permits plain http and loopback, private, link-local and
	// other non-public addresses. Development and tests only.
	AllowInsecure bool
}

// nonPublic are ranges netip's predicates do not cover but that no public
// service lives in.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
}

// CheckAddr refuses an address that is not public unicast.
func (p Policy) CheckAddr(a netip.Addr) error {
	if p.AllowInsecure {
		return nil
	}
	a = a.Unmap()
	reason := ""
	switch {
	case !a.IsValid():
		reason = "not an IP address"
	case a.IsLoopback():
		reason = "loopback address"
	case a.IsPrivate():
		reason = "private address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		reason = "link-local address"
	case a.IsUnspecified(), a.IsMulticast(), a.IsInterfaceLocalMulticast():
		reason = "not a unicast address"
	}
	for _, n := range nonPublic {
		if reason == "" && n.Contains(a) {
			reason = "reserved address"
		}
	}
	if reason != "" {
		return &BlockedError{Target: a.String(), Reason: reason + " (allowed only with DIRSYNC_ALLOW_INSECURE_GRAPH_URLS)"}
	}
	return nil
}

// CheckURL refuses what can be told from the URL alone: a scheme other than
// https, and a host that is a literal non-public address or "localhost".
// Names are checked again, resolved, when dialled.
func (p Policy) CheckURL(u *url.URL) error {
	if u.Scheme != "https" && u.Scheme != "http" {
		return &BlockedError{Target: u.Scheme, Reason: "only https URLs"}
	}
	if p.AllowInsecure {
		return nil
	}
	host := u.Hostname()
	if u.Scheme != "https" {
		return &BlockedError{Target: host, Reason: "plain http (only https; http is allowed only with DIRSYNC_ALLOW_INSECURE_GRAPH_URLS)"}
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return p.CheckAddr(a)
	}
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return &BlockedError{Target: host, Reason: "loopback name (allowed only with DIRSYNC_ALLOW_INSECURE_GRAPH_URLS)"}
	}
	return nil
}

// NoRedirect is an http.Client CheckRedirect that hands a 3xx answer back
// to the caller instead of following it: a token request that followed a
// 307 would post the client secret to wherever the Location points.
func NoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Client returns an HTTP client that applies the policy to every connection
// it opens and follows no redirect.
func (p Policy) Client(timeout time.Duration) *http.Client {
	return &http.Client{Transport: p.Transport(), Timeout: timeout, CheckRedirect: NoRedirect}
}

// Transport is http.DefaultTransport's settings with the policy applied
// when dialling. A configured HTTP(S)_PROXY is used as before; the dial to
// the proxy itself is not checked (the operator chose it), so such a proxy
// must apply its own destination policy.
func (p Policy) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	checked := *d
	checked.Control = func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return &BlockedError{Target: address, Reason: "unparsable address"}
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return &BlockedError{Target: address, Reason: "not an IP address"}
		}
		return p.CheckAddr(a)
	}
	proxies := proxyAddrs()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if proxies[strings.ToLower(addr)] {
			return d.DialContext(ctx, network, addr)
		}
		return checked.DialContext(ctx, network, addr)
	}
	return t
}

// proxyAddrs are the host:port of the proxies named in the environment, the
// form in which net/http dials them.
func proxyAddrs() map[string]bool {
	out := map[string]bool{}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		v := os.Getenv(k)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "://") {
			v = "http://" + v
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
		}
		out[strings.ToLower(net.JoinHostPort(u.Hostname(), port))] = true
	}
	return out
}

package server

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// crossSite reports whether r was sent by a browser on behalf of a page of
// another origin than this server's own, one the CORS allow-list does not
// name. CORS alone does not protect the API: browsers send "simple"
// cross-site requests (form posts, text/plain bodies) without a preflight
// and apply no CORS at all to WebSocket handshakes, so a page the user
// visits could otherwise drive a --no-token server. Non-browser clients
// (the SDKs, curl) send neither Origin nor Sec-Fetch-Site and pass.
func (h *Handler) crossSite(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return !slices.Contains(h.cfg.CORSOrigins, o) && !sameOrigin(o, r.Host)
	}
	// Without Origin a browser still labels the request's initiator. A
	// no-cors subresource (img, script, link) from another site is refused;
	// a top-level navigation (a link the user followed) is the same as the
	// user typing the address, and a page cannot read what it loads.
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		nav := r.Header.Get("Sec-Fetch-Mode") == "navigate" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
		return !nav
	}
	return false
}

// sameOrigin reports whether origin (scheme://host[:port]) names the
// server the request was addressed to (its Host header). A Host without a
// port matches the scheme's default port, as behind a TLS proxy.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		return false // includes the opaque origin "null"
	}
	def := "80"
	if u.Scheme == "https" {
		def = "443"
	}
	oh, op := splitHost(u.Host)
	hh, hp := splitHost(host)
	if op == "" {
		op = def
	}
	if hp == "" {
		hp = def
	}
	return oh != "" && strings.EqualFold(oh, hh) && op == hp
}

// splitHost splits host[:port] (IPv6 in brackets) into the bare host and
// the port, which is empty when absent.
func splitHost(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
}

func crossSiteProblem(r *http.Request) *problem.Problem {
	from := r.Header.Get("Origin")
	if from == "" {
		from = "a " + r.Header.Get("Sec-Fetch-Site") + " page"
	}
	p := problem.New(problem.CrossSiteRequest, http.StatusForbidden, "Cross-Site Request Refused",
		"cross-site request refused: "+from+" is not this server's origin; allow it with --cors-allow-origin")
	p.Details = map[string]any{"origin": r.Header.Get("Origin"), "host": r.Host}
	return p
}

// DefaultAllowedHosts is the Host allow-list of a server bound to host
// when none is configured: a server on a loopback address answers only
// requests addressed to loopback names (any port), so a DNS-rebinding page
// (evil.example resolving to 127.0.0.1) cannot reach it. A server bound to
// another address is reached through names this one cannot know (a
// sandbox vendor's proxy host), so it gets no default list; the token
// protects it.
func DefaultAllowedHosts(host string) []string {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip := net.ParseIP(h); (ip != nil && ip.IsLoopback()) || strings.EqualFold(h, "localhost") {
		return []string{"localhost", "127.0.0.1", "::1"}
	}
	return nil
}

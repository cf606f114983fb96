//go:build unix

package fakesandbox

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

// Proxy reverse-proxies a vendor's port URL to the server listening inside a
// sandbox. It streams (SSE is flushed at once) and passes WebSocket upgrades
// through. When the sandbox is not Running, is gone, or nothing listens on
// the port, it calls Unavailable so each vendor fake answers with its own
// status and body.
type Proxy struct {
	// Route (required) picks the sandbox and logical port for a request (host-routed,
	// e.g. 2468-<id>.e2b.app, or path-routed) and may rewrite r.URL.Path for
	// the backend. ok=false means no such sandbox.
	Route func(r *http.Request) (sb *Sandbox, logicalPort int, ok bool)
	// Unavailable answers a request that cannot reach the server. err wraps
	// ErrNotFound (deleted or unknown sandbox), ErrNotRunning (creating,
	// paused, stopped), or is the dial error. Default: 502 with err's text.
	Unavailable func(w http.ResponseWriter, r *http.Request, err error)

	once sync.Once
	rp   *httputil.ReverseProxy
}

type targetKey struct{}

func withTarget(r *http.Request, host string) context.Context {
	return context.WithValue(r.Context(), targetKey{}, host)
}

func (p *Proxy) init() {
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			host := pr.In.Context().Value(targetKey{}).(string)
			pr.SetURL(&url.URL{Scheme: "http", Host: host})
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.unavailable(w, r, err)
		},
	}
}

func (p *Proxy) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	if p.Unavailable != nil {
		p.Unavailable(w, r, err)
		return
	}
	status := http.StatusBadGateway
	if errors.Is(err, ErrNotFound) {
		status = http.StatusNotFound
	}
	http.Error(w, err.Error(), status)
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.once.Do(p.init)
	sb, port, ok := p.Route(r)
	if !ok {
		p.unavailable(w, r, ErrNotFound)
		return
	}
	host, err := sb.target(port)
	if err != nil {
		p.unavailable(w, r, err)
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(withTarget(r, host)))
}

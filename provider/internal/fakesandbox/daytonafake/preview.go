//go:build unix

package daytonafake

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/provider/internal/fakesandbox"
)

// HeaderPreviewToken is the preview proxy's credential header.
const HeaderPreviewToken = "X-Daytona-Preview-Token"

func (f *Fake) isPreview(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.HasSuffix(host, "."+f.o.PreviewDomain)
}

// label splits "{port}-{id or signed token}" off the host.
func (f *Fake) label(host string) (int, string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	l, _ := strings.CutSuffix(host, "."+f.o.PreviewDomain)
	p, rest, ok := strings.Cut(l, "-")
	port, err := strconv.Atoi(p)
	return port, rest, ok && err == nil && rest != ""
}

type previewKey struct{}

// servePreview authenticates as Daytona's proxy (a public sandbox needs
// nothing; otherwise the preview token header, or a signed host that has
// not expired) and proxies to the sandbox's port. Each request counts as
// activity, postponing auto-stop.
func (f *Fake) servePreview(w http.ResponseWriter, r *http.Request) {
	port, key, ok := f.label(r.Host)
	if !ok {
		goError(w, r, http.StatusBadRequest, "invalid host format: port and sandbox ID not found")
		return
	}
	f.mu.Lock()
	id, authed := key, false
	if s := f.signed[key]; s != nil {
		if time.Now().After(s.expires) {
			f.mu.Unlock()
			goError(w, r, http.StatusUnauthorized, "signed preview URL expired")
			return
		}
		id, port, authed = s.id, s.port, true
	}
	b := f.boxes[id]
	if b != nil {
		authed = authed || b.public || r.Header.Get(HeaderPreviewToken) == b.authToken
		if authed {
			b.idle = 0
		}
	}
	f.mu.Unlock()
	if b == nil {
		goError(w, r, http.StatusNotFound, "sandbox not found")
		return
	}
	if !authed {
		goError(w, r, http.StatusUnauthorized, "authentication required")
		return
	}
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), previewKey{}, route{b.sb, port})))
}

type route struct {
	sb   *fakesandbox.Sandbox
	port int
}

func (f *Fake) route(r *http.Request) (*fakesandbox.Sandbox, int, bool) {
	rt, ok := r.Context().Value(previewKey{}).(route)
	return rt.sb, rt.port, ok
}

// unavailable: a stopped or deleted sandbox, or nothing listening on the
// port, is the proxy's 502 (404 for a deleted one).
func (f *Fake) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fakesandbox.ErrNotFound) {
		goError(w, r, http.StatusNotFound, "sandbox not found")
		return
	}
	goError(w, r, http.StatusBadGateway, "sandbox is not reachable: "+err.Error())
}

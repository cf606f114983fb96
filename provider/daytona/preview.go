package daytona

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Headers of Daytona's preview proxy.
const (
	// HeaderPreviewToken authenticates a request to a private sandbox's
	// standard preview URL (https://{port}-{id}.{proxyDomain}).
	HeaderPreviewToken = "X-Daytona-Preview-Token"
	// headerSkipWarning skips the interstitial page the proxy shows
	// browsers; a Go client is not one, but the header costs nothing.
	headerSkipWarning = "X-Daytona-Skip-Preview-Warning"
)

// preview is the agent port's current URL and credential for one sandbox.
type preview struct {
	url     *url.URL
	token   string
	expires time.Time // signed URLs only
}

// previews caches each sandbox's preview URL and refreshes it: a signed
// URL before it expires (within a tenth of its TTL), either kind when the
// proxy refuses it. Safe for concurrent use.
type previews struct {
	fetch func(ctx context.Context, id string) (previewURL, error)
	ttl   time.Duration // 0: standard URL + header
	now   func() time.Time

	mu sync.Mutex
	m  map[string]preview
}

func (ps *previews) get(ctx context.Context, id string) (preview, error) {
	ps.mu.Lock()
	p, ok := ps.m[id]
	ps.mu.Unlock()
	if ok && (ps.ttl == 0 || ps.now().Before(p.expires.Add(-ps.ttl/10))) {
		return p, nil
	}
	return ps.refresh(ctx, id)
}

func (ps *previews) refresh(ctx context.Context, id string) (preview, error) {
	issued := ps.now()
	raw, err := ps.fetch(ctx, id)
	if err != nil {
		return preview{}, err
	}
	u, err := url.Parse(raw.URL)
	if err != nil || u.Host == "" {
		return preview{}, fmt.Errorf("daytona: preview URL %q: not an absolute URL", raw.URL)
	}
	p := preview{url: u, token: raw.Token}
	if ps.ttl > 0 {
		p.expires = issued.Add(ps.ttl)
	}
	ps.mu.Lock()
	if ps.m == nil {
		ps.m = map[string]preview{}
	}
	ps.m[id] = p
	ps.mu.Unlock()
	return p, nil
}

func (ps *previews) forget(id string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.m, id)
}

// previewTransport authenticates every request to one sandbox's agent
// port: with the standard URL it adds X-Daytona-Preview-Token; with signed
// URLs it sends the request to the current signed host (the token is in
// the host name). A 401/403 is answered by refetching the URL and, if the
// credential changed, sending the request once more; a 401 of the server
// itself (a wrong bearer token) leaves the credential unchanged and is
// returned as it is.
type previewTransport struct {
	ps   *previews
	id   string
	base http.RoundTripper
}

func (t *previewTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	p, err := t.ps.get(ctx, t.id)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(t.authorize(req, p))
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // not replayable
	}
	fresh, ferr := t.ps.refresh(ctx, t.id)
	if ferr != nil || (fresh.token == p.token && fresh.url.Host == p.url.Host) {
		return resp, nil
	}
	retry := req
	if req.Body != nil {
		body, berr := req.GetBody()
		if berr != nil {
			return resp, nil
		}
		retry = req.Clone(ctx)
		retry.Body = body
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return t.base.RoundTrip(t.authorize(retry, fresh))
}

func (t *previewTransport) authorize(req *http.Request, p preview) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set(headerSkipWarning, "true")
	if t.ps.ttl > 0 {
		r.URL.Scheme, r.URL.Host, r.Host = p.url.Scheme, p.url.Host, ""
	} else if p.token != "" {
		r.Header.Set(HeaderPreviewToken, p.token)
	}
	return r
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

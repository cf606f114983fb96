package e2b

import (
	"net/http"
	"net/url"
)

// trafficHeader carries a non-public sandbox's traffic access token; E2B's
// proxy refuses requests to the sandbox's ports without it.
const trafficHeader = "e2b-traffic-access-token"

// trafficClient is Options.HTTPClient with the sandbox's traffic token
// added to requests for the sandbox's agent host, and only those, so the
// token never reaches another host (a redirect elsewhere, the API).
func (p *Provider) trafficClient(info sandboxInfo, id string) *http.Client {
	c := *p.o.HTTPClient
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	host := ""
	if u, err := url.Parse(p.sandboxURL(info, id, p.o.Port)); err == nil {
		host = u.Host
	}
	c.Transport = &trafficTransport{base: base, host: host, token: info.TrafficAccessToken}
	return &c
}

type trafficTransport struct {
	base  http.RoundTripper
	host  string
	token string
}

func (t *trafficTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == t.host {
		r = r.Clone(r.Context())
		r.Header.Set(trafficHeader, t.token)
	}
	return t.base.RoundTrip(r)
}

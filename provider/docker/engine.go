package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// apiVersion is the Engine API version the requests name: Docker 20.10
// and later serve it.
const apiVersion = "v1.41"

// APIError is a non-2xx answer of the Docker Engine API.
type APIError struct {
	Op      string // e.g. "create container"
	Status  int
	Message string // the Engine's {"message": …}
}

func (e *APIError) Error() string {
	return fmt.Sprintf("docker: %s: %s (HTTP %d)", e.Op, e.Message, e.Status)
}

// notFound reports whether err is an Engine 404.
func notFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// engine is a small client of the Docker Engine REST API: the handful of
// container and image calls a sandbox needs, no SDK.
type engine struct {
	base string // e.g. http://docker/v1.41
	host string // what the user configured, for messages
	hc   *http.Client
}

// newEngine reaches dockerHost ("unix:///var/run/docker.sock",
// "tcp://host:2375"); hc, when set, is used as is (tests, custom TLS).
func newEngine(dockerHost string, hc *http.Client, baseURL string) (*engine, error) {
	if hc != nil {
		if baseURL == "" {
			baseURL = "http://docker"
		}
		return &engine{base: strings.TrimRight(baseURL, "/") + "/" + apiVersion, host: baseURL, hc: hc}, nil
	}
	u, err := url.Parse(dockerHost)
	if err != nil {
		return nil, fmt.Errorf("docker: invalid DOCKER_HOST %q: %w", dockerHost, err)
	}
	switch u.Scheme {
	case "unix":
		sock := u.Path
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			MaxIdleConns: 4,
		}
		return &engine{base: "http://docker/" + apiVersion, host: dockerHost, hc: &http.Client{Transport: tr}}, nil
	case "tcp", "http":
		return &engine{base: "http://" + u.Host + "/" + apiVersion, host: dockerHost, hc: &http.Client{}}, nil
	default:
		return nil, fmt.Errorf("docker: unsupported DOCKER_HOST %q (use unix:// or tcp://; for TLS pass Options.HTTPClient and Options.EngineURL)", dockerHost)
	}
}

// do sends one request; out (if non-nil) receives the JSON answer. Non-2xx
// answers are *APIError, except the statuses in ok.
func (e *engine) do(ctx context.Context, op, method, path string, q url.Values, body, out any, ok ...int) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("docker: %s: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	u := e.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("docker: %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("docker: %s: cannot reach the Docker Engine at %s: %w", op, e.host, err)
	}
	defer resp.Body.Close()
	for _, s := range ok {
		if resp.StatusCode == s {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			return resp.StatusCode, nil
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var m struct{ Message string }
		if json.Unmarshal(b, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(b))
		}
		return resp.StatusCode, &APIError{Op: op, Status: resp.StatusCode, Message: m.Message}
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("docker: %s: decode answer: %w", op, err)
		}
	}
	return resp.StatusCode, nil
}

// containerJSON is the part of GET /containers/{id}/json we read.
type containerJSON struct {
	ID    string `json:"Id"`
	State struct {
		Status  string // created, running, paused, restarting, removing, exited, dead
		Running bool
		Paused  bool
	}
	NetworkSettings struct {
		Ports map[string][]struct {
			HostIP   string `json:"HostIp"`
			HostPort string
		}
	}
}

func (e *engine) inspect(ctx context.Context, id string) (containerJSON, error) {
	var c containerJSON
	_, err := e.do(ctx, "inspect container "+id, http.MethodGet, "/containers/"+url.PathEscape(id)+"/json", nil, nil, &c)
	return c, err
}

// pull pulls ref, reading the progress stream to its end: the Engine
// reports a failed pull inside a 200 stream.
func (e *engine) pull(ctx context.Context, ref string) error {
	q := url.Values{"fromImage": {ref}}
	if !hasTagOrDigest(ref) {
		q.Set("tag", "latest") // without a tag the Engine pulls every tag
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/images/create?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return fmt.Errorf("docker: pull %s: cannot reach the Docker Engine at %s: %w", ref, e.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var m struct{ Message string }
		_ = json.Unmarshal(b, &m)
		return &APIError{Op: "pull " + ref, Status: resp.StatusCode, Message: m.Message}
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&ev); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("docker: pull %s: reading progress: %w", ref, err)
		}
		if msg := ev.ErrorDetail.Message; msg != "" || ev.Error != "" {
			if msg == "" {
				msg = ev.Error
			}
			return &APIError{Op: "pull " + ref, Status: http.StatusOK, Message: msg}
		}
	}
}

// hasTagOrDigest: "a/b:1", "a@sha256:…" yes; "a/b", "host:5000/a" no.
func hasTagOrDigest(ref string) bool {
	if strings.Contains(ref, "@") {
		return true
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	return strings.Contains(last, ":")
}

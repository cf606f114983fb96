package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	sandboxagent "github.com/sandbox-agent-go/sandbox-agent"
)

// Retry policy of API calls. Vendors' own SDKs retry 429 and 5xx twice;
// so do we, but a Retry-After longer than MaxRetryAfter is not waited for:
// the error goes to the caller, who knows its deadline better.
const (
	DefaultRetries = 2
	MaxRetryAfter  = 10 * time.Second
	retryBase      = 200 * time.Millisecond
	// maxErrorBody bounds how much of an error answer is read.
	maxErrorBody = 64 << 10
)

// API calls one vendor's HTTP API.
type API struct {
	// Provider names the vendor in errors ("e2b").
	Provider string
	// BaseURL is prefixed to every Request.Path.
	BaseURL string
	// Client defaults to a client with no overall timeout (calls are bounded
	// by their context; streams may last).
	Client *http.Client
	// Authorize adds the vendor's credentials to a request.
	Authorize func(*http.Request)
	// DecodeError extracts the vendor's error code and message from an error
	// body; nil uses the body's text.
	DecodeError func(status int, body []byte) (code, message string)
	// Retries of a retryable answer (0: DefaultRetries; <0: none).
	Retries int
	// Sleep waits between retries; nil waits on a timer (tests pass a fake).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Request is one call.
type Request struct {
	Op     string // for errors: "create sandbox"
	Method string
	Path   string // joined to BaseURL; may already be a full URL
	Query  url.Values
	Header http.Header
	// Body is sent as JSON unless it is []byte (sent as is, with
	// ContentType). nil sends no body.
	Body        any
	ContentType string
	// OK lists statuses besides 2xx that are success (e.g. 409 for
	// "already paused").
	OK []int
}

// JSON performs req and decodes a success body into out (if non-nil and
// the body is not empty). It returns the status.
func (a *API) JSON(ctx context.Context, req Request, out any) (int, error) {
	resp, err := a.Open(ctx, req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return resp.StatusCode, nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s: %s: read answer: %w", a.Provider, req.Op, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s: %s: decode answer: %w", a.Provider, req.Op, err)
	}
	return resp.StatusCode, nil
}

// Open performs req and returns the response of a success status with its
// body unread (the caller closes it): for streams. A failure status is a
// *sandboxagent.ProviderAPIError after the retries.
func (a *API) Open(ctx context.Context, req Request) (*http.Response, error) {
	var body []byte
	contentType := req.ContentType
	switch b := req.Body.(type) {
	case nil:
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("%s: %s: encode request: %w", a.Provider, req.Op, err)
		}
		if contentType == "" {
			contentType = "application/json"
		}
	}
	target := req.Path
	if !strings.Contains(target, "://") {
		target = strings.TrimRight(a.BaseURL, "/") + "/" + strings.TrimLeft(req.Path, "/")
	}
	if len(req.Query) > 0 {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + req.Query.Encode()
	}
	retries := a.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	client := a.Client
	if client == nil {
		client = http.DefaultClient
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if req.Body != nil {
			rd = bytes.NewReader(body)
		}
		hr, err := http.NewRequestWithContext(ctx, req.Method, target, rd)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", a.Provider, req.Op, err)
		}
		for k, vs := range req.Header {
			hr.Header[k] = vs
		}
		if contentType != "" {
			hr.Header.Set("Content-Type", contentType)
		}
		if hr.Header.Get("Accept") == "" {
			hr.Header.Set("Accept", "application/json")
		}
		if a.Authorize != nil {
			a.Authorize(hr)
		}
		resp, err := client.Do(hr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %s: %w", a.Provider, req.Op, ctx.Err())
			}
			return nil, fmt.Errorf("%s: %s: %w", a.Provider, req.Op, err)
		}
		if resp.StatusCode/100 == 2 || slices.Contains(req.OK, resp.StatusCode) {
			return resp, nil
		}
		apiErr := a.decode(req.Op, resp)
		if attempt >= retries || !retryable(apiErr.StatusCode) || apiErr.RetryAfter > MaxRetryAfter {
			return nil, apiErr
		}
		delay := apiErr.RetryAfter
		if delay == 0 {
			delay = retryBase << attempt
		}
		if err := a.sleep(ctx, delay); err != nil {
			return nil, errors.Join(apiErr, fmt.Errorf("%s: %s: %w", a.Provider, req.Op, err))
		}
	}
}

func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (a *API) decode(op string, resp *http.Response) *sandboxagent.ProviderAPIError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &sandboxagent.ProviderAPIError{Provider: a.Provider, Op: op, StatusCode: resp.StatusCode,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	if a.DecodeError != nil {
		e.Code, e.Message = a.DecodeError(resp.StatusCode, b)
	}
	if e.Code == "" && e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 300 {
			e.Message = e.Message[:300] + "…"
		}
	}
	return e
}

// retryAfter parses delay-seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func (a *API) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep != nil {
		return a.Sleep(ctx, d)
	}
	return Sleep(ctx, d)
}

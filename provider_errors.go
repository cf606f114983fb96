package sandboxagent

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrProviderUnauthorized matches (errors.Is) a *ProviderAPIError whose
// vendor answered 401 or 403: the credentials are wrong, expired or lack a
// permission. Providers never retry it.
var ErrProviderUnauthorized = errors.New("sandboxagent: the sandbox vendor refused the credentials")

// ProviderAPIError is a failed call to a sandbox vendor's API (E2B,
// Daytona, Vercel, ...): the vendor answered with a non-success status.
type ProviderAPIError struct {
	Provider string // "e2b"
	Op       string // what was attempted, e.g. "create sandbox"
	// StatusCode is the HTTP status the vendor answered.
	StatusCode int
	// Code and Message are the vendor's error code and text when its body
	// carried them.
	Code    string
	Message string
	// RetryAfter is the vendor's Retry-After on a 429 or 503 (0 if none).
	RetryAfter time.Duration
}

func (e *ProviderAPIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: %d %s", e.Provider, e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrProviderUnauthorized) true for 401 and 403.
func (e *ProviderAPIError) Is(target error) bool {
	return target == ErrProviderUnauthorized && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// MissingCredentialsError is returned by a provider's New when neither its
// Options nor the vendor's environment variables give a credential.
type MissingCredentialsError struct {
	Provider string
	// Option is the Options field that takes the credential.
	Option string
	// EnvVars are the environment variables read, in order.
	EnvVars []string
}

func (e *MissingCredentialsError) Error() string {
	return fmt.Sprintf("%s: no credentials: set %s or Options.%s", e.Provider, strings.Join(e.EnvVars, " or "), e.Option)
}

// Package httpjson holds the request decoding and response encoding every
// JSON endpoint shares. Extractor failures (wrong content type, malformed or
// mis-shaped JSON, bad query strings, oversized bodies) answer in plain text
// with the same statuses upstream's framework uses, because the official SDK
// and existing scripts branch on those statuses.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// TextError is an extractor error answered as text/plain.
type TextError struct {
	Status int
	Msg    string
}

func (e *TextError) Error() string { return e.Msg }

// BodyTooLargeMsg is upstream's 413 text for bodies over the limit.
const BodyTooLargeMsg = "Failed to buffer the request body: length limit exceeded"

// WriteText answers a plain-text error.
func WriteText(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// Write answers v as JSON with an explicit Content-Length (no chunking).
func Write(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Write(w, problem.Stream("encoding response: "+err.Error()))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// NoContent answers 204.
func NoContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// Error answers err: TextError as text, a problem as problem+json, anything
// else as a 502 stream_error.
func Error(w http.ResponseWriter, err error) {
	var te *TextError
	if errors.As(err, &te) {
		WriteText(w, te.Status, te.Msg)
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		WriteText(w, http.StatusRequestEntityTooLarge, BodyTooLargeMsg)
		return
	}
	problem.WriteError(w, err)
}

// IsJSONContentType reports whether the Content-Type media type is
// application/json or application/*+json (parameters ignored).
func IsJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// ReadBody reads the whole (already size-limited) body.
func ReadBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &TextError{http.StatusRequestEntityTooLarge, BodyTooLargeMsg}
	}
	var p *problem.Problem
	if errors.As(err, &p) {
		return nil, err // e.g. the server's 408 for a stalled body
	}
	if err != nil {
		return nil, &TextError{http.StatusBadRequest, "Failed to buffer the request body: " + err.Error()}
	}
	return b, nil
}

// Decode checks the content type and decodes the JSON body into v.
// Unknown fields are ignored, as upstream does.
func Decode(r *http.Request, v any) error {
	if !IsJSONContentType(r.Header.Get("Content-Type")) {
		return &TextError{http.StatusUnsupportedMediaType, "Expected request with `Content-Type: application/json`"}
	}
	body, err := ReadBody(r)
	if err != nil {
		return err
	}
	return Unmarshal(body, v)
}

// Unmarshal decodes body into v with upstream's error statuses.
func Unmarshal(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return &TextError{http.StatusBadRequest, "Failed to parse the request body as JSON: EOF while parsing a value at line 1 column 0"}
	}
	if !json.Valid(body) {
		err := json.Unmarshal(body, new(any))
		return &TextError{http.StatusBadRequest, "Failed to parse the request body as JSON: " + Describe(err)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return Unprocessable(Describe(err))
	}
	return nil
}

// Unprocessable is the 422 for well-formed JSON of the wrong shape.
func Unprocessable(msg string) error {
	return &TextError{http.StatusUnprocessableEntity, "Failed to deserialize the JSON body into the target type: " + msg}
}

// MissingField is the 422 for a required JSON field that is absent.
func MissingField(name string) error { return Unprocessable(fmt.Sprintf("missing field `%s`", name)) }

// Describe words a JSON decoding error with its position or the offending
// type, for extractor error messages.
func Describe(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		if ute.Field != "" {
			return fmt.Sprintf("%s: invalid type: %s, expected %s", ute.Field, ute.Value, ute.Type)
		}
		return fmt.Sprintf("invalid type: %s, expected %s", ute.Value, ute.Type)
	}
	return err.Error()
}

// QueryError is the 400 text answer for a bad query string.
func QueryError(msg string) error {
	return &TextError{http.StatusBadRequest, "Failed to deserialize query string: " + msg}
}

// QueryBool parses an optional strict boolean query parameter (only "true"
// and "false" are accepted, as upstream).
func QueryBool(r *http.Request, name string) (bool, error) {
	v, ok := r.URL.Query()[name]
	if !ok || len(v) == 0 {
		return false, nil
	}
	switch v[0] {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, QueryError("provided string was not `true` or `false`")
}

// QueryString returns a required query parameter.
func QueryString(r *http.Request, name string) (string, error) {
	v, ok := r.URL.Query()[name]
	if !ok || len(v) == 0 {
		return "", QueryError(fmt.Sprintf("missing field `%s`", name))
	}
	return v[0], nil
}

// QueryUint parses an optional unsigned integer query parameter.
func QueryUint(r *http.Request, name string) (uint64, bool, error) {
	v, ok := r.URL.Query()[name]
	if !ok || len(v) == 0 {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v[0], 10, 64)
	if err != nil {
		return 0, false, QueryError(fmt.Sprintf("%s: invalid digit found in string", name))
	}
	return n, true, nil
}

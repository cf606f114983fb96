package wire

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// DecodeInput decodes an actor's creation input as clients send it (the
// rvt-input query parameter, base64url; the input field of PUT/POST
// /actors, base64): CBOR after the JSON-compat layer. It returns canonical
// JSON, nil for an empty s or an undefined value.
func DecodeInput(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	enc := base64.RawURLEncoding
	if strings.ContainsAny(s, "+/") {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, malformed("input is not base64: %v", err)
	}
	out, undef, err := cborToCanonical(nil, b, true)
	if err != nil || undef {
		return nil, err
	}
	return out, nil
}

package wire

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Encoding is a client-protocol encoding, chosen by the client per connection
// (the rivet_encoding.* WebSocket sub-protocol) or per request (the
// x-rivet-encoding header).
type Encoding uint8

const (
	// JSON is the "json" encoding: UTF-8 JSON text with the JSON-compat value
	// layer, no version number.
	JSON Encoding = iota + 1
	// BARE is the "bare" encoding (rivetkit's default): a u16 little-endian
	// protocol version, then a BARE body whose data fields hold CBOR.
	BARE
)

// String returns the name the client uses for e.
func (e Encoding) String() string {
	switch e {
	case JSON:
		return "json"
	case BARE:
		return "bare"
	default:
		return fmt.Sprintf("Encoding(%d)", uint8(e))
	}
}

// ContentType is the HTTP Content-Type rivetkit uses for bodies in e.
func (e Encoding) ContentType() string {
	if e == JSON {
		return ContentTypeJSON
	}
	return "application/octet-stream"
}

// ContentTypeJSON is the Content-Type of JSON bodies, and of every HTTP error
// body (see [EncodeHTTPError]).
const ContentTypeJSON = "application/json"

// ParseEncoding maps a client's encoding name to an Encoding. "cbor" is a
// valid rivetkit encoding this server does not implement: it yields an error
// wrapping [ErrUnsupportedEncoding], as does any unknown name.
func ParseEncoding(s string) (Encoding, error) {
	switch s {
	case "json":
		return JSON, nil
	case "bare":
		return BARE, nil
	default:
		return 0, fmt.Errorf("%w: %q", ErrUnsupportedEncoding, s)
	}
}

// Errors. Every decoding failure wraps ErrMalformed, so a caller maps it to
// Rivet's ("message", "malformed") with one errors.Is; the others narrow the
// cause.
var (
	// ErrMalformed: the frame or body cannot be decoded.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrBadValue: the envelope decoded, but a value inside the args is not
	// representable (an unknown "$tag" pair, bad $BigInt digits, bad base64,
	// an unsupported CBOR tag or map key). It also wraps ErrMalformed.
	ErrBadValue = errors.New("wire: unsupported value")
	// ErrUnsupportedVersion: a BARE version outside [MinVersion, MaxVersion].
	// Wraps ErrMalformed when it comes from decoding.
	ErrUnsupportedVersion = errors.New("wire: unsupported protocol version")
	// ErrUnsupportedEncoding: an encoding name other than "json" or "bare".
	ErrUnsupportedEncoding = errors.New("wire: unsupported encoding")
	// ErrInvalidOutgoing: an outgoing message the codec refuses to encode
	// (not valid JSON, Event args that are not an array, an unknown kind). It
	// is a programming error on the server side, never the client's.
	ErrInvalidOutgoing = errors.New("wire: invalid outgoing message")
)

// BARE protocol versions.
const (
	// MinVersion is the oldest BARE client protocol decoded and encoded
	// (rivetkit 2.0.x).
	MinVersion = 2
	// MaxVersion is the newest (rivetkit 2.3.x).
	MaxVersion = 4
	// InitVersion is the version to send Init in before the client has said
	// anything: Init's bytes are identical in v2–v4 and every client decodes
	// older versions, while a client rejects newer ones.
	InitVersion = 2
)

// ToServerKind tells which ToServer message a frame holds.
type ToServerKind uint8

const (
	// Action is an ActionRequest: ID, Name, Args.
	Action ToServerKind = iota + 1
	// Subscription is a SubscriptionRequest: EventName, Subscribe.
	Subscription
)

// ToServer is a message from the client on a connection.
type ToServer struct {
	Kind ToServerKind
	// Action.
	ID   uint64
	Name string
	// Args is the canonical JSON array of the action's arguments.
	Args json.RawMessage
	// Subscription.
	EventName string
	Subscribe bool
}

// ActorSpecifier names the actor instance an error comes from (protocol v4;
// dropped for older clients). An empty Key is sent as absent.
type ActorSpecifier struct {
	ActorID    string
	Generation uint64
	Key        string
}

// ToClientKind tells which ToClient message to send.
type ToClientKind uint8

const (
	// Init: ActorID, ConnectionID. Must be the first message on a connection.
	Init ToClientKind = iota + 1
	// Error: Group, Code, Message, optional Metadata, ActionID (nil for an
	// error about the whole connection) and Actor.
	Error
	// ActionResponse: ID, Output.
	ActionResponse
	// Event: Name, Args (a canonical JSON array: the client spreads it into
	// the listener's parameters).
	Event
)

// ToClient is a message to the client on a connection. Metadata, Output and
// Args are canonical JSON; a nil Metadata is absent and a nil Output is the
// JavaScript undefined.
type ToClient struct {
	Kind ToClientKind
	// Init.
	ActorID, ConnectionID string
	// Error.
	Group, Code, Message string
	Metadata             json.RawMessage
	ActionID             *uint64
	Actor                *ActorSpecifier
	// ActionResponse.
	ID     uint64
	Output json.RawMessage
	// Event.
	Name string
	Args json.RawMessage
}

// HTTPError is the body of a failed stateless HTTP action.
type HTTPError struct {
	Group, Code, Message string
	Metadata             json.RawMessage // nil: absent
	Actor                *ActorSpecifier // nil: absent
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func badValue(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrMalformed, ErrBadValue}, args...)...)
}

func invalidOutgoing(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOutgoing}, args...)...)
}

// sizeHint is a frame size that usually needs no growing: CBOR is rarely
// longer than the JSON it comes from except for short floats.
func sizeHint(m ToClient) int {
	n := len(m.ActorID) + len(m.ConnectionID) + len(m.Group) + len(m.Code) + len(m.Message) +
		len(m.Metadata) + len(m.Output) + len(m.Name) + len(m.Args)
	return n + n/4 + 96
}

func checkVersion(v uint16) error {
	if v < MinVersion || v > MaxVersion {
		return fmt.Errorf("%w: %d (supported %d–%d)", ErrUnsupportedVersion, v, MinVersion, MaxVersion)
	}
	return nil
}

// DecodeToServer decodes one WebSocket message from the client. JSON frames
// may arrive as text or binary (both carry UTF-8 JSON); version is 0 for JSON
// and the frame's protocol version for BARE, which the server should answer
// in.
func DecodeToServer(enc Encoding, frame []byte) (msg ToServer, version uint16, err error) {
	switch enc {
	case JSON:
		msg, err = decodeToServerJSON(frame)
		return msg, 0, err
	case BARE:
		return decodeToServerBARE(frame)
	default:
		return ToServer{}, 0, fmt.Errorf("%w: %v", ErrUnsupportedEncoding, enc)
	}
}

// EncodeToClient encodes m for a client speaking enc (and, for BARE, protocol
// version). text reports whether the frame must be sent as a text message.
func EncodeToClient(enc Encoding, version uint16, m ToClient) (frame []byte, text bool, err error) {
	switch enc {
	case JSON:
		frame, err = encodeToClientJSON(make([]byte, 0, sizeHint(m)), m)
		return frame, true, err
	case BARE:
		if err := checkVersion(version); err != nil {
			return nil, false, err
		}
		frame, err = encodeToClientBARE(make([]byte, 0, sizeHint(m)), version, m)
		return frame, false, err
	default:
		return nil, false, fmt.Errorf("%w: %v", ErrUnsupportedEncoding, enc)
	}
}

// DecodeHTTPArgs decodes the body of a stateless action request (JSON
// {"args": […]} or a BARE HttpActionRequest) into the canonical JSON args
// array. version is 0 for JSON.
func DecodeHTTPArgs(enc Encoding, body []byte) (args json.RawMessage, version uint16, err error) {
	switch enc {
	case JSON:
		args, err = decodeHTTPArgsJSON(body)
		return args, 0, err
	case BARE:
		return decodeHTTPArgsBARE(body)
	default:
		return nil, 0, fmt.Errorf("%w: %v", ErrUnsupportedEncoding, enc)
	}
}

// EncodeHTTPOutput encodes a stateless action's result (canonical JSON; nil
// is undefined in BARE, null in JSON) as a JSON {"output": …} or a BARE HttpActionResponse in
// version (answer in the request's version).
func EncodeHTTPOutput(enc Encoding, version uint16, output json.RawMessage) ([]byte, error) {
	switch enc {
	case JSON:
		return encodeHTTPOutputJSON(make([]byte, 0, len(output)+len(output)/4+16), output)
	case BARE:
		if err := checkVersion(version); err != nil {
			return nil, err
		}
		return encodeHTTPOutputBARE(make([]byte, 0, len(output)+len(output)/4+16), version, output)
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedEncoding, enc)
	}
}

// EncodeHTTPError encodes a failed stateless action's error body. It is always
// JSON, to be sent with Content-Type [ContentTypeJSON]: every client from
// 2.0 on parses a JSON error body whatever encoding it asked for, whereas a
// BARE error body is versioned and an older client cannot read a newer one.
func EncodeHTTPError(e HTTPError) ([]byte, error) {
	return encodeHTTPErrorJSON(nil, e)
}

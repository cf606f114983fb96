// Package wire is the codec for RivetKit's client protocol, the messages the
// official rivetkit client (2.0.x, 2.2.x, 2.3.x) exchanges with an actor over
// a WebSocket and over stateless HTTP actions. It is pure: bytes in, bytes
// out, no I/O.
//
// # Canonical values
//
// The runtime sees every value (action arguments and outputs, event
// arguments, error metadata) as plain JSON, a json.RawMessage that Go actions
// decode into typed inputs with encoding/json. The codec converts between
// that canonical form and what each client version puts on the wire. The
// rules below are facts about the rivetkit sources (encoding.ts, serde.ts,
// the generated client-protocol v2–v4 schemas); the tests check them against
// the real rivetkit encoders (testdata/gen.mjs).
//
// # JSON encoding (all versions)
//
// Messages are {"body":{"tag":…,"val":{…}}}, UTF-8 JSON, no version. The
// client writes text frames; it also reads binary frames holding JSON, and so
// does DecodeToServer. Values pass through the client's JSON-compat layer
// (jsonStringifyCompat / jsonParseCompat), which spells values JSON lacks as
// two-element arrays whose first element is a "$" string. Incoming:
//
//   - ["$BigInt","123"] becomes the JSON number 123 with its exact digits, so
//     a bigint decodes into a Go int64/uint64 (or big.Int) without loss.
//   - ["$Uint8Array",b64] and ["$ArrayBuffer",b64] become the base64 JSON
//     string, exactly what encoding/json reads into a []byte.
//   - ["$Undefined",0] becomes null in an array and removes the member in an
//     object (undefined members do not exist in JavaScript either).
//   - ["$Set",[…]] becomes the array.
//   - ["$$x",v] is a user array ["$x",v] that the client escaped; it is
//     unescaped (one "$" removed).
//   - any other ["$tag",v] pair is rejected (ErrBadValue): the client itself
//     throws on an unknown tag, so it is corrupt or from a newer protocol.
//
// Outgoing, every two-element array whose first element is a string starting
// with "$" is escaped (["$x",v] → ["$$x",v]), or the client's parser would
// throw on it; every integer outside ±(2^53−1) becomes ["$BigInt","…"], so a
// uint64 reaches JavaScript as an exact bigint rather than a rounded number.
// Message ids are bigints on the wire (["$BigInt","0"]); the client's schema
// rejects a plain number and the call would never settle (a plain integer id
// is accepted incoming). Error.actionId is written as null for
// connection-level errors: the schema requires the key. A nil output is
// written as null: the schema (zod 4) also requires output, and JSON cannot
// carry undefined to 2.0/2.2 clients, which reject ["$Undefined",0].
// Outgoing values must be valid UTF-8 JSON (ErrInvalidOutgoing otherwise): a
// browser closes a WebSocket on a text frame that is not UTF-8.
//
// # BARE encoding (versions 2, 3, 4)
//
// rivetkit's default. Every message is a u16 little-endian protocol version
// followed by a BARE body (uint = LEB128 varint, string/data = uint length +
// bytes, optional = one flag byte, union tag = one byte). ToServer: 0
// ActionRequest{id, name, args data}, 1 SubscriptionRequest{eventName,
// subscribe}. ToClient: 0 Init{actorId, connectionId}, 1 Error{group, code,
// message, metadata data?, actionId uint?, actor ActorSpecifier?}, 2
// ActionResponse{id, output data}, 3 Event{name, args data}. The actor field
// exists only in v4 and is dropped for v2/v3. HTTP bodies are
// HttpActionRequest{args data} and HttpActionResponse{output data}.
//
// A client decodes every version up to its own and rejects newer ones
// (2.0.x speaks 2, 2.2.x 3, 2.3.x 4), so the server answers in the version of
// the client's own messages, and sends Init, which comes before any client
// message, in InitVersion (2): its bytes are the same in v2–v4.
//
// Each data field holds one CBOR item, and its meaning changed without a
// protocol bump:
//
//   - v4 (rivetkit 2.3) encodes the JSON-compat form with cbor-x
//     (encodeCborCompat), so the same "$" pairs as in JSON appear inside CBOR
//     and are revived and escaped exactly as above. Uint8Array therefore
//     arrives as ["$Uint8Array",b64], not as a CBOR byte string.
//   - v2/v3 (rivetkit 2.0, 2.2) cbor-encode the raw value: bigints as CBOR
//     integers or bignums (tags 2/3), Uint8Array as a byte string, undefined
//     as CBOR undefined, and no "$" escaping at all.
//
// Incoming CBOR is checked for well-formedness (fxamacker/cbor) and then
// transcoded: integers and bignums to exact JSON numbers, byte strings to
// base64 strings, undefined as above, floats as JSON.stringify writes them
// (integral values in plain digits, NaN/±Infinity as null), Date (tag 1) as
// its ISO string (what JSON.stringify writes and time.Time reads), and
// integer map keys as decimal strings. Other tags are rejected (ErrBadValue).
//
// Outgoing CBOR mimics cbor-x encoding the JavaScript value: an integer in
// [-2^32, 2^32) is a CBOR integer; any other number is a float64, because
// cbor-x decodes 64-bit CBOR integers as BigInt and a Date.now()-sized
// integer would reach the browser as 1796…n; an integer beyond ±(2^53−1) is
// a bigint: the ["$BigInt","…"] pair in v4, a 64-bit CBOR integer or bignum
// in v2/v3. An absent output is undefined (["$Undefined",0] in v4, CBOR
// undefined before).
//
// The walkers are linear in the input: one pre-pass indexes every container
// (its element count, and whether it is a "$" pair), so nested pairs never
// make the codec look ahead repeatedly.
//
// # HTTP errors
//
// The client parses an error response as JSON whenever its Content-Type is
// application/json, whatever encoding it asked for, so EncodeHTTPError always
// writes JSON: {"group","code","message","metadata"?,"actor"?}.
//
// # Errors
//
// Every decoding failure wraps ErrMalformed (Rivet's "message"/"malformed");
// ErrBadValue and ErrUnsupportedVersion narrow it. The codec never panics on
// client input (FuzzDecodeToServer).
package wire

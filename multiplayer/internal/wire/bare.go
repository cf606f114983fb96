package wire

import (
	"encoding/binary"
	"unicode/utf8"
)

// BARE primitives (https://baremessages.org) as rivetkit's generated codecs
// use them, and the client-protocol messages built from them.

type bareReader struct {
	b   []byte
	i   int
	err error
}

func (r *bareReader) fail(what string) {
	if r.err == nil {
		r.err = malformed("BARE: %s at offset %d", what, r.i)
	}
}

func (r *bareReader) u8() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *bareReader) boolean() bool {
	switch r.u8() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail("bool is neither 0 nor 1")
		return false
	}
}

// uint reads a LEB128 varint, rejecting overlong and non-minimal encodings
// as the BARE spec requires.
func (r *bareReader) uint() uint64 {
	var v uint64
	for n := 0; n < 10; n++ {
		c := r.u8()
		if r.err != nil {
			return 0
		}
		if n == 9 && c > 1 {
			r.fail("uint overflows 64 bits")
			return 0
		}
		v |= uint64(c&0x7f) << (7 * n)
		if c < 0x80 {
			if c == 0 && n > 0 {
				r.fail("non-minimal uint")
				return 0
			}
			return v
		}
	}
	r.fail("uint too long")
	return 0
}

func (r *bareReader) data() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.i) {
		r.fail("truncated data")
		return nil
	}
	d := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return d
}

func (r *bareReader) str() string {
	d := r.data()
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(d) {
		r.fail("string is not UTF-8")
		return ""
	}
	return string(d)
}

func (r *bareReader) end() {
	if r.err == nil && r.i != len(r.b) {
		r.fail("trailing bytes")
	}
}

func appendBareUint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

func appendBareString(dst []byte, s string) []byte {
	dst = appendBareUint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBareBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// beginBareData reserves room for a data field's length prefix; endBareData
// writes it once the CBOR is in place. A one-byte prefix covers < 128 bytes;
// longer payloads shift once, which is cheap next to encoding them.
func beginBareData(dst []byte) ([]byte, int) {
	return append(dst, 0), len(dst)
}

func endBareData(dst []byte, start int) []byte {
	n := len(dst) - start - 1
	if n < 0x80 {
		dst[start] = byte(n)
		return dst
	}
	var h [10]byte
	hd := appendBareUint(h[:0], uint64(n))
	extra := len(hd) - 1
	dst = append(dst, h[:extra]...) // grow
	copy(dst[start+len(hd):], dst[start+1:start+1+n])
	copy(dst[start:], hd)
	return dst
}

// appendBareCBOR writes canonical JSON v as a BARE data field holding CBOR
// with the semantics of version.
func appendBareCBOR(dst []byte, v []byte, version uint16) []byte {
	dst, start := beginBareData(dst)
	if v == nil {
		dst = appendCBORUndefined(dst, version >= 4)
	} else {
		dst = appendCBORFromJSON(dst, v, version >= 4)
	}
	return endBareData(dst, start)
}

// readVersion reads the u16 little-endian version prefix.
func readVersion(frame []byte) (uint16, error) {
	if len(frame) < 2 {
		return 0, malformed("BARE: no version prefix")
	}
	v := binary.LittleEndian.Uint16(frame)
	if err := checkVersion(v); err != nil {
		return v, malformed("%w", err)
	}
	return v, nil
}

// canonicalArgs converts a data field holding action arguments.
func canonicalArgs(d []byte, version uint16) ([]byte, error) {
	out, undef, err := cborToCanonical(make([]byte, 0, len(d)+len(d)/2+8), d, version >= 4)
	if err != nil {
		return nil, err
	}
	if undef || len(out) == 0 || out[0] != '[' {
		return nil, badValue("action args are not an array")
	}
	return out, nil
}

func decodeToServerBARE(frame []byte) (ToServer, uint16, error) {
	version, err := readVersion(frame)
	if err != nil {
		return ToServer{}, version, err
	}
	r := bareReader{b: frame, i: 2}
	var m ToServer
	switch tag := r.u8(); {
	case r.err != nil:
	case tag == 0:
		m.Kind = Action
		m.ID = r.uint()
		m.Name = r.str()
		d := r.data()
		r.end()
		if r.err != nil {
			return ToServer{}, version, r.err
		}
		if m.Args, err = canonicalArgs(d, version); err != nil {
			return ToServer{}, version, err
		}
		return m, version, nil
	case tag == 1:
		m.Kind = Subscription
		m.EventName = r.str()
		m.Subscribe = r.boolean()
	default:
		r.fail("unknown ToServer tag")
	}
	r.end()
	if r.err != nil {
		return ToServer{}, version, r.err
	}
	return m, version, nil
}

func encodeToClientBARE(dst []byte, version uint16, m ToClient) ([]byte, error) {
	if err := checkOutgoing(m); err != nil {
		return nil, err
	}
	dst = binary.LittleEndian.AppendUint16(dst, version)
	switch m.Kind {
	case Init:
		dst = append(dst, 0)
		dst = appendBareString(dst, m.ActorID)
		dst = appendBareString(dst, m.ConnectionID)
	case Error:
		dst = append(dst, 1)
		dst = appendBareString(dst, m.Group)
		dst = appendBareString(dst, m.Code)
		dst = appendBareString(dst, m.Message)
		dst = appendBareBool(dst, m.Metadata != nil)
		if m.Metadata != nil {
			dst = appendBareCBOR(dst, m.Metadata, version)
		}
		dst = appendBareBool(dst, m.ActionID != nil)
		if m.ActionID != nil {
			dst = appendBareUint(dst, *m.ActionID)
		}
		if version >= 4 {
			dst = appendBareActor(dst, m.Actor)
		}
	case ActionResponse:
		dst = append(dst, 2)
		dst = appendBareUint(dst, m.ID)
		dst = appendBareCBOR(dst, m.Output, version)
	case Event:
		dst = append(dst, 3)
		dst = appendBareString(dst, m.Name)
		dst = appendBareCBOR(dst, m.Args, version)
	}
	return dst, nil
}

func appendBareActor(dst []byte, a *ActorSpecifier) []byte {
	dst = appendBareBool(dst, a != nil)
	if a == nil {
		return dst
	}
	dst = appendBareString(dst, a.ActorID)
	dst = appendBareUint(dst, a.Generation)
	dst = appendBareBool(dst, a.Key != "")
	if a.Key != "" {
		dst = appendBareString(dst, a.Key)
	}
	return dst
}

func decodeHTTPArgsBARE(body []byte) ([]byte, uint16, error) {
	version, err := readVersion(body)
	if err != nil {
		return nil, version, err
	}
	r := bareReader{b: body, i: 2}
	d := r.data()
	r.end()
	if r.err != nil {
		return nil, version, r.err
	}
	args, err := canonicalArgs(d, version)
	return args, version, err
}

func encodeHTTPOutputBARE(dst []byte, version uint16, output []byte) ([]byte, error) {
	if output != nil && !validJSONText(output) {
		return nil, invalidOutgoing("output is not valid JSON")
	}
	dst = binary.LittleEndian.AppendUint16(dst, version)
	return appendBareCBOR(dst, output, version), nil
}

package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR side of the value layer: a BARE data field holds one CBOR item
// written by cbor-x. compat selects protocol v4 semantics (the item is the
// JSON-compat encoding of the value) over v2/v3 (the raw value).

// maxCBORDepth bounds nesting in incoming CBOR. It is far above anything an
// action's arguments need and keeps the recursive transcoder's stack small.
const maxCBORDepth = 1000

// cborCheck validates an incoming CBOR item before the transcoder walks it:
// well-formed, no trailing bytes, valid UTF-8 text, bounded nesting. Element
// counts are bounded by the frame itself (the gateway limits frame size).
var cborCheck = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  maxCBORDepth,
		MaxArrayElements: 2147483647,
		MaxMapPairs:      2147483647,
	}.DecMode()
	if err != nil {
		panic(err) // static options
	}
	return dm
}()

// cborToCanonical converts one CBOR data field to canonical JSON appended to
// dst. A top-level undefined is reported, with nothing appended.
func cborToCanonical(dst, item []byte, compat bool) (_ []byte, undef bool, err error) {
	if err := cborCheck.Wellformed(item); err != nil {
		return dst, false, malformed("CBOR: %v", err)
	}
	r := cborReader{b: item}
	dst, undef, err = r.value(dst, compat)
	if err == nil && r.i != len(r.b) {
		err = malformed("CBOR: trailing bytes")
	}
	return dst, undef, err
}

type cborReader struct {
	b []byte
	i int
}

const indefinite = ^uint64(0)

var errTruncated = malformed("CBOR: truncated")

// head reads an item head. For indefinite-length strings, arrays and maps arg
// is indefinite; for major 7, info tells simple values and floats apart.
func (r *cborReader) head() (major, info byte, arg uint64, err error) {
	if r.i >= len(r.b) {
		return 0, 0, 0, errTruncated
	}
	c := r.b[r.i]
	r.i++
	major, info = c>>5, c&0x1f
	switch {
	case info < 24:
		return major, info, uint64(info), nil
	case info <= 27:
		n := 1 << (info - 24)
		if r.i+n > len(r.b) {
			return 0, 0, 0, errTruncated
		}
		p := r.b[r.i : r.i+n]
		r.i += n
		switch n {
		case 1:
			arg = uint64(p[0])
		case 2:
			arg = uint64(binary.BigEndian.Uint16(p))
		case 4:
			arg = uint64(binary.BigEndian.Uint32(p))
		default:
			arg = binary.BigEndian.Uint64(p)
		}
		return major, info, arg, nil
	case info == 31 && major >= 2 && major <= 5:
		return major, info, indefinite, nil
	default:
		return 0, 0, 0, malformed("CBOR: bad head 0x%02x", c)
	}
}

// isBreak consumes a "break" byte if one is next.
func (r *cborReader) isBreak() bool {
	if r.i < len(r.b) && r.b[r.i] == 0xff {
		r.i++
		return true
	}
	return false
}

// str reads the content of a byte or text string whose head was read. It
// appends to scratch only for indefinite-length strings.
func (r *cborReader) str(major byte, arg uint64, scratch []byte) ([]byte, error) {
	if arg != indefinite {
		if arg > uint64(len(r.b)-r.i) {
			return nil, errTruncated
		}
		s := r.b[r.i : r.i+int(arg)]
		r.i += int(arg)
		return s, nil
	}
	out := scratch[:0]
	for !r.isBreak() {
		m, _, n, err := r.head()
		if err != nil {
			return nil, err
		}
		if m != major || n == indefinite {
			return nil, malformed("CBOR: bad string chunk")
		}
		chunk, err := r.str(m, n, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
	}
	return out, nil
}

// text reads the content of a text string whose head was read. The client's
// TextEncoder never writes invalid UTF-8, so it is malformed.
func (r *cborReader) text(arg uint64) ([]byte, error) {
	s, err := r.str(3, arg, nil)
	if err == nil && !utf8.Valid(s) {
		err = malformed("CBOR: text is not UTF-8")
	}
	return s, err
}

// peekText reads a text string item if one is next, without consuming anything
// otherwise.
func (r *cborReader) peekText() ([]byte, bool) {
	save := r.i
	m, _, n, err := r.head()
	if err != nil || m != 3 {
		r.i = save
		return nil, false
	}
	s, err := r.text(n)
	if err != nil {
		r.i = save
		return nil, false
	}
	return s, true
}

func (r *cborReader) value(dst []byte, compat bool) (_ []byte, undef bool, err error) {
	major, info, arg, err := r.head()
	if err != nil {
		return dst, false, err
	}
	switch major {
	case 0:
		return strconv.AppendUint(dst, arg, 10), false, nil
	case 1:
		if arg == math.MaxUint64 {
			return append(dst, "-18446744073709551616"...), false, nil
		}
		dst = append(dst, '-')
		return strconv.AppendUint(dst, arg+1, 10), false, nil
	case 2:
		b, err := r.str(2, arg, nil)
		if err != nil {
			return dst, false, err
		}
		return appendBase64JSON(dst, b), false, nil
	case 3:
		s, err := r.text(arg)
		if err != nil {
			return dst, false, err
		}
		return appendJSONString(dst, s), false, nil
	case 4:
		if compat && arg == 2 {
			save := r.i
			if tag, ok := r.peekText(); ok && len(tag) > 0 && tag[0] == '$' {
				dst, undef, err = r.tagged(dst, tag)
				return dst, undef, err
			}
			r.i = save
		}
		dst, err = r.array(dst, arg, compat)
		return dst, false, err
	case 5:
		dst = append(dst, '{')
		written := 0
		for n := uint64(0); ; n++ {
			if arg == indefinite {
				if r.isBreak() {
					break
				}
			} else if n == arg {
				break
			}
			mark := len(dst)
			if written > 0 {
				dst = append(dst, ',')
			}
			if dst, err = r.key(dst); err != nil {
				return dst, false, err
			}
			dst = append(dst, ':')
			var u bool
			if dst, u, err = r.value(dst, compat); err != nil {
				return dst, false, err
			}
			if u {
				dst = dst[:mark]
			} else {
				written++
			}
		}
		return append(dst, '}'), false, nil
	case 6:
		return r.tag(dst, arg, compat)
	default: // 7
		switch info {
		case 20:
			return append(dst, "false"...), false, nil
		case 21:
			return append(dst, "true"...), false, nil
		case 22:
			return append(dst, "null"...), false, nil
		case 23:
			return dst, true, nil
		case 25:
			return appendJSNumber(dst, halfToFloat(uint16(arg))), false, nil
		case 26:
			return appendJSNumber(dst, float64(math.Float32frombits(uint32(arg)))), false, nil
		case 27:
			return appendJSNumber(dst, math.Float64frombits(arg)), false, nil
		default:
			return dst, false, badValue("CBOR simple value %d", arg)
		}
	}
}

// key appends a map key as a JSON object key. cbor-x writes object keys as
// text; integer keys (from a JavaScript Map) become their decimal string, as
// they would as JavaScript object keys.
// array converts n items (up to a break when n is indefinite) to a JSON
// array; an undefined item becomes null, as JSON has no undefined.
func (r *cborReader) array(dst []byte, n uint64, compat bool) ([]byte, error) {
	dst = append(dst, '[')
	for k := uint64(0); ; k++ {
		if n == indefinite {
			if r.isBreak() {
				break
			}
		} else if k == n {
			break
		}
		if k > 0 {
			dst = append(dst, ',')
		}
		var (
			u   bool
			err error
		)
		if dst, u, err = r.value(dst, compat); err != nil {
			return dst, err
		}
		if u {
			dst = append(dst, "null"...)
		}
	}
	return append(dst, ']'), nil
}

func (r *cborReader) key(dst []byte) ([]byte, error) {
	major, _, arg, err := r.head()
	if err != nil {
		return dst, err
	}
	switch major {
	case 3:
		s, err := r.text(arg)
		if err != nil {
			return dst, err
		}
		return appendJSONString(dst, s), nil
	case 0:
		dst = append(dst, '"')
		dst = strconv.AppendUint(dst, arg, 10)
		return append(dst, '"'), nil
	case 1:
		if arg == math.MaxUint64 {
			return append(dst, `"-18446744073709551616"`...), nil
		}
		dst = append(dst, '"', '-')
		dst = strconv.AppendUint(dst, arg+1, 10)
		return append(dst, '"'), nil
	default:
		return dst, badValue("CBOR map key of major type %d", major)
	}
}

// tagged revives a v4 ["$tag", value] pair whose tag text was read.
func (r *cborReader) tagged(dst, tag []byte) (_ []byte, undef bool, err error) {
	switch string(tag) {
	case tagBigInt:
		s, ok := r.peekText()
		if !ok {
			return dst, false, badValue("%s value is not a string", tagBigInt)
		}
		if dst, ok = appendBigIntDigits(dst, s); !ok {
			return dst, false, badValue("%s value %q is not an integer", tagBigInt, s)
		}
		return dst, false, nil
	case tagUint8Array, tagArrayBuffer:
		s, ok := r.peekText()
		if !ok {
			return dst, false, badValue("%s value is not a string", tag)
		}
		if dst, ok = appendCanonicalBase64(dst, s); !ok {
			return dst, false, badValue("%s value is not base64", tag)
		}
		return dst, false, nil
	case tagUndefined:
		mark := len(dst)
		dst, _, err = r.value(dst, false) // the value is ignored, as the client does
		return dst[:mark], true, err
	case tagSet:
		if r.i >= len(r.b) || r.b[r.i]>>5 != 4 {
			return dst, false, badValue("%s value is not an array", tagSet)
		}
		// A two-element set must not be taken for a compat pair: read the
		// array's head here and its elements one by one.
		_, _, n, err := r.head()
		if err != nil {
			return dst, false, err
		}
		dst, err = r.array(dst, n, true)
		return dst, false, err
	}
	if len(tag) < 2 || tag[1] != '$' {
		return dst, false, badValue("unknown JSON-compat tag %q", tag)
	}
	dst = append(dst, '[')
	dst = appendJSONString(dst, tag[1:])
	dst = append(dst, ',')
	var u bool
	if dst, u, err = r.value(dst, true); err != nil {
		return dst, false, err
	}
	if u {
		dst = append(dst, "null"...)
	}
	return append(dst, ']'), false, nil
}

// byteString reads the byte string a tag wraps; what names it in the error.
func (r *cborReader) byteString(what string) ([]byte, error) {
	major, _, arg, err := r.head()
	if err != nil {
		return nil, err
	}
	if major != 2 {
		return nil, badValue("%s", what)
	}
	return r.str(2, arg, nil)
}

// tag converts the tagged items cbor-x produces for plain values.
func (r *cborReader) tag(dst []byte, number uint64, compat bool) (_ []byte, undef bool, err error) {
	switch number {
	case 2, 3: // bignum: a v2/v3 client's bigint beyond 64 bits
		b, err := r.byteString("bignum content is not a byte string")
		if err != nil {
			return dst, false, err
		}
		n := new(big.Int).SetBytes(b)
		if number == 3 {
			n.Neg(n).Sub(n, big.NewInt(1))
		}
		return n.Append(dst, 10), false, nil
	case 1: // epoch time: a JavaScript Date. Canonical form is its toJSON().
		major, info, arg, err := r.head()
		if err != nil {
			return dst, false, err
		}
		var sec float64
		switch {
		case major == 0:
			sec = float64(arg)
		case major == 1:
			sec = -1 - float64(arg)
		case major == 7 && info == 25:
			sec = halfToFloat(uint16(arg))
		case major == 7 && info == 26:
			sec = float64(math.Float32frombits(uint32(arg)))
		case major == 7 && info == 27:
			sec = math.Float64frombits(arg)
		default:
			return dst, false, badValue("epoch time content")
		}
		ms := math.Round(sec * 1000)
		// The years JSON.stringify writes in four digits.
		if math.IsNaN(ms) || ms < -62167219200000 || ms > 253402300799999 {
			return dst, false, badValue("date out of range")
		}
		t := time.UnixMilli(int64(ms)).UTC()
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
		return append(dst, '"'), false, nil
	case 0: // date/time string
		major, _, arg, err := r.head()
		if err != nil {
			return dst, false, err
		}
		if major != 3 {
			return dst, false, badValue("date/time string content")
		}
		s, err := r.text(arg)
		if err != nil {
			return dst, false, err
		}
		return appendJSONString(dst, s), false, nil
	case 64: // uint8 typed array
		b, err := r.byteString("typed array content is not a byte string")
		if err != nil {
			return dst, false, err
		}
		return appendBase64JSON(dst, b), false, nil
	case 258: // a v2/v3 client's Set (cbor-x writes the elements as an array)
		if r.i >= len(r.b) || r.b[r.i]>>5 != 4 {
			return dst, false, badValue("set content is not an array")
		}
		dst, _, err = r.value(dst, compat)
		return dst, false, err
	default:
		return dst, false, badValue("unsupported CBOR tag %d", number)
	}
}

func appendBase64JSON(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

func halfToFloat(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	var v float64
	switch exp {
	case 0:
		v = math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			v = math.Inf(1)
		} else {
			v = math.NaN()
		}
	default:
		v = math.Ldexp(mant+1024, exp-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

// --- canonical JSON → CBOR ---

func appendCBORHead(dst []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(dst, m|byte(n))
	case n <= math.MaxUint8:
		return append(dst, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, m|27), n)
	}
}

func appendCBORText[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = appendCBORHead(dst, 3, uint64(len(s)))
	return append(dst, s...)
}

// appendCBORFromJSON appends canonical JSON src (already valid) as one CBOR
// item the way cbor-x would encode the value the client should see.
func appendCBORFromJSON(dst, src []byte, compat bool) []byte {
	cs := getContainers(src)
	defer putContainers(cs)
	if !compat || (bytes.IndexByte(src, '$') < 0 && !bytes.Contains(src, []byte(`\u00`))) {
		// No pairs to escape: spare the walker the string checks.
		for k := range cs.c {
			cs.c[k].pair = false
		}
	}
	cs.compat = compat
	dst, _ = jsonToCBOR(dst, src, 0, cs)
	return dst
}

// cborUndefined is the client's undefined: the compat pair in v4, CBOR
// undefined before.
func appendCBORUndefined(dst []byte, compat bool) []byte {
	if compat {
		dst = append(dst, 0x82)
		dst = appendCBORText(dst, tagUndefined)
		return append(dst, 0x00)
	}
	return append(dst, 0xf7)
}

const (
	maxCBORInt    = 1<<32 - 1 // cbor-x writes JS numbers in [-2^32, 2^32) as integers
	minCBORInt    = -(1 << 32)
	maxSafeJSUint = 1<<53 - 1
)

func jsonToCBOR(dst, src []byte, i int, cs *containers) ([]byte, int) {
	i = skipWS(src, i)
	if i >= len(src) {
		return dst, i
	}
	switch c := src[i]; {
	case c == '{':
		dst = appendCBORHead(dst, 5, uint64(cs.at(i).n))
		i = skipWS(src, i+1)
		if i < len(src) && src[i] == '}' {
			return dst, i + 1
		}
		for i < len(src) {
			i = skipWS(src, i)
			j, esc := skipString(src, i)
			dst = appendCBORString(dst, src[i:j], esc)
			i = skipWS(src, j) + 1 // ':'
			dst, i = jsonToCBOR(dst, src, i, cs)
			i = skipWS(src, i)
			if i < len(src) && src[i] == ',' {
				i++
				continue
			}
			break
		}
		return dst, i + 1
	case c == '[':
		info := cs.at(i)
		if info.pair { // only set in compat mode
			tag, val := pairAt(src, i)
			dst = append(dst, 0x82)
			s, _ := unquoteJSON(tag)
			s = validUTF8(s)
			dst = appendCBORHead(dst, 3, uint64(len(s)+1))
			dst = append(dst, '$')
			dst = append(dst, s...)
			var next int
			dst, next = jsonToCBOR(dst, src, val, cs)
			return dst, closeArray(src, next)
		}
		dst = appendCBORHead(dst, 4, uint64(info.n))
		i = skipWS(src, i+1)
		if i < len(src) && src[i] == ']' {
			return dst, i + 1
		}
		for i < len(src) {
			dst, i = jsonToCBOR(dst, src, i, cs)
			i = skipWS(src, i)
			if i < len(src) && src[i] == ',' {
				i++
				continue
			}
			break
		}
		return dst, i + 1
	case c == '"':
		j, esc := skipString(src, i)
		return appendCBORString(dst, src[i:j], esc), j
	case isNumberStart(c):
		j := skipValue(src, i)
		return appendCBORNumber(dst, src[i:j], cs.compat), j
	case c == 't':
		return append(dst, 0xf5), i + 4
	case c == 'f':
		return append(dst, 0xf4), i + 5
	default: // null
		return append(dst, 0xf6), i + 4
	}
}

// appendCBORString appends the JSON string token raw as CBOR text.
func appendCBORString(dst, raw []byte, esc bool) []byte {
	if !esc {
		return appendCBORText(dst, validUTF8(raw[1:len(raw)-1]))
	}
	s, _ := unquoteJSON(raw)
	return appendCBORText(dst, validUTF8(s))
}

// validUTF8 returns s with invalid UTF-8 replaced by U+FFFD (CBOR text must
// be UTF-8); it allocates only then.
func validUTF8(s []byte) []byte {
	if utf8.Valid(s) {
		return s
	}
	return []byte(strings.ToValidUTF8(string(s), "\uFFFD"))
}

func appendCBORFloat(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xfb), math.Float64bits(f))
}

// appendCBORNumber writes a JSON number token as cbor-x writes the
// JavaScript value it stands for: an integer in [-2^32, 2^32) as a CBOR
// integer, any other number as a float64 (cbor-x decodes 64-bit CBOR
// integers as BigInt, so a Date.now()-sized int must not be one), and an
// integer beyond ±(2^53−1), which only a JavaScript bigint holds exactly, as
// the compat ["$BigInt", digits] pair (v4) or a CBOR 64-bit integer or
// bignum (v2/v3), both of which cbor-x decodes to a bigint.
func appendCBORNumber(dst, tok []byte, compat bool) []byte {
	if !isIntegerToken(tok) {
		f, _ := strconv.ParseFloat(string(tok), 64) // range errors give ±Inf or 0, as JSON.parse does
		if f == math.Trunc(f) && f >= minCBORInt && f <= maxCBORInt {
			return appendCBORInt(dst, int64(f))
		}
		return appendCBORFloat(dst, f)
	}
	if v, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
		switch {
		case v >= minCBORInt && v <= maxCBORInt:
			return appendCBORInt(dst, v)
		case v >= -maxSafeJSUint && v <= maxSafeJSUint:
			return appendCBORFloat(dst, float64(v))
		}
	}
	if compat {
		dst = append(dst, 0x82)
		dst = appendCBORText(dst, tagBigInt)
		return appendCBORText(dst, tok)
	}
	neg := tok[0] == '-'
	if !neg {
		if u, err := strconv.ParseUint(string(tok), 10, 64); err == nil {
			return appendCBORHead(dst, 0, u)
		}
	} else if u, err := strconv.ParseUint(string(tok[1:]), 10, 64); err == nil && u != 0 {
		return appendCBORHead(dst, 1, u-1)
	}
	n, _ := new(big.Int).SetString(string(tok), 10)
	tagNum := uint64(2)
	if neg {
		tagNum = 3
		n.Neg(n).Sub(n, big.NewInt(1)) // -1 - n
	}
	dst = appendCBORHead(dst, 6, tagNum)
	b := n.Bytes()
	dst = appendCBORHead(dst, 2, uint64(len(b)))
	return append(dst, b...)
}

func appendCBORInt(dst []byte, v int64) []byte {
	if v >= 0 {
		return appendCBORHead(dst, 0, uint64(v))
	}
	return appendCBORHead(dst, 1, uint64(-1-v))
}

package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// encodeToServer is the client side, for round trips and the fuzz test.
func encodeToServer(t testing.TB, enc Encoding, version uint16, m ToServer) []byte {
	t.Helper()
	switch enc {
	case JSON:
		var b []byte
		switch m.Kind {
		case Action:
			b = append(b, `{"body":{"tag":"ActionRequest","val":{"id":`...)
			b = appendJSONBigInt(b, m.ID)
			b = append(b, `,"name":`...)
			b = appendJSONString(b, m.Name)
			b = append(b, `,"args":`...)
			b = appendCompatJSON(b, m.Args)
		case Subscription:
			b = append(b, `{"body":{"tag":"SubscriptionRequest","val":{"eventName":`...)
			b = appendJSONString(b, m.EventName)
			b = append(b, `,"subscribe":`...)
			b = strconvBool(b, m.Subscribe)
		}
		return append(b, "}}}"...)
	default:
		b := binary.LittleEndian.AppendUint16(nil, version)
		switch m.Kind {
		case Action:
			b = append(b, 0)
			b = appendBareUint(b, m.ID)
			b = appendBareString(b, m.Name)
			b = appendBareCBOR(b, m.Args, version)
		case Subscription:
			b = append(b, 1)
			b = appendBareString(b, m.EventName)
			b = appendBareBool(b, m.Subscribe)
		}
		return b
	}
}

func strconvBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// dataOf extracts the value of a ToClient frame's data field (Event args,
// ActionResponse output) back into canonical JSON, with the codec's own
// decoders: the inverse the client runs.
func dataOf(t *testing.T, enc Encoding, frame []byte) string {
	t.Helper()
	if enc == JSON {
		var env struct {
			Body struct {
				Val struct {
					Args   json.RawMessage `json:"args"`
					Output json.RawMessage `json:"output"`
				} `json:"val"`
			} `json:"body"`
		}
		if err := json.Unmarshal(frame, &env); err != nil {
			t.Fatalf("frame is not JSON: %v: %s", err, frame)
		}
		v := env.Body.Val.Args
		if v == nil {
			v = env.Body.Val.Output
		}
		out, _, err := reviveJSON(nil, v)
		if err != nil {
			t.Fatalf("revive %s: %v", v, err)
		}
		return string(out)
	}
	version := binary.LittleEndian.Uint16(frame)
	r := bareReader{b: frame, i: 2}
	switch r.u8() {
	case 2:
		r.uint()
	case 3:
		r.str()
	default:
		t.Fatalf("not an ActionResponse or Event: % x", frame)
	}
	d := r.data()
	r.end()
	if r.err != nil {
		t.Fatal(r.err)
	}
	out, undef, err := cborToCanonical(nil, d, version >= 4)
	if err != nil {
		t.Fatalf("CBOR % x: %v", d, err)
	}
	if undef {
		return "undefined"
	}
	return string(out)
}

type variant struct {
	name    string
	enc     Encoding
	version uint16
}

var allVariants = []variant{{"json", JSON, 0}, {"v4", BARE, 4}, {"v3", BARE, 3}, {"v2", BARE, 2}}

// TestRoundTrip: canonical → wire → canonical is the identity for every
// value the runtime can produce, in every encoding and version.
func TestRoundTrip(t *testing.T) {
	values := []string{
		`null`, `true`, `false`, `0`, `-1`, `23`, `24`, `255`, `256`, `65535`, `65536`,
		`4294967295`, `4294967296`, `-4294967296`, `-4294967297`, `1796000000123`,
		`9007199254740991`, `-9007199254740991`, `9007199254740992`, `-9007199254740993`,
		`18446744073709551615`, `18446744073709551616`, `-18446744073709551616`, `-18446744073709551617`,
		`123456789012345678901234567890`, `1.5`, `-0.25`, `1e+21`, `5e-7`, `0.1`,
		`""`, `"$"`, `"héllo 🌍"`, `"` + "\u2028" + `\n\"\\"`, `"AQID/w=="`,
		`[]`, `{}`, `["$foo",1]`, `["$$foo",2]`, `["$BigInt","1"]`, `["$",["$y",null]]`, `["x","$y"]`,
		`["$a",1,2]`, `[["$a",1]]`, `{"a":{"b":[1,{"c":"$d"}]},"e":["$x",[2,["$y",null]]]}`,
		`{"ключ $":"значение","":0}`, strings.Repeat(`[`, 50) + strings.Repeat(`]`, 50),
		`"` + strings.Repeat("x", 300) + `"`, `[` + strings.Repeat(`1,`, 299) + `1]`,
	}
	for _, v := range allVariants {
		for _, val := range values {
			t.Run(v.name+"/"+val[:min(len(val), 40)], func(t *testing.T) {
				args := "[" + val + "]"
				frame, _, err := EncodeToClient(v.enc, v.version, ToClient{Kind: Event, Name: "e", Args: json.RawMessage(args)})
				if err != nil {
					t.Fatal(err)
				}
				if got := dataOf(t, v.enc, frame); got != args {
					t.Errorf("event args\n got %s\nwant %s", got, args)
				}
				frame, _, err = EncodeToClient(v.enc, v.version, ToClient{Kind: ActionResponse, ID: 1, Output: json.RawMessage(val)})
				if err != nil {
					t.Fatal(err)
				}
				if got := dataOf(t, v.enc, frame); got != val {
					t.Errorf("output\n got %s\nwant %s", got, val)
				}
				// And the client → server direction through the same layer.
				in := encodeToServer(t, v.enc, v.version, ToServer{Kind: Action, ID: 1 << 62, Name: "a", Args: json.RawMessage(args)})
				msg, version, err := DecodeToServer(v.enc, in)
				if err != nil {
					t.Fatalf("decode % x: %v", in, err)
				}
				if version != v.version || msg.ID != 1<<62 || msg.Name != "a" || string(msg.Args) != args {
					t.Errorf("got v%d %+v (args %s)", version, msg, msg.Args)
				}
			})
		}
	}
}

func TestNilOutput(t *testing.T) {
	for _, v := range allVariants {
		frame, _, err := EncodeToClient(v.enc, v.version, ToClient{Kind: ActionResponse, ID: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := "undefined"
		if v.enc == JSON {
			want = "null"
		}
		if got := dataOf(t, v.enc, frame); got != want {
			t.Errorf("%s: nil output is %s, want %s", v.name, got, want)
		}
	}
}

// TestOutgoingJSON pins the exact JSON frames the client's schemas need.
func TestOutgoingJSON(t *testing.T) {
	seven := uint64(7)
	cases := []struct {
		name string
		m    ToClient
		want string
	}{
		{"init", ToClient{Kind: Init, ActorID: "a", ConnectionID: "c"}, `{"body":{"tag":"Init","val":{"actorId":"a","connectionId":"c"}}}`},
		{"connection error has actionId null", ToClient{Kind: Error, Group: "g", Code: "c", Message: "m"}, `{"body":{"tag":"Error","val":{"group":"g","code":"c","message":"m","actionId":null}}}`},
		{"action error", ToClient{Kind: Error, Group: "user", Code: "boom", Message: "x", Metadata: json.RawMessage(`{"n":9007199254740993}`), ActionID: &seven, Actor: &ActorSpecifier{ActorID: "id", Generation: 2, Key: "k"}},
			`{"body":{"tag":"Error","val":{"group":"user","code":"boom","message":"x","metadata":{"n":["$BigInt","9007199254740993"]},"actor":{"actorId":"id","generation":2,"key":"k"},"actionId":["$BigInt","7"]}}}`},
		{"response id is a bigint", ToClient{Kind: ActionResponse, ID: 0, Output: json.RawMessage(` ["$x", 1] `)}, `{"body":{"tag":"ActionResponse","val":{"id":["$BigInt","0"],"output":["$$x",1]}}}`},
		{"event", ToClient{Kind: Event, Name: "chat.user", Args: json.RawMessage(`[{"userId":"u","createdAt":1796000000123}]`)}, `{"body":{"tag":"Event","val":{"name":"chat.user","args":[{"userId":"u","createdAt":1796000000123}]}}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, text, err := EncodeToClient(JSON, 0, c.m)
			if err != nil || !text {
				t.Fatalf("err %v text %v", err, text)
			}
			if string(got) != c.want {
				t.Errorf("\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestOutgoingCBOR pins cbor-x's number rules and the v4/v3 split.
func TestOutgoingCBOR(t *testing.T) {
	cases := []struct {
		json   string
		compat bool
		want   string // hex
	}{
		{`0`, true, "00"},
		{`-1`, true, "20"},
		{`4294967295`, true, "1affffffff"},
		{`-4294967296`, true, "3affffffff"},
		{`4294967296`, true, "fb41f0000000000000"},    // float64, not 0x1b
		{`1796000000123`, true, "fb427a229f1287b000"}, // what cbor-x writes for Date.now()
		{`1.0`, true, "01"},                           // JS has one number type
		{`-0.0`, true, "00"},
		{`1.5`, true, "fb3ff8000000000000"},
		{`9007199254740993`, true, "82" + "6724426967496e74" + "70" + "39303037313939323534373430393933"},
		{`9007199254740993`, false, "1b0020000000000001"},
		{`-9007199254740993`, false, "3b0020000000000000"},
		{`18446744073709551616`, false, "c249010000000000000000"},
		{`-18446744073709551617`, false, "c349010000000000000000"},
		{`["$x",1]`, true, "826324247801"},
		{`["$x",1]`, false, "8262247801"},
		{`{"a":[]}`, true, "a1616180"},
		{`"` + strings.Repeat("a", 24) + `"`, true, "7818" + strings.Repeat("61", 24)},
		{`"\u00e9\ud83c\udf0d"`, true, "66c3a9f09f8c8d"},
	}
	for _, c := range cases {
		got := hex.EncodeToString(appendCBORFromJSON(nil, []byte(c.json), c.compat))
		if got != c.want {
			t.Errorf("%s compat=%v: got %s, want %s", c.json, c.compat, got, c.want)
		}
	}
}

// TestLongData crosses the one-byte BARE length prefix and CBOR's 1/2/4-byte
// heads.
func TestLongData(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 100, 126, 127, 128, 255, 256, 16383, 16384, 70000} {
		val := `"` + strings.Repeat("z", n) + `"`
		for _, v := range allVariants {
			frame, _, err := EncodeToClient(v.enc, v.version, ToClient{Kind: ActionResponse, ID: 3, Output: json.RawMessage(val)})
			if err != nil {
				t.Fatal(err)
			}
			if got := dataOf(t, v.enc, frame); got != val {
				t.Fatalf("%s n=%d: round trip lost data (%d bytes back)", v.name, n, len(got))
			}
		}
	}
}

func TestIncomingJSONValues(t *testing.T) {
	cases := []struct {
		args string
		want string // "" = ErrBadValue
	}{
		{`[["$BigInt","007"]]`, `[7]`},
		{`[["$BigInt","-0"]]`, `[0]`},
		{`[["$BigInt","1e3"]]`, ``},
		{`[["$BigInt",5]]`, ``},
		{`[["$Uint8Array","AQID"]]`, `["AQID"]`},
		{`[["$Uint8Array","AQI"]]`, `["AQI="]`},
		{`[["$Uint8Array","!!"]]`, ``},
		{`[["$ArrayBuffer",""]]`, `[""]`},
		{`[{"a":["$Undefined",0],"b":1,"c":["$Undefined",0]}]`, `[{"b":1}]`},
		{`[{"a":["$Undefined",0]}]`, `[{}]`},
		{`[["$Undefined",0],2]`, `[null,2]`},
		{`[["$Set",[1,["$BigInt","2"]]]]`, `[[1,2]]`},
		{`[["$Set",{}]]`, ``},
		{`[["$$x",["$Undefined",0]]]`, `[["$x",null]]`},
		{`[["$$$x",1]]`, `[["$$x",1]]`},
		{`[["\u0024BigInt","1"]]`, `[1]`},       // an escaped "$" is still a "$"
		{`[["\u0024\u0024x",1]]`, `[["$x",1]]`}, // and unescaping works on the decoded text
		{`[["$bogus",1]]`, ``},                  // the client would throw too
		{`[["$",1]]`, ``},
		{`[["$bogus",1,2]]`, `[["$bogus",1,2]]`}, // not a pair
		{`[["$bogus"]]`, `[["$bogus"]]`},
		{` [ 1 , { "a" : [ ] } ] `, `[1,{"a":[]}]`},
		{`["\ud83c\udf0d"]`, `["\ud83c\udf0d"]`}, // strings are kept as written
	}
	for _, c := range cases {
		frame := []byte(`{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","1"],"name":"a","args":` + c.args + `}}}`)
		msg, _, err := DecodeToServer(JSON, frame)
		if c.want == "" {
			if !errors.Is(err, ErrBadValue) || !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: want ErrBadValue, got %v (%s)", c.args, err, msg.Args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.args, err)
			continue
		}
		if string(msg.Args) != c.want {
			t.Errorf("%s: got %s, want %s", c.args, msg.Args, c.want)
		}
		body := []byte(`{"args":` + c.args + `}`)
		args, _, err := DecodeHTTPArgs(JSON, body)
		if err != nil || string(args) != c.want {
			t.Errorf("http %s: got %s, %v", c.args, args, err)
		}
	}
}

func TestIncomingCBORValues(t *testing.T) {
	cases := []struct {
		name    string
		cbor    string // hex of the args item
		version uint16
		want    string // "" = ErrBadValue
	}{
		{"uint64", "811bffffffffffffffff", 3, `[18446744073709551615]`},
		{"nint64", "813bffffffffffffffff", 3, `[-18446744073709551616]`},
		{"bignum", "81c249010000000000000000", 3, `[18446744073709551616]`},
		{"neg bignum", "81c349010000000000000000", 3, `[-18446744073709551617]`},
		{"bytes", "8143010203", 3, `["AQID"]`},
		{"indefinite bytes", "815f4201024103ff", 3, `["AQID"]`},
		{"indefinite text", "817f61616162ff", 4, `["ab"]`},
		{"indefinite array and map", "819f01bf616102ffff", 4, `[[1,{"a":2}]]`},
		{"undefined", "82f701", 3, `[null,1]`},
		{"undefined member", "81a26161f7616201", 3, `[{"b":1}]`},
		{"half float", "81f93e00", 3, `[1.5]`},
		{"float32", "81fa3fc00000", 3, `[1.5]`},
		{"NaN", "81f97e00", 3, `[null]`},
		{"-Infinity", "81fbfff0000000000000", 4, `[null]`},
		{"float64 integral", "81fb427a229f1287b000", 4, `[1796000000123]`},
		{"tiny float", "81fb3eb0c6f7a0b5ed8d", 4, `[0.000001]`},
		{"tinier float", "81fb3e7ad7f29abcaf48", 4, `[1e-7]`},
		{"int key", "81a10102", 3, `[{"1":2}]`},
		{"negative int key", "81a12002", 3, `[{"-1":2}]`},
		{"array key", "81a18002", 3, ``},
		{"date", "81c11a00000000", 3, `["1970-01-01T00:00:00.000Z"]`},
		{"date string", "81c07818323032342d30312d30325430333a30343a30352e3637385a", 3, `["2024-01-02T03:04:05.678Z"]`},
		{"tag 64", "81d8404101", 3, `["AQ=="]`},
		{"set tag 258", "81d90102820102", 3, `[[1,2]]`},
		{"regexp tag 27", "81d81b82665265674578706161", 3, ``},
		{"simple 16", "81f0", 3, ``},
		{"v3 keeps $ arrays", "818262246101", 3, `[["$a",1]]`},
		{"v4 rejects unknown $ tags", "818262246101", 4, ``},
		{"v4 unescapes", "81826324246101", 4, `[["$a",1]]`},
		{"v4 bigint pair", "81826724426967496e74623132", 4, `[12]`},
		{"v4 bigint not text", "81826724426967496e740c", 4, ``},
		{"v4 $Set of a pair", "81826424536574826224610a", 4, `[["$a",10]]`},
		{"v4 $Set not array", "8182642453657401", 4, ``},
		{"v4 $Undefined", "81826a24556e646566696e656400", 4, `[null]`},
		{"v4 indefinite pair is plain", "819f6224610aff", 4, `[["$a",10]]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			item, err := hex.DecodeString(c.cbor)
			if err != nil {
				t.Fatal(err)
			}
			body := binary.LittleEndian.AppendUint16(nil, c.version)
			body = appendBareUint(body, uint64(len(item)))
			body = append(body, item...)
			args, _, err := DecodeHTTPArgs(BARE, body)
			if c.want == "" {
				if !errors.Is(err, ErrBadValue) {
					t.Fatalf("want ErrBadValue, got %v (%s)", err, args)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(args) != c.want {
				t.Errorf("got %s, want %s", args, c.want)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	action := func(version uint16, tail ...byte) []byte {
		b := binary.LittleEndian.AppendUint16(nil, version)
		return append(b, tail...)
	}
	cases := []struct {
		name  string
		enc   Encoding
		frame []byte
		is    error
	}{
		{"json: empty", JSON, nil, ErrMalformed},
		{"json: not JSON", JSON, []byte(`{"body":`), ErrMalformed},
		{"json: not an object", JSON, []byte(`[1]`), ErrMalformed},
		{"json: invalid UTF-8", JSON, []byte("{\"body\":{\"tag\":\"SubscriptionRequest\",\"val\":{\"eventName\":\"\xff\",\"subscribe\":true}}}"), ErrMalformed},
		{"json: no body", JSON, []byte(`{}`), ErrMalformed},
		{"json: body not object", JSON, []byte(`{"body":1}`), ErrMalformed},
		{"json: unknown tag", JSON, []byte(`{"body":{"tag":"Nope","val":{}}}`), ErrMalformed},
		{"json: tag not string", JSON, []byte(`{"body":{"tag":1,"val":{}}}`), ErrMalformed},
		{"json: missing id", JSON, []byte(`{"body":{"tag":"ActionRequest","val":{"name":"a","args":[]}}}`), ErrMalformed},
		{"json: negative id", JSON, []byte(`{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","-1"],"name":"a","args":[]}}}`), ErrMalformed},
		{"json: huge id", JSON, []byte(`{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","18446744073709551616"],"name":"a","args":[]}}}`), ErrMalformed},
		{"json: name not string", JSON, []byte(`{"body":{"tag":"ActionRequest","val":{"id":1,"name":1,"args":[]}}}`), ErrMalformed},
		{"json: args not array", JSON, []byte(`{"body":{"tag":"ActionRequest","val":{"id":1,"name":"a","args":{}}}}`), ErrBadValue},
		{"json: args undefined", JSON, []byte(`{"body":{"tag":"ActionRequest","val":{"id":1,"name":"a","args":["$Undefined",0]}}}`), ErrBadValue},
		{"json: subscribe not bool", JSON, []byte(`{"body":{"tag":"SubscriptionRequest","val":{"eventName":"e","subscribe":1}}}`), ErrMalformed},
		{"json: subscription missing field", JSON, []byte(`{"body":{"tag":"SubscriptionRequest","val":{"eventName":"e"}}}`), ErrMalformed},
		{"bare: empty", BARE, nil, ErrMalformed},
		{"bare: version only", BARE, action(4), ErrMalformed},
		{"bare: version 1", BARE, action(1, 1, 0, 0), ErrUnsupportedVersion},
		{"bare: version 5", BARE, action(5, 1, 0, 0), ErrUnsupportedVersion},
		{"bare: unknown tag", BARE, action(4, 2), ErrMalformed},
		{"bare: truncated action", BARE, action(4, 0, 1, 1, 'a'), ErrMalformed},
		{"bare: data length beyond frame", BARE, action(4, 0, 1, 1, 'a', 9, 0x80), ErrMalformed},
		{"bare: trailing bytes", BARE, action(4, 1, 1, 'e', 1, 0), ErrMalformed},
		{"bare: bad bool", BARE, action(4, 1, 1, 'e', 2), ErrMalformed},
		{"bare: non-minimal uint", BARE, action(4, 0, 0x81, 0x00, 1, 'a', 1, 0x80), ErrMalformed},
		{"bare: uint overflow", BARE, action(4, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 1, 'a', 1, 0x80), ErrMalformed},
		{"bare: invalid UTF-8 name", BARE, action(4, 0, 1, 1, 0xff, 1, 0x80), ErrMalformed},
		{"bare: bad CBOR", BARE, action(4, 0, 1, 1, 'a', 1, 0x1c), ErrMalformed},
		{"bare: CBOR trailing", BARE, action(4, 0, 1, 1, 'a', 2, 0x80, 0x00), ErrMalformed},
		{"bare: CBOR args not array", BARE, action(4, 0, 1, 1, 'a', 1, 0xa0), ErrBadValue},
		{"bare: CBOR invalid UTF-8 text", BARE, action(4, 0, 1, 1, 'a', 3, 0x81, 0x61, 0xff), ErrMalformed},
		{"bare: CBOR too deep", BARE, action(4, append([]byte{0, 1, 1, 'a', 0xe9, 0x07}, bytes.Repeat([]byte{0x81}, 1001)...)...), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, _, err := DecodeToServer(c.enc, c.frame)
			if !errors.Is(err, c.is) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("want %v (and ErrMalformed), got %v (%+v)", c.is, err, msg)
			}
		})
	}
	// HTTP bodies.
	for _, c := range []struct {
		enc  Encoding
		body string
	}{{JSON, `{}`}, {JSON, `{"args":1}`}, {JSON, `[]`}, {BARE, "\x04"}, {BARE, "\x04\x00\x01\xa0"}, {BARE, "\x04\x00\x01\x80\x00"}} {
		if _, _, err := DecodeHTTPArgs(c.enc, []byte(c.body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("http %v %q: got %v", c.enc, c.body, err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		m    ToClient
	}{
		{"zero kind", ToClient{}},
		{"event args not array", ToClient{Kind: Event, Name: "e", Args: json.RawMessage(`{}`)}},
		{"event args nil", ToClient{Kind: Event, Name: "e"}},
		{"bad output", ToClient{Kind: ActionResponse, Output: json.RawMessage(`{`)}},
		{"bad metadata", ToClient{Kind: Error, Metadata: json.RawMessage(`x`)}},
		{"invalid UTF-8", ToClient{Kind: Event, Name: "e", Args: json.RawMessage("[\"\xff\"]")}},
	} {
		for _, v := range allVariants {
			if _, _, err := EncodeToClient(v.enc, v.version, c.m); !errors.Is(err, ErrInvalidOutgoing) {
				t.Errorf("%s %s: got %v", c.name, v.name, err)
			}
		}
	}
	if _, _, err := EncodeToClient(BARE, 5, ToClient{Kind: Init}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("version 5: %v", err)
	}
	if _, err := EncodeHTTPOutput(BARE, 1, nil); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("http version 1: %v", err)
	}
	if _, err := EncodeHTTPOutput(JSON, 0, json.RawMessage(`nope`)); !errors.Is(err, ErrInvalidOutgoing) {
		t.Errorf("http bad output: %v", err)
	}
	if _, err := EncodeHTTPError(HTTPError{Metadata: json.RawMessage(`{`)}); !errors.Is(err, ErrInvalidOutgoing) {
		t.Errorf("http bad metadata: %v", err)
	}
	if _, _, err := DecodeToServer(Encoding(9), nil); !errors.Is(err, ErrUnsupportedEncoding) {
		t.Errorf("encoding 9: %v", err)
	}
}

// TestBareErrorVersions: Error.actor exists only in v4.
func TestBareErrorVersions(t *testing.T) {
	id := uint64(300)
	m := ToClient{Kind: Error, Group: "g", Code: "c", Message: "m", ActionID: &id, Actor: &ActorSpecifier{ActorID: "a", Generation: 1}}
	want := map[uint16]string{
		4: "0400" + "01" + "0167" + "0163" + "016d" + "00" + "01ac02" + "01" + "0161" + "01" + "00",
		3: "0300" + "01" + "0167" + "0163" + "016d" + "00" + "01ac02",
		2: "0200" + "01" + "0167" + "0163" + "016d" + "00" + "01ac02",
	}
	for version, w := range want {
		got, text, err := EncodeToClient(BARE, version, m)
		if err != nil || text {
			t.Fatalf("v%d: %v %v", version, err, text)
		}
		if hex.EncodeToString(got) != w {
			t.Errorf("v%d: got %x, want %s", version, got, w)
		}
	}
	// Init is the same in every version but the prefix.
	for version := uint16(MinVersion); version <= MaxVersion; version++ {
		got, _, _ := EncodeToClient(BARE, version, ToClient{Kind: Init, ActorID: "a", ConnectionID: "c"})
		if hex.EncodeToString(got[2:]) != "0001610163" {
			t.Errorf("v%d Init: %x", version, got)
		}
	}
}

func TestParseEncoding(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Encoding
		err  error
	}{{"json", JSON, nil}, {"bare", BARE, nil}, {"cbor", 0, ErrUnsupportedEncoding}, {"", 0, ErrUnsupportedEncoding}, {"JSON", 0, ErrUnsupportedEncoding}} {
		got, err := ParseEncoding(c.in)
		if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%q: got %v, %v", c.in, got, err)
		}
		if err == nil && got.String() != c.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	if JSON.ContentType() != "application/json" || BARE.ContentType() != "application/octet-stream" {
		t.Error("content types")
	}
}

func TestJSNumberFormat(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0", 1: "1", -1.5: "-1.5", 1e21: "1e+21", 1e20: "100000000000000000000", 1e-6: "0.000001",
		1e-7: "1e-7", 1.5e-10: "1.5e-10", 123e300: "1.23e+302", 1796000000123: "1796000000123",
	} {
		if got := string(appendJSNumber(nil, f)); got != want {
			t.Errorf("%v: got %s, want %s", f, got, want)
		}
	}
}

// FuzzDecodeToServer: no input panics, and whatever decodes re-encodes to a
// frame that decodes to the same message.
func FuzzDecodeToServer(f *testing.F) {
	f.Add(byte(0), []byte(`{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","0"],"name":"prompt","args":[{"userId":"u","text":"hi"}]}}}`))
	f.Add(byte(0), []byte(`{"body":{"tag":"ActionRequest","val":{"id":3,"name":"x","args":[["$$a",["$BigInt","9007199254740993"]],{"u":["$Undefined",0]},["$Set",[1]],["$Uint8Array","AQI="]]}}}`))
	f.Add(byte(0), []byte(`{"body":{"tag":"SubscriptionRequest","val":{"eventName":"chat.user","subscribe":true}}}`))
	f.Add(byte(1), []byte("\x04\x00\x00\x00\x02ab\x01\x80"))
	f.Add(byte(1), []byte("\x04\x00\x01\x09chat.user\x01"))
	if g, err := loadGoldenForFuzz(); err == nil {
		for _, v := range g.ToServer {
			b, _ := hex.DecodeString(v.Frame)
			mode := byte(1)
			if v.Variant == "json" {
				mode = 0
			}
			f.Add(mode, b)
		}
	}
	f.Fuzz(func(t *testing.T, mode byte, frame []byte) {
		enc := JSON
		if mode&1 == 1 {
			enc = BARE
		}
		msg, version, err := DecodeToServer(enc, frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if msg.Kind == Action && !json.Valid(msg.Args) {
			t.Fatalf("args are not JSON: %q", msg.Args)
		}
		again := encodeToServer(t, enc, version, msg)
		msg2, version2, err := DecodeToServer(enc, again)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v\n%q\n%q", err, msg.Args, again)
		}
		if version2 != version || msg2.Kind != msg.Kind || msg2.ID != msg.ID || msg2.Name != msg.Name ||
			string(msg2.Args) != string(msg.Args) || msg2.EventName != msg.EventName || msg2.Subscribe != msg.Subscribe {
			t.Fatalf("unstable:\n%+v %s\n%+v %s", msg, msg.Args, msg2, msg2.Args)
		}
	})
}

func loadGoldenForFuzz() (golden, error) {
	var g golden
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		return g, err
	}
	return g, json.Unmarshal(b, &g)
}

// FuzzEncodeToClient: any valid canonical array encodes in every variant,
// and what the client would decode is valid canonical JSON again.
func FuzzEncodeToClient(f *testing.F) {
	for _, s := range []string{`[1]`, `[["$a",1],{"b":9007199254740993}]`, `[1e400,-0,0.5,"\u0024x"]`, `[["\u0024a",["$b",[]]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, args []byte) {
		if !validJSONText(args) || len(bytes.TrimSpace(args)) == 0 || bytes.TrimSpace(args)[0] != '[' {
			return
		}
		for _, v := range allVariants {
			frame, _, err := EncodeToClient(v.enc, v.version, ToClient{Kind: Event, Name: "e", Args: args})
			if err != nil {
				t.Fatalf("%s: %v", v.name, err)
			}
			if got := dataOf(t, v.enc, frame); !json.Valid([]byte(got)) {
				t.Fatalf("%s: decodes to invalid JSON %q", v.name, got)
			}
		}
	})
}

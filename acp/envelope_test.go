package acp

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		raw    string
		kind   Kind
		id     string
		method string
		err    error
	}{
		{`{"jsonrpc":"2.0","id":0,"method":"initialize"}`, Request, "0", "initialize", nil},
		{`{"jsonrpc":"2.0","id":null,"method":"x"}`, Request, "null", "x", nil},
		{`{"jsonrpc":"2.0","id":"0195f3c4","method":"x"}`, Request, `"0195f3c4"`, "x", nil},
		{`{"jsonrpc":"2.0","method":"session/update","params":{}}`, Notification, "", "session/update", nil},
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, Response, "1", "", nil},
		{`{"id":"perm-1","error":{"code":-1}}`, Response, `"perm-1"`, "", nil},
		{`{}`, Other, "", "", nil},
		{`[1]`, 0, "", "", ErrNotObject},
		{`"s"`, 0, "", "", ErrNotObject},
	}
	for _, tt := range tests {
		env, err := Parse([]byte(tt.raw))
		if !errors.Is(err, tt.err) || env.Kind != tt.kind || string(env.ID) != tt.id || env.Method != tt.method {
			t.Errorf("%s: %+v %v", tt.raw, env, err)
		}
	}
	if _, err := Parse([]byte(`{nope`)); err == nil {
		t.Error("malformed JSON must fail")
	}
	if IDKey([]byte(` 1 `)) != "1" || IDKey([]byte(`"1"`)) == IDKey([]byte(`1`)) {
		t.Error("IDKey must compact and keep types apart")
	}
}

func BenchmarkParseNotification(b *testing.B) {
	raw := []byte(`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hello"}}}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseMatchesDecoder(f *testing.F) {
	for _, s := range []string{`{"id":1,"method":"m"}`, `{"method":"a\"b","params":{"id":2,"x":[1,{"method":"no"}]}}`, `{"\u0069d":"x","result":null}`, ` { "id" : null , "method" : "m" } `, `[]`, `{"a":"}"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := Parse(raw)
		var ref struct {
			ID     json.RawMessage `json:"id"`
			Method json.RawMessage `json:"method"`
		}
		refErr := json.Unmarshal(raw, &ref)
		var obj map[string]json.RawMessage
		isObj := json.Unmarshal(raw, &obj) == nil && obj != nil
		if !json.Valid(raw) {
			if err == nil {
				t.Fatal("invalid JSON accepted")
			}
			return
		}
		if !isObj {
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("non-object: %v", err)
			}
			return
		}
		if err != nil || refErr != nil {
			t.Fatalf("%v %v", err, refErr)
		}
		_, hasID := obj["id"]
		_, hasMethod := obj["method"]
		want := Other
		switch {
		case hasID && hasMethod:
			want = Request
		case hasMethod:
			want = Notification
		case hasID:
			want = Response
		}
		if env.Kind != want {
			t.Fatalf("kind %v want %v for %s", env.Kind, want, raw)
		}
		if hasID && IDKey(env.ID) != IDKey(obj["id"]) {
			t.Fatalf("id %s want %s", env.ID, obj["id"])
		}
		var m string
		if hasMethod && json.Unmarshal(obj["method"], &m) == nil && m != env.Method {
			t.Fatalf("method %q want %q", env.Method, m)
		}
	})
}

// TestParseValidityMatchesEncodingJSON pins edge cases of the hand-written
// validator (the fuzz target explores the rest).
func TestParseValidityMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, `[]`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `[1,2,]`, `"x"`, `"\u00e9\n"`, `"\x"`,
		`"\u12"`, "\"a\tb\"", `-0`, `-`, `01`, `1.`, `1.5e+10`, `1e`, `true`, `tru`, `null`, ` { "a" : [ true , false , null ] } `,
		`{"a":{"b":[{"c":"}"}]}}`, `{"a":"b"} x`, ``, `  `, `{"a":-1.25E-3}`, `[[[[[]]]]]`, `{"\"":"\\"}`, `{1:2}`,
		`{"id":1,"method":"m"}garbage`, `{"id":1 "method":"m"}`, "{\"id\":1}\n",
	}
	for _, c := range cases {
		_, err := Parse([]byte(c))
		valid := err == nil || errors.Is(err, ErrNotObject)
		if want := json.Valid([]byte(c)); valid != want {
			t.Errorf("%q: Parse valid=%v (%v), json.Valid %v", c, valid, err, want)
		}
	}
}

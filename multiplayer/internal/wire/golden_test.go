package wire

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// golden.json is written by testdata/gen.mjs with rivetkit's own encoders.
type golden struct {
	Cases []struct {
		ID        string `json:"id"`
		Canonical string `json:"canonical"`
	} `json:"cases"`
	ToServer []struct {
		Case      string `json:"case"`
		Variant   string `json:"variant"`
		Kind      string `json:"kind"`
		ID        string `json:"id"`
		Name      string `json:"name"`
		EventName string `json:"eventName"`
		Subscribe bool   `json:"subscribe"`
		Frame     string `json:"frame"`
		Text      bool   `json:"text"`
		Args      string `json:"args"`
	} `json:"toServer"`
	HTTP []struct {
		Case    string `json:"case"`
		Variant string `json:"variant"`
		Body    string `json:"body"`
		Args    string `json:"args"`
	} `json:"http"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.ToServer) == 0 || len(g.HTTP) == 0 || len(g.Cases) == 0 {
		t.Fatal("golden.json holds no vectors")
	}
	return g
}

// variantEncoding maps a gen.mjs variant to the encoding and the BARE
// version the client speaks (0 for JSON).
func variantEncoding(t *testing.T, v string) (Encoding, uint16) {
	switch v {
	case "json", "json-v3", "json-v2":
		return JSON, 0
	case "v4":
		return BARE, 4
	case "v3":
		return BARE, 3
	case "v2":
		return BARE, 2
	}
	t.Fatalf("unknown variant %q", v)
	return 0, 0
}

func compact(t *testing.T, s []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, s); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return b.String()
}

func TestGoldenToServer(t *testing.T) {
	g := loadGolden(t)
	for _, v := range g.ToServer {
		t.Run(v.Variant+"/"+v.Case, func(t *testing.T) {
			enc, wantVersion := variantEncoding(t, v.Variant)
			frame, err := hex.DecodeString(v.Frame)
			if err != nil {
				t.Fatal(err)
			}
			if v.Text != (enc == JSON) {
				t.Fatalf("text=%v for %v", v.Text, enc)
			}
			msg, version, err := DecodeToServer(enc, frame)
			if v.Args == "ERROR" {
				if !errors.Is(err, ErrBadValue) {
					t.Fatalf("want ErrBadValue, got %v (%s)", err, msg.Args)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if version != wantVersion {
				t.Errorf("version %d, want %d", version, wantVersion)
			}
			switch v.Kind {
			case "action":
				if msg.Kind != Action || strconv.FormatUint(msg.ID, 10) != v.ID || msg.Name != v.Name {
					t.Errorf("got kind %v id %d name %q, want action %s %q", msg.Kind, msg.ID, msg.Name, v.ID, v.Name)
				}
				if got, want := string(msg.Args), compact(t, []byte(v.Args)); got != want {
					t.Errorf("args\n got %s\nwant %s", got, want)
				}
				// Decoded args must be plain JSON that encoding/json accepts.
				var any []any
				if err := json.Unmarshal(msg.Args, &any); err != nil {
					t.Errorf("canonical args do not unmarshal: %v", err)
				}
			case "subscription":
				if msg.Kind != Subscription || msg.EventName != v.EventName || msg.Subscribe != v.Subscribe {
					t.Errorf("got %+v, want subscription %q %v", msg, v.EventName, v.Subscribe)
				}
			default:
				t.Fatalf("unknown kind %q", v.Kind)
			}
		})
	}
}

func TestGoldenHTTPArgs(t *testing.T) {
	g := loadGolden(t)
	for _, v := range g.HTTP {
		t.Run(v.Variant+"/"+v.Case, func(t *testing.T) {
			enc, wantVersion := variantEncoding(t, v.Variant)
			body, err := hex.DecodeString(v.Body)
			if err != nil {
				t.Fatal(err)
			}
			args, version, err := DecodeHTTPArgs(enc, body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if version != wantVersion {
				t.Errorf("version %d, want %d", version, wantVersion)
			}
			if got, want := string(args), compact(t, []byte(v.Args)); got != want {
				t.Errorf("args\n got %s\nwant %s", got, want)
			}
		})
	}
}

// goFrame is one Go-encoded message for gen.mjs check.
type goFrame struct {
	Variant       string         `json:"variant"`
	Kind          string         `json:"kind"`
	Case          string         `json:"case,omitempty"`
	ID            string         `json:"id,omitempty"`
	ActionID      *string        `json:"actionId"`
	Actor         bool           `json:"actor,omitempty"`
	ActorExpected *actorExpected `json:"actorExpected,omitempty"`
	Frame         string         `json:"frame"`
}

type actorExpected struct {
	Generation string  `json:"generation"`
	Key        *string `json:"key"`
}

// goFrames encodes every golden case, in every variant, as each message
// kind the server sends.
func goFrames(t *testing.T, g golden) []goFrame {
	t.Helper()
	var out []goFrame
	add := func(f goFrame, b []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s %s %s: %v", f.Variant, f.Kind, f.Case, err)
		}
		f.Frame = hex.EncodeToString(b)
		out = append(out, f)
	}
	encode := func(enc Encoding, version uint16, m ToClient) ([]byte, error) {
		b, text, err := EncodeToClient(enc, version, m)
		if err == nil && text != (enc == JSON) {
			t.Fatalf("text=%v for %v", text, enc)
		}
		return b, err
	}
	const bigID = 1<<40 + 1
	seven := uint64(7)
	sevenS := "7"
	for _, variant := range []string{"json", "json-v3", "json-v2", "v4", "v3", "v2"} {
		enc, version := variantEncoding(t, variant)
		initVersion := version
		if enc == BARE {
			initVersion = InitVersion
		}
		b, err := encode(enc, initVersion, ToClient{Kind: Init, ActorID: "actor-1", ConnectionID: "conn-1"})
		add(goFrame{Variant: variant, Kind: "init"}, b, err)
		b, err = encode(enc, version, ToClient{Kind: ActionResponse, ID: bigID})
		add(goFrame{Variant: variant, Kind: "response", ID: strconv.Itoa(bigID)}, b, err)
		b, err = encode(enc, version, ToClient{Kind: Error, Group: "user", Code: "boom", Message: "it broke ✗"})
		add(goFrame{Variant: variant, Kind: "error"}, b, err)
		key := "ws-1"
		actor := &ActorSpecifier{ActorID: "actor-1", Generation: 3, Key: key}
		var want *actorExpected
		if variant == "v4" || variant == "json" {
			want = &actorExpected{Generation: "3", Key: &key}
		}
		b, err = encode(enc, version, ToClient{Kind: Error, Group: "user", Code: "boom", Message: "it broke ✗", ActionID: &seven, Actor: actor})
		add(goFrame{Variant: variant, Kind: "error", ActionID: &sevenS, Actor: true, ActorExpected: want}, b, err)
		b, err = EncodeHTTPOutput(enc, version, nil)
		add(goFrame{Variant: variant, Kind: "http-output"}, b, err)
		b, err = EncodeHTTPError(HTTPError{Group: "user", Code: "boom", Message: "it broke ✗"})
		add(goFrame{Variant: variant, Kind: "http-error"}, b, err)
		for _, c := range g.Cases {
			v := json.RawMessage(c.Canonical)
			args := json.RawMessage("[" + c.Canonical + "]")
			b, err := encode(enc, version, ToClient{Kind: Event, Name: "ev", Args: args})
			add(goFrame{Variant: variant, Kind: "event", Case: c.ID}, b, err)
			b, err = encode(enc, version, ToClient{Kind: ActionResponse, ID: bigID, Output: v})
			add(goFrame{Variant: variant, Kind: "response", Case: c.ID, ID: strconv.Itoa(bigID)}, b, err)
			b, err = encode(enc, version, ToClient{Kind: Error, Group: "user", Code: "boom", Message: "it broke ✗", Metadata: v, ActionID: &seven})
			add(goFrame{Variant: variant, Kind: "error", Case: c.ID, ActionID: &sevenS}, b, err)
			b, err = EncodeHTTPOutput(enc, version, v)
			add(goFrame{Variant: variant, Kind: "http-output", Case: c.ID}, b, err)
			b, err = EncodeHTTPError(HTTPError{Group: "user", Code: "boom", Message: "it broke ✗", Metadata: v})
			add(goFrame{Variant: variant, Kind: "http-error", Case: c.ID}, b, err)
		}
	}
	return out
}

// TestRealClientDecodesGoFrames hands every Go-encoded frame to the real
// client decoders of rivetkit 2.3.19, 2.2.1 and 2.0.33 (gen.mjs check) and
// requires the JavaScript value each client version should see.
func TestRealClientDecodesGoFrames(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not on PATH: the real-client check needs Node 20+ and multiplayer/compat/node_modules")
	}
	if _, err := os.Stat(filepath.Join("..", "..", "compat", "node_modules", "rivetkit", "package.json")); err != nil {
		t.Skip("multiplayer/compat/node_modules missing (cd multiplayer/compat && npm ci): skipping the real-client check")
	}
	g := loadGolden(t)
	frames := goFrames(t, g)
	file := filepath.Join(t.TempDir(), "frames.json")
	b, err := json.Marshal(map[string]any{"frames": frames})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "gen.mjs"), "check", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gen.mjs check: %v\n%s", err, stderr.Bytes())
	}
	var report struct {
		Checked  int                 `json:"checked"`
		Failures []string            `json:"failures"`
		Cases    []map[string]string `json:"cases"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	var goldenCases []map[string]string
	for _, c := range g.Cases {
		goldenCases = append(goldenCases, map[string]string{"id": c.ID, "canonical": c.Canonical})
	}
	if !reflect.DeepEqual(report.Cases, goldenCases) {
		t.Errorf("testdata/golden.json is stale: run `node testdata/gen.mjs generate`")
	}
	if report.Checked+len(report.Failures) < len(frames) || report.Checked == 0 {
		t.Errorf("checked %d of %d frames", report.Checked, len(frames))
	}
	for _, f := range report.Failures {
		t.Error(f)
	}
}

package dubbo

import (
	"errors"
	"strings"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"
)

// order and item are POJOs as a Java consumer's arguments would be.
type order struct {
	ID     string
	Amount float64
	Items  []*item
	Tags   map[string]string
	When   time.Time
	Notes  []string
}

func (order) JavaClassName() string { return "org.example.Order" }

type item struct {
	SKU   string
	Count int32
}

func (item) JavaClassName() string { return "org.example.Item" }

func init() {
	hessian.RegisterPOJO(&order{})
	hessian.RegisterPOJO(&item{})
}

func sampleOrder() *order {
	return &order{ID: "o-1", Amount: 12.5, Items: []*item{{"a", 1}, {"b", 2}},
		Tags: map[string]string{"k": "v"}, When: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Notes: []string{"é", "😀"}}
}

// calls are the requests the decoders are checked on.
func calls() map[string]refCall {
	return map[string]refCall{
		"no arguments": {id: 1, path: "com.example.Greeter", method: "ping"},
		"a string": {id: 2, path: "com.example.Greeter", version: "1.0.0", method: "hello", args: []any{"alice"},
			attachments: map[string]string{"x-user": "bob"}},
		"group and timeout": {id: 3, path: "com.example.Greeter", iface: "com.example.Greeter", version: "2.0.0", group: "canary",
			method: "hello", timeout: 3 * time.Second, args: []any{"alice", int32(3)}},
		"primitives": {id: 4, path: "com.example.Calc", method: "add",
			args: []any{int32(1), int64(1 << 40), 2.5, true, []byte{1, 2, 3}, int16(7), []int32{1, 2}, []string{"a", "b"}}},
		"objects": {id: 5, path: "com.example.Orders", method: "place",
			args: []any{sampleOrder(), []any{sampleOrder(), nil, "x"}, map[any]any{"n": int32(1), "o": sampleOrder()}}},
		"unicode": {id: 6, path: "com.example.问候", method: "说你好", args: []any{"😀 " + strings.Repeat("中", 40000)},
			attachments: map[string]string{"名字": "张三", "Trace-Id": "T-1"}},
		"mixed-case attachments": {id: 7, path: "com.example.Greeter", method: "hello",
			attachments: map[string]string{"X-User": "bob", "traceId": "t-1", "timeout": "250"}},
	}
}

func TestDecodeRequestMatchesReference(t *testing.T) {
	for name, c := range calls() {
		t.Run(name, func(t *testing.T) {
			frame := refRequest(t, c)
			ref := refDecode(t, frame).request
			var inv Invocation
			if err := DecodeRequest(frame[HeaderLen:], &inv); err != nil {
				t.Fatal(err)
			}
			got := []string{string(inv.DubboVersion), string(inv.Path), string(inv.Version), string(inv.Method), string(inv.ParamDesc)}
			want := []string{ref[0].(string), ref[1].(string), ref[2].(string), ref[3].(string), ref[4].(string)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("prefix (-want +got):\n%s", diff)
			}
			args, _ := ref[5].([]any)
			if inv.NumArgs != len(args) || inv.NumArgs != len(c.args) {
				t.Fatalf("%d arguments, the reference %d, sent %d", inv.NumArgs, len(args), len(c.args))
			}
			// The arguments' extent holds exactly the arguments.
			argBytes := inv.Body()[inv.ArgsStart:inv.ArgsEnd]
			d := hessian.NewDecoderSize(argBytes, len(argBytes)+16)
			var decoded []any
			for range inv.NumArgs {
				v, err := d.Decode()
				if err != nil {
					t.Fatalf("the reference decoding the arguments' extent: %v", err)
				}
				decoded = append(decoded, v)
			}
			if d.Buffered() != 0 {
				t.Fatalf("%d bytes after the arguments", d.Buffered())
			}
			if diff := cmp.Diff(args, decoded); diff != "" && len(args) > 0 {
				t.Fatalf("arguments (-want +got):\n%s", diff)
			}
			wantAtts := ref[6].(map[string]string)
			delete(wantAtts, KeyDubbo) // the reference adds the prefix's version
			gotAtts := map[string]string{}
			for _, a := range inv.Attachments {
				if !a.IsString() {
					t.Fatalf("attachment %q is not a string", a.Key)
				}
				gotAtts[string(a.Key)] = string(a.Value)
			}
			if diff := cmp.Diff(wantAtts, gotAtts); diff != "" {
				t.Fatalf("attachments (-want +got):\n%s", diff)
			}
			if string(inv.Service()) != c.path || string(inv.ServiceVersion()) != c.version || string(inv.Group()) != c.group {
				t.Fatalf("service %q version %q group %q", inv.Service(), inv.ServiceVersion(), inv.Group())
			}
			wantTimeout := c.timeout
			if v, ok := c.attachments[KeyTimeout]; ok {
				ms, _ := time.ParseDuration(v + "ms")
				wantTimeout = ms
			}
			if d, ok := inv.Timeout(); ok != (wantTimeout > 0) || d != wantTimeout {
				t.Fatalf("timeout %v %v, want %v", d, ok, wantTimeout)
			}

			var prefix Invocation
			if err := DecodeRequestPrefix(frame[HeaderLen:], &prefix); err != nil {
				t.Fatal(err)
			}
			if string(prefix.Method) != c.method || prefix.ArgsEnd != -1 || len(prefix.Attachments) != 0 || prefix.ArgsStart != inv.ArgsStart {
				t.Fatalf("prefix only: method %q, args end %d, %d attachments", prefix.Method, prefix.ArgsEnd, len(prefix.Attachments))
			}
		})
	}
}

func TestAppendFrameReadByReference(t *testing.T) {
	for name, c := range calls() {
		t.Run(name, func(t *testing.T) {
			frame := refRequest(t, c)
			var inv Invocation
			if err := DecodeRequest(frame[HeaderLen:], &inv); err != nil {
				t.Fatal(err)
			}
			h, _ := ParseHeader(frame)
			h.ID = 99
			if same := inv.AppendFrame(nil, h, inv.Attachments); string(same[HeaderLen:]) != string(frame[HeaderLen:]) {
				t.Fatal("the frame re-encoded with its own attachments differs from the original body")
			}
			atts := append([]Attachment{}, inv.Attachments...)
			for i := range atts {
				if string(atts[i].Key) == KeyPath {
					atts[i] = Attachment{Key: atts[i].Key, Value: []byte("com.example.Other"), Kind: hessian2.String}
				}
			}
			atts = append(atts, Attachment{Key: []byte("x-added"), Value: []byte("yes"), Kind: hessian2.String},
				Attachment{Key: []byte("x-null"), Kind: hessian2.Null})
			out := inv.AppendFrame(nil, h, atts)
			if FrameID(out) != 99 {
				t.Fatalf("id %d", FrameID(out))
			}
			ref := refDecode(t, out)
			orig := refDecode(t, frame)
			if ref.header.BodyLen != len(out)-HeaderLen {
				t.Fatalf("body length %d of %d", ref.header.BodyLen, len(out)-HeaderLen)
			}
			if diff := cmp.Diff(orig.request[:6], ref.request[:6]); diff != "" {
				t.Fatalf("prefix and arguments changed (-before +after):\n%s", diff)
			}
			gotAtts := ref.request[6].(map[string]string)
			if gotAtts["x-added"] != "yes" || gotAtts[KeyPath] != "com.example.Other" {
				t.Fatalf("attachments %v", gotAtts)
			}
			if v, ok := gotAtts["x-null"]; !ok || v != "" {
				t.Fatalf("null attachment: %q %v", v, ok)
			}
		})
	}
}

func TestAppendRequestReadByReference(t *testing.T) {
	e := hessian.NewEncoder()
	e.Encode("alice")
	e.Encode(sampleOrder())
	frame := AppendRequest(nil, Header{Request: true, TwoWay: true, ID: 5}, &Call{
		DubboVersion: "2.0.2", Path: "com.example.Orders", Version: "1.0.0", Method: "place",
		ParamDesc: "Ljava/lang/String;Lorg/example/Order;", Args: e.Buffer(),
		Attachments: []Attachment{{Key: []byte("path"), Value: []byte("com.example.Orders"), Kind: hessian2.String}},
	})
	ref := refDecode(t, frame)
	if ref.header.SerialID != byte(Hessian2) || ref.header.ID != 5 {
		t.Fatalf("header %+v", ref.header)
	}
	want := []any{"2.0.2", "com.example.Orders", "1.0.0", "place", "Ljava/lang/String;Lorg/example/Order;",
		[]any{"alice", sampleOrder()}, map[string]string{"path": "com.example.Orders", "dubbo": "2.0.2"}}
	if diff := cmp.Diff(want, ref.request); diff != "" {
		t.Fatalf("the reference read (-want +got):\n%s", diff)
	}
}

func TestDecodeRequestRefusals(t *testing.T) {
	body := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	str := func(s string) []byte { return hessian2.AppendString(nil, s) }
	prefix := body(str("2.0.2"), str("com.example.Greeter"), str("1.0.0"), str("hello"), str("Ljava/lang/String;"), str("alice"))
	entry := func(k, v string) []byte { return body(str(k), str(v)) }
	var many []byte
	for i := range DefaultMaxAttachments + 1 {
		many = append(many, entry("k"+itoa(i), "v")...)
	}
	cases := []struct {
		name, part string
		body       []byte
	}{
		{"empty", "request dubbo version", nil},
		{"method is an int", "request method", body(str("2.0.2"), str("p"), str("v"), []byte{0x90})},
		{"argument missing", "request argument 0", body(str("2.0.2"), str("p"), str("v"), str("m"), str("I"))},
		{"argument malformed", "request argument 0", body(str("2.0.2"), str("p"), str("v"), str("m"), str("I"), []byte{0x40})},
		{"attachments not a map", "request attachments", body(prefix, str("x"))},
		{"attachments unterminated", "request attachments", body(prefix, []byte{'H'}, entry("a", "b"))},
		{"attachment value missing", "request attachments", body(prefix, []byte{'H'}, str("a"), []byte{'Z'})},
		{"a key twice", "request attachments", body(prefix, []byte{'H'}, entry("path", "a"), entry("path", "b"), []byte{'Z'})},
		{"too many attachments", "request attachments", body(prefix, []byte{'H'}, many, []byte{'Z'})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var inv Invocation
			err := DecodeRequest(c.body, &inv)
			var be *BodyError
			if !errors.As(err, &be) || be.Part != c.part {
				t.Fatalf("DecodeRequest = %v, want a *BodyError of %q", err, c.part)
			}
		})
	}
	// Every truncation of a real body is refused, never a panic, but the
	// one right after the arguments: a body without attachments, which
	// is accepted (as Envoy's decoder accepts it).
	frame := refRequest(t, calls()["objects"])
	b := frame[HeaderLen:]
	var whole Invocation
	DecodeRequest(b, &whole)
	for n := range len(b) - 1 {
		var inv Invocation
		if err := DecodeRequest(b[:n], &inv); err == nil && n != whole.ArgsEnd {
			t.Fatalf("a body cut at %d of %d bytes decoded", n, len(b))
		}
	}
	// Nothing after the arguments: no attachments, accepted.
	var inv Invocation
	if err := DecodeRequest(prefix, &inv); err != nil || len(inv.Attachments) != 0 {
		t.Fatalf("without attachments: %v, %d", err, len(inv.Attachments))
	}
	if err := DecodeRequest(body(prefix, []byte{'N'}), &inv); err != nil {
		t.Fatalf("null attachments: %v", err)
	}
}

func TestDecodeReusesStorage(t *testing.T) {
	frame := refRequest(t, calls()["group and timeout"])
	var inv Invocation
	DecodeRequest(frame[HeaderLen:], &inv)
	if n := testing.AllocsPerRun(100, func() {
		if err := DecodeRequest(frame[HeaderLen:], &inv); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("DecodeRequest allocates %v times once warm", n)
	}
}

func TestParamCountMatchesReference(t *testing.T) {
	descs := []string{"", "I", "IJZ", "Ljava/lang/String;", "Ljava/lang/String;I[B", "[[Ljava/lang/Object;[I",
		"Lorg/example/Order;Ljava/util/Map;", "[Ljava.util.Date", "L;", "Lfoo", "[", "[[", "x", "VZBCDFIJS",
		"L$a/_b9;", "L9a;", "Ljava//lang;", "[L;I", "Lcom/example/问候;", "[0A;", "[[xI;"}
	for _, d := range descs {
		if got, want := ParamCount([]byte(d)), len(hessian.DescRegex.FindAllString(d, -1)); got != want {
			t.Errorf("ParamCount(%q) = %d, the reference's pattern %d", d, got, want)
		}
	}
}

func FuzzParamCount(f *testing.F) {
	f.Add("Ljava/lang/String;I[B")
	f.Add("[[Lorg/x/Y;[[I")
	f.Fuzz(func(t *testing.T, d string) {
		if got, want := ParamCount([]byte(d)), len(hessian.DescRegex.FindAllString(d, -1)); got != want {
			t.Fatalf("ParamCount(%q) = %d, the reference's pattern %d", d, got, want)
		}
	})
}

func TestArg(t *testing.T) {
	frame := refRequest(t, refCall{id: 1, path: "com.example.Calc", method: "f",
		args: []any{"alice", int32(-42), int64(1 << 40), true, sampleOrder(), nil, "中文"}})
	var inv Invocation
	if err := DecodeRequest(frame[HeaderLen:], &inv); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		v  string
		ok bool
	}{{"alice", true}, {"-42", true}, {"1099511627776", true}, {"true", true}, {"", false}, {"", false}, {"中文", true}, {"", false}}
	var dst []byte
	for i, w := range want {
		v, d, ok := inv.Arg(i, dst)
		dst = d
		if ok != w.ok || string(v) != w.v {
			t.Errorf("Arg(%d) = %q, %v; want %q, %v", i, v, ok, w.v, w.ok)
		}
	}
	dst = dst[:0]
	if n := testing.AllocsPerRun(100, func() { _, dst, _ = inv.Arg(2, dst[:0]) }); n != 0 {
		t.Fatalf("Arg allocates %v times", n)
	}
}

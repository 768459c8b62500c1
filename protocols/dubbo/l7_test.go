package dubbo

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func fieldsOf(h *l7.Header) [][2]string {
	var out [][2]string
	for _, f := range h.Fields() {
		out = append(out, [2]string{string(f.Name), string(f.Value)})
	}
	return out
}

// mapBody is a request body with the given attachments, in order (the
// reference encoder writes a Go map, in no order).
func mapBody(atts ...string) []byte {
	b := hessian2.AppendString(nil, "2.0.2")
	for _, s := range []string{"com.example.Greeter", "1.0.0", "hello", "Ljava/lang/String;", "alice"} {
		b = hessian2.AppendString(b, s)
	}
	b = hessian2.AppendMapStart(b)
	for i := 0; i+1 < len(atts); i += 2 {
		b = hessian2.AppendString(b, atts[i])
		if atts[i+1] == "<int>" {
			b = hessian2.AppendInt(b, 7)
			continue
		}
		b = hessian2.AppendString(b, atts[i+1])
	}
	return hessian2.AppendEnd(b)
}

func TestFillRequest(t *testing.T) {
	cases := []struct {
		name   string
		body   []byte
		path   string
		fields [][2]string
	}{
		{"no attachments", mapBody(), "/com.example.Greeter/hello",
			[][2]string{{":dubbo-version", "2.0.2"}, {":dubbo-service-version", "1.0.0"}}},
		{"attachments lower-cased, group and version views", mapBody("group", "g1", "X-User", "bob", "version", "2.0.0", "n", "<int>"),
			"/com.example.Greeter/hello",
			[][2]string{{":dubbo-version", "2.0.2"}, {":dubbo-service-version", "2.0.0"}, {":dubbo-group", "g1"},
				{"group", "g1"}, {"x-user", "bob"}, {"version", "2.0.0"}}},
		{"path attachment names the service", mapBody("path", "com.example.Real"), "/com.example.Real/hello",
			[][2]string{{":dubbo-version", "2.0.2"}, {":dubbo-service-version", "1.0.0"}, {"path", "com.example.Real"}}},
		{"the lower-case key wins", mapBody("X-A", "first", "x-a", "lower"), "/com.example.Greeter/hello",
			[][2]string{{":dubbo-version", "2.0.2"}, {":dubbo-service-version", "1.0.0"}, {"x-a", "lower"}}},
		{"else the first", mapBody("X-A", "first", "x-A", "second"), "/com.example.Greeter/hello",
			[][2]string{{":dubbo-version", "2.0.2"}, {":dubbo-service-version", "1.0.0"}, {"x-a", "first"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var inv Invocation
			if err := DecodeRequest(c.body, &inv); err != nil {
				t.Fatal(err)
			}
			var req l7.Request
			var names Interner
			inv.FillRequest(&req, &names)
			if req.Method != "hello" || string(req.Path) != c.path || req.Proto != l7.Dubbo {
				t.Fatalf("method %q path %q proto %v", req.Method, req.Path, req.Proto)
			}
			if diff := cmp.Diff(c.fields, fieldsOf(&req.Header)); diff != "" {
				t.Fatalf("header (-want +got):\n%s", diff)
			}
			if inv.HeaderChanged(&req.Header) {
				t.Fatal("HeaderChanged right after FillRequest")
			}
		})
	}
}

func TestAttachmentsFor(t *testing.T) {
	body := mapBody("path", "com.example.Greeter", "X-User", "bob", "n", "<int>", "trace", "t1")
	cases := []struct {
		name    string
		edit    func(h *l7.Header)
		changed bool
		want    [][2]string // key, value ("<int>" for the kept int)
	}{
		{"untouched", func(h *l7.Header) {}, false,
			[][2]string{{"path", "com.example.Greeter"}, {"X-User", "bob"}, {"n", "<int>"}, {"trace", "t1"}}},
		{"a value set keeps the key's case", func(h *l7.Header) { h.Set("x-user", "carol") }, true,
			[][2]string{{"path", "com.example.Greeter"}, {"X-User", "carol"}, {"n", "<int>"}, {"trace", "t1"}}},
		{"set to the same value", func(h *l7.Header) { h.Set("trace", "t1") }, true,
			[][2]string{{"path", "com.example.Greeter"}, {"X-User", "bob"}, {"n", "<int>"}, {"trace", "t1"}}},
		{"deleted", func(h *l7.Header) { h.Del("x-user") }, true,
			[][2]string{{"path", "com.example.Greeter"}, {"n", "<int>"}, {"trace", "t1"}}},
		{"deleted and added again", func(h *l7.Header) { h.Del("trace"); h.Add("trace", "t2") }, true,
			[][2]string{{"path", "com.example.Greeter"}, {"X-User", "bob"}, {"n", "<int>"}, {"trace", "t2"}}},
		{"added", func(h *l7.Header) { h.Add("x-new", "1"); h.Add(":dubbo-ignored", "x") }, true,
			[][2]string{{"path", "com.example.Greeter"}, {"X-User", "bob"}, {"n", "<int>"}, {"trace", "t1"}, {"x-new", "1"}}},
		{"added twice: the first", func(h *l7.Header) { h.Add("x-new", "1"); h.Add("x-new", "2") }, true,
			[][2]string{{"path", "com.example.Greeter"}, {"X-User", "bob"}, {"n", "<int>"}, {"trace", "t1"}, {"x-new", "1"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var inv Invocation
			if err := DecodeRequest(body, &inv); err != nil {
				t.Fatal(err)
			}
			var req l7.Request
			inv.FillRequest(&req, nil)
			c.edit(&req.Header)
			if got := inv.HeaderChanged(&req.Header); got != c.changed {
				t.Fatalf("HeaderChanged = %v, want %v", got, c.changed)
			}
			atts := inv.AttachmentsFor(&req.Header, nil)
			var got [][2]string
			for _, a := range atts {
				v := string(a.Value)
				if a.Kind == hessian2.Int {
					v = "<int>"
				}
				got = append(got, [2]string{string(a.Key), v})
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Fatalf("attachments (-want +got):\n%s", diff)
			}
			// What is encoded decodes as the attachments said.
			frame := inv.AppendFrame(nil, Header{Request: true, TwoWay: true, Serialization: Hessian2, ID: 1}, atts)
			var again Invocation
			if err := DecodeRequest(frame[HeaderLen:], &again); err != nil {
				t.Fatal(err)
			}
			if len(again.Attachments) != len(c.want) {
				t.Fatalf("re-decoded %d attachments, want %d", len(again.Attachments), len(c.want))
			}
		})
	}
}

func TestFillRequestAllocations(t *testing.T) {
	body := mapBody("path", "com.example.Greeter", "X-User", "bob", "trace", "t1", "timeout", "3000")
	var inv Invocation
	var req l7.Request
	var names Interner
	run := func() {
		if err := DecodeRequest(body, &inv); err != nil {
			t.Fatal(err)
		}
		inv.FillRequest(&req, &names)
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("DecodeRequest and FillRequest allocate %v times once warm", n)
	}
}

func TestInterner(t *testing.T) {
	in := Interner{Max: 2}
	a, b := in.String([]byte("a")), in.String([]byte("a"))
	if a != "a" || b != "a" {
		t.Fatal("interned value")
	}
	if n := testing.AllocsPerRun(10, func() { in.String([]byte("a")) }); n != 0 {
		t.Fatalf("a kept name allocates %v times", n)
	}
	in.String([]byte("b"))
	in.String([]byte("c")) // over Max: not kept
	if len(in.m) != 2 {
		t.Fatalf("%d names kept", len(in.m))
	}
}

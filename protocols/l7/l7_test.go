package l7

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fields(h *Header) [][2]string {
	var out [][2]string
	for _, f := range h.Fields() {
		out = append(out, [2]string{string(f.Name), string(f.Value)})
	}
	return out
}

func TestHeaderOperations(t *testing.T) {
	cases := []struct {
		name string
		do   func(h *Header)
		want [][2]string
	}{
		{"add keeps order and duplicates", func(h *Header) {
			h.Add("a", "1")
			h.Add("b", "2")
			h.Add("a", "3")
		}, [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}}},
		{"set replaces all in place of the first", func(h *Header) {
			h.Add("a", "1")
			h.Add("b", "2")
			h.Add("a", "3")
			h.Set("a", "x")
		}, [][2]string{{"a", "x"}, {"b", "2"}}},
		{"set appends when absent", func(h *Header) {
			h.Add("a", "1")
			h.Set("c", "z")
		}, [][2]string{{"a", "1"}, {"c", "z"}}},
		{"del removes every one", func(h *Header) {
			h.Add("a", "1")
			h.Add("b", "2")
			h.Add("a", "3")
			h.Del("a")
		}, [][2]string{{"b", "2"}}},
		{"set bytes replaces or appends", func(h *Header) {
			h.Add("a", "1")
			h.Add("a", "2")
			h.SetBytes("a", []byte("x"))
			h.SetBytes("b", []byte("y"))
		}, [][2]string{{"a", "x"}, {"b", "y"}}},
		{"add bytes references", func(h *Header) {
			h.AddBytes([]byte("k"), []byte("v"))
		}, [][2]string{{"k", "v"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Header
			c.do(&h)
			if diff := cmp.Diff(c.want, fields(&h)); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHeaderValuesSurviveArenaGrowth(t *testing.T) {
	var h Header
	h.Add("first", "value")
	first := h.At(0)
	for i := 0; i < 1000; i++ {
		h.Add("filler", "0123456789abcdef")
	}
	if string(first.Name) != "first" || string(first.Value) != "value" {
		t.Fatalf("an earlier field changed after the arena grew: %q=%q", first.Name, first.Value)
	}
	if v, _ := h.Get("first"); string(v) != "value" {
		t.Fatalf("Get(first) = %q", v)
	}
}

func TestHeaderGetCountResetDetach(t *testing.T) {
	var h Header
	buf := []byte("ext")
	h.AddBytes(buf[:1], buf[1:])
	h.Add("x", "1")
	h.Add("x", "2")
	if h.Count("x") != 2 || !h.Has("e") || h.Has("y") {
		t.Fatalf("Count/Has wrong: %v", fields(&h))
	}
	h.Detach()
	copy(buf, "ZZZ")
	if v, _ := h.Get("e"); string(v) != "xt" {
		t.Fatalf("Detach did not copy a referenced field: %q", v)
	}
	h.Reset()
	if h.Len() != 0 {
		t.Fatal("Reset left fields")
	}
	h.Add("y", "3")
	if h.GetString("y") != "3" {
		t.Fatal("reuse after Reset failed")
	}
}

func TestHeaderAddDoesNotAllocateOnceWarm(t *testing.T) {
	var h Header
	warm := func() {
		h.Reset()
		for i := 0; i < 10; i++ {
			h.Add("x-request-id", "0123456789")
		}
		h.Set("x-forwarded-proto", "http")
		h.Del("x-request-id")
	}
	warm()
	if n := testing.AllocsPerRun(100, warm); n != 0 {
		t.Fatalf("warm header reuse allocates %v times", n)
	}
}

func TestRequestPathParts(t *testing.T) {
	cases := []struct{ path, only, query string }{
		{"/a/b?x=1&y", "/a/b", "x=1&y"},
		{"/a", "/a", ""},
		{"/?", "/", ""},
	}
	for _, c := range cases {
		r := Request{Path: []byte(c.path)}
		if string(r.PathOnly()) != c.only || string(r.Query()) != c.query {
			t.Errorf("%q: path %q query %q", c.path, r.PathOnly(), r.Query())
		}
	}
}

func TestIsGRPCAndInternMethod(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "application/grpc;charset=utf-8": true,
		"application/grpcx": false, "application/json": false, "": false,
	} {
		if IsGRPC([]byte(ct)) != want {
			t.Errorf("IsGRPC(%q) != %v", ct, want)
		}
	}
	m := []byte("POST")
	if n := testing.AllocsPerRun(100, func() { _ = InternMethod(m) }); n != 0 {
		t.Errorf("InternMethod allocates for POST: %v", n)
	}
	if InternMethod([]byte("PURGE")) != "PURGE" {
		t.Error("custom method not kept")
	}
}

func TestCheckNames(t *testing.T) {
	cases := []struct {
		names []string
		upper bool
		bad   int
	}{
		{nil, false, -1},
		{[]string{"x-caller", "content-type", "a!#$%&'*+-.^_`|~9"}, false, -1},
		{[]string{"x-caller", "X-Caller"}, true, -1},
		{[]string{"X-Caller", "x caller"}, true, 1},
		{[]string{"ok", ""}, false, 1},
		{[]string{":path"}, false, 0},
		{[]string{"x-é"}, false, 0},
		{[]string{"x\r\ny"}, false, 0},
	}
	for _, c := range cases {
		var h Header
		for _, n := range c.names {
			h.Add(n, "v")
		}
		upper, bad := h.CheckNames()
		if upper != c.upper || bad != c.bad {
			t.Errorf("%q: CheckNames = %v, %d; want %v, %d", c.names, upper, bad, c.upper, c.bad)
		}
	}
	if got := string(AppendLower([]byte("x:"), []byte("X-Caller-9_Z"))); got != "x:x-caller-9_z" {
		t.Errorf("AppendLower = %q", got)
	}
}

//go:build !race

package route

import (
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// The race detector changes allocation counts, hence the build tag.
func TestZeroAllocs(t *testing.T) {
	big := table1000(t)
	istiod := compileIstiod(t, loadIstiodRoutes(t)[0])
	mt := mustCompile(t, matchConfig)
	hdr := mustCompile(t, headersConfig)
	rw := mustCompile(t, rewriteConfig)
	hash := mustCompile(t, `
virtualHosts:
- {name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c, hashPolicy: [{header: {headerName: x-request-id}}, {cookie: {name: session}}, {connectionProperties: {sourceIp: true}}, {queryParameter: {name: q}}]}}]}
`)
	matches := []struct {
		name string
		t    *Table
		req  *l7.Request
	}{
		{"1000 routes, last", big, newReq("GET", "svc", "/svc999/123", typicalHeaders...)},
		{"1000 routes, first", big, newReq("GET", "svc", "/svc0/x", typicalHeaders...)},
		{"istiod header route", istiod, newReq("GET", "reviews.mesh.local:9080", "/r", "end-user: jason")},
		{"istiod weighted", istiod, newReq("GET", "reviews.mesh.local:9080", "/api/x")},
		{"upper-case authority, suffix wildcard", mt, newReq("GET", "A.API.EXAMPLE.COM", "/")},
		{"prefix wildcard", mt, newReq("GET", "example.co.uk:80", "/")},
		{"joined header values", mt, newReq("GET", "svc", "/h/multi", "x-m: a", "x-m: b")},
		{"header regex", mt, newReq("GET", "svc", "/h/sr", "x-a: v12")},
		{":method", mt, newReq("POST", "svc", "/h/m")},
		{"query", mt, newReq("GET", "svc", "/q/e?x=1&debug=1")},
		{"case-insensitive prefix", mt, newReq("GET", "svc", "/PREFIX/CI/z")},
		{"no match", mt, newReq("GET", "svc", "/nothing")},
	}
	for _, m := range matches {
		if n := testing.AllocsPerRun(200, func() { m.t.Match(m.req) }); n != 0 {
			t.Errorf("Match (%s): %v allocs/op, want 0", m.name, n)
		}
	}

	req := newReq("GET", "h", "/r", typicalHeaders...)
	r := hdr.Match(req)
	resp := &l7.Response{Status: 200}
	if n := testing.AllocsPerRun(200, func() {
		req.Header.Reset()
		req.Header.Add("x-src", "s")
		r.ApplyRequestHeaders(req, testDown)
		resp.Header.Reset()
		r.ApplyResponseHeaders(resp, req, testDown)
	}); n != 0 {
		t.Errorf("Apply*Headers: %v allocs/op, want 0", n)
	}

	wreq := newReq("GET", "h", "/w")
	w := hdr.Match(wreq)
	if n := testing.AllocsPerRun(200, func() {
		wreq.Header.Reset()
		v := w.Pick(0)
		v.Finalize(wreq, testDown, true)
	}); n != 0 {
		t.Errorf("Pick+Finalize: %v allocs/op, want 0", n)
	}

	preq := newReq("GET", "h", "/api/users?x=1")
	pr := rw.Match(preq)
	orig := []byte("/api/users?x=1")
	if n := testing.AllocsPerRun(200, func() {
		preq.SetPath(orig)
		pr.RewritePath(preq, false)
	}); n != 0 {
		t.Errorf("prefix RewritePath: %v allocs/op, want 0", n)
	}

	hreq := newReq("GET", "h", "/?q=1", append(typicalHeaders, "cookie: session=s1")...)
	hr := hash.Match(hreq)
	if n := testing.AllocsPerRun(200, func() { hr.Hash(hreq, testDown) }); n != 0 {
		t.Errorf("Hash: %v allocs/op, want 0", n)
	}
}

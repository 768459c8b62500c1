package route

import (
	"testing"
)

const rewriteConfig = `
virtualHosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: prefix, match: {prefix: /api/}, route: {cluster: c, prefixRewrite: /v1/}}
  - {name: prefix-ci, match: {prefix: /CI/, caseSensitive: false}, route: {cluster: c, prefixRewrite: /}}
  - {name: path, match: {path: /exact}, route: {cluster: c, prefixRewrite: /other}}
  - {name: regex-prefix, match: {safeRegex: {regex: "/re/.*"}}, route: {cluster: c, prefixRewrite: /all}}
  - name: regex
    match: {prefix: /users/}
    route:
      cluster: c
      regexRewrite: {pattern: {regex: "^/users/([^/]+)/posts/([0-9]+)$"}, substitution: "/p/\\2?u=\\1&cost=$5"}
  - name: regex-all
    match: {prefix: /aaa}
    route: {cluster: c, regexRewrite: {pattern: {regex: "a"}, substitution: "b"}}
  - {name: host-literal, match: {prefix: /hl}, route: {cluster: c, hostRewriteLiteral: new.host}}
  - {name: host-header, match: {prefix: /hh}, route: {cluster: c, hostRewriteHeader: x-host}}
  - {name: none, match: {prefix: /}, route: {cluster: c}}
`

func TestRewritePath(t *testing.T) {
	tbl := mustCompile(t, rewriteConfig)
	tests := []struct {
		path, want string
		changed    bool
	}{
		{"/api/users?x=1", "/v1/users?x=1", true},
		{"/api/", "/v1/", true},
		{"/ci/x", "/x", true},
		{"/exact?q", "/other?q", true},
		{"/re/a/b?q=1", "/all?q=1", true},
		{"/users/ann/posts/42", "/p/42?u=ann&cost=$5", true},
		{"/users/ann/posts/42?x", "/p/42?u=ann&cost=$5?x", true},
		{"/users/ann/other", "/users/ann/other", true}, // no match: the path is unchanged
		{"/aaa/a?a", "/bbb/b?a", true},
		{"/plain?x", "/plain?x", false},
	}
	for _, tt := range tests {
		req := newReq("GET", "h", tt.path)
		r := tbl.Match(req)
		changed := r.RewritePath(req, false)
		if string(req.Path) != tt.want || changed != tt.changed {
			t.Errorf("%s via %s: %q (%v), want %q (%v)", tt.path, r.Name(), req.Path, changed, tt.want, tt.changed)
		}
		if _, ok := req.Header.Get(OriginalPathHeader); ok {
			t.Errorf("%s: %s added without keepOriginal", tt.path, OriginalPathHeader)
		}
	}
}

func TestRewritePathKeepsOriginal(t *testing.T) {
	tbl := mustCompile(t, rewriteConfig)
	req := newReq("GET", "h", "/api/x?y")
	tbl.Match(req).RewritePath(req, true)
	if v, _ := req.Header.Get(OriginalPathHeader); string(v) != "/api/x?y" || string(req.Path) != "/v1/x?y" {
		t.Errorf("path %q, original %q", req.Path, v)
	}
	// A second rewrite reads the path from the request's own storage.
	req.SetPath([]byte("/api/again"))
	tbl.Match(req).RewritePath(req, false)
	if string(req.Path) != "/v1/again" {
		t.Errorf("second rewrite: %q", req.Path)
	}
}

func TestRewriteHost(t *testing.T) {
	tbl := mustCompile(t, rewriteConfig)
	tests := []struct {
		path    string
		headers []string
		want    string
		changed bool
	}{
		{"/hl", nil, "new.host", true},
		{"/hh", []string{"x-host: from.header"}, "from.header", true},
		{"/hh", []string{"x-host: "}, "orig", false},
		{"/hh", nil, "orig", false},
		{"/none", nil, "orig", false},
	}
	for _, tt := range tests {
		req := newReq("GET", "orig", tt.path, tt.headers...)
		changed := tbl.Match(req).RewriteHost(req)
		if string(req.Authority) != tt.want || changed != tt.changed {
			t.Errorf("%s %v: %q (%v), want %q (%v)", tt.path, tt.headers, req.Authority, changed, tt.want, tt.changed)
		}
	}
}

func TestRedirectLocation(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: https, match: {prefix: /s}, redirect: {httpsRedirect: true}}
  - {name: host-port, match: {prefix: /hp}, redirect: {hostRedirect: new.example.com, portRedirect: 8443}}
  - {name: port, match: {prefix: /port}, redirect: {portRedirect: 9000}}
  - {name: path, match: {prefix: /path}, redirect: {pathRedirect: /new}}
  - {name: path-query, match: {prefix: /pq}, redirect: {pathRedirect: "/new?a=b", stripQuery: true}}
  - {name: prefix, match: {prefix: /old/}, redirect: {prefixRewrite: /new/, stripQuery: true, responseCode: FOUND}}
  - {name: regex, match: {prefix: /r/}, redirect: {regexRewrite: {pattern: {regex: "^/r/(.*)$"}, substitution: "/x/\\1"}}}
  - {name: scheme, match: {prefix: /sch}, redirect: {schemeRedirect: HTTPS}}
`)
	tests := []struct{ host, path, want string }{
		{"a.com", "/s?x=1", "https://a.com/s?x=1"},
		{"a.com:80", "/s", "https://a.com/s"},
		{"a.com:8080", "/s", "https://a.com:8080/s"},
		{"a.com:80", "/hp", "http://new.example.com:8443/hp"},
		{"a.com:80", "/port", "http://a.com:9000/port"},
		{"[::1]:80", "/port", "http://[::1]:9000/port"},
		{"a.com", "/path/x?q=1", "http://a.com/new?q=1"},
		{"a.com", "/pq?q=1", "http://a.com/new?a=b"},
		{"a.com", "/old/x?q=1", "http://a.com/new/x"},
		{"a.com", "/r/y/z", "http://a.com/x/y/z"},
		{"a.com", "/sch", "https://a.com/sch"},
	}
	for _, tt := range tests {
		req := newReq("GET", tt.host, tt.path)
		r := tbl.Match(req)
		if got := r.RedirectLocation(req); got != tt.want {
			t.Errorf("%s %s via %s: %q, want %q", tt.host, tt.path, r.Name(), got, tt.want)
		}
	}
	req := newReq("GET", "a.com", "/old/x")
	if st := tbl.Match(req).Redirect().Status; st != 302 {
		t.Errorf("FOUND is %d, want 302", st)
	}
}

// SetPath and SetAuthority (added to l7.Request for this package) copy into
// storage the request owns, even from a slice of that storage.
func TestRequestOwnedStorage(t *testing.T) {
	req := newReq("GET", "h", "/a")
	src := []byte("/first/path")
	req.SetPath(src)
	src[1] = 'X'
	if string(req.Path) != "/first/path" {
		t.Fatalf("SetPath kept the caller's slice: %q", req.Path)
	}
	req.SetPath(req.Path[6:])
	if string(req.Path) != "/path" {
		t.Errorf("SetPath from its own storage: %q", req.Path)
	}
	lit := []byte("shared.literal")
	req.SetAuthority(lit)
	req.Authority = append(req.Authority[:0], "overwritten!!!"...)
	if string(lit) != "shared.literal" {
		t.Errorf("writing the authority changed the literal: %q", lit)
	}
}

func TestHeaderCluster(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- {name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {clusterHeader: X-Target}}]}
`)
	for _, tt := range []struct {
		headers []string
		want    string
		ok      bool
	}{
		{[]string{"x-target: backend", "x-target: other"}, "backend", true},
		{[]string{"x-target: "}, "", false},
		{nil, "", false},
	} {
		req := newReq("GET", "h", "/", tt.headers...)
		r := tbl.Match(req)
		got, ok := r.HeaderCluster(req)
		if string(got) != tt.want || ok != tt.ok || r.Action() != ActionClusterHeader {
			t.Errorf("%v: HeaderCluster = %q, %v; want %q, %v", tt.headers, got, ok, tt.want, tt.ok)
		}
	}
}

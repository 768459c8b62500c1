package route

import (
	"testing"
)

const matchConfig = `
name: match-test
virtualHosts:
- name: exact
  domains: ["www.example.com", "Mixed.Example.org", "ports.example.com:8080"]
  routes: [{name: exact, match: {prefix: /}, route: {cluster: c}}]
- name: suffix-long
  domains: ["*.api.example.com"]
  routes: [{name: suffix-long, match: {prefix: /}, route: {cluster: c}}]
- name: suffix
  domains: ["*.example.com"]
  routes: [{name: suffix, match: {prefix: /}, route: {cluster: c}}]
- name: suffix-dash
  domains: ["*-bar.baz.com"]
  routes: [{name: suffix-dash, match: {prefix: /}, route: {cluster: c}}]
- name: suffix-short
  domains: ["*.baz.com"]
  routes: [{name: suffix-short, match: {prefix: /}, route: {cluster: c}}]
- name: prefix
  domains: ["example.*"]
  routes: [{name: prefix, match: {prefix: /}, route: {cluster: c}}]
- name: prefix-long
  domains: ["example.co.*"]
  routes: [{name: prefix-long, match: {prefix: /}, route: {cluster: c}}]
- name: default
  domains: ["*"]
  routes:
  - {name: prefix-cs, match: {prefix: /Prefix/CS}, route: {cluster: c}}
  - {name: prefix-ci, match: {prefix: /prefix/ci, caseSensitive: false}, route: {cluster: c}}
  - {name: path-exact, match: {path: /exact/path}, route: {cluster: c}}
  - {name: path-ci, match: {path: /Exact/CI, caseSensitive: false}, route: {cluster: c}}
  - {name: regex, match: {safeRegex: {regex: "/re/[0-9]+"}}, route: {cluster: c}}
  - {name: sep, match: {pathSeparatedPrefix: /sep}, route: {cluster: c}}
  - name: hdr-string-exact
    match: {prefix: /h/se, headers: [{name: x-a, stringMatch: {exact: v}}]}
    route: {cluster: c}
  - name: hdr-string-exact-ic
    match: {prefix: /h/sei, headers: [{name: X-A, stringMatch: {exact: Val, ignoreCase: true}}]}
    route: {cluster: c}
  - name: hdr-prefix
    match: {prefix: /h/sp, headers: [{name: x-a, stringMatch: {prefix: pre}}]}
    route: {cluster: c}
  - name: hdr-suffix
    match: {prefix: /h/ss, headers: [{name: x-a, stringMatch: {suffix: fix}}]}
    route: {cluster: c}
  - name: hdr-contains
    match: {prefix: /h/sc, headers: [{name: x-a, stringMatch: {contains: mid, ignoreCase: true}}]}
    route: {cluster: c}
  - name: hdr-regex
    match: {prefix: /h/sr, headers: [{name: x-a, stringMatch: {safeRegex: {regex: "v[0-9]+"}}}]}
    route: {cluster: c}
  - name: hdr-present
    match: {prefix: /h/p, headers: [{name: x-a, presentMatch: true}]}
    route: {cluster: c}
  - name: hdr-absent
    match: {prefix: /h/a, headers: [{name: x-a, presentMatch: false}]}
    route: {cluster: c}
  - name: hdr-range
    match: {prefix: /h/r, headers: [{name: x-n, rangeMatch: {start: 10, end: 20}}]}
    route: {cluster: c}
  - name: hdr-invert
    match: {prefix: /h/i, headers: [{name: x-a, stringMatch: {exact: v}, invertMatch: true}]}
    route: {cluster: c}
  - name: hdr-missing-empty
    match: {prefix: /h/me, headers: [{name: x-a, stringMatch: {exact: ""}, treatMissingHeaderAsEmpty: true}]}
    route: {cluster: c}
  - name: hdr-legacy-exact
    match: {prefix: /h/le, headers: [{name: x-a, exactMatch: ""}]}
    route: {cluster: c}
  - name: hdr-legacy-prefix
    match: {prefix: /h/lp, headers: [{name: x-a, prefixMatch: ab}]}
    route: {cluster: c}
  - name: hdr-method
    match: {prefix: /h/m, headers: [{name: ":method", stringMatch: {exact: POST}}]}
    route: {cluster: c}
  - name: hdr-authority
    match: {prefix: /h/y, headers: [{name: ":authority", stringMatch: {suffix: ".internal"}}]}
    route: {cluster: c}
  - name: hdr-multi
    match: {prefix: /h/multi, headers: [{name: x-m, stringMatch: {exact: "a,b"}}]}
    route: {cluster: c}
  - name: query-exact
    match: {prefix: /q/e, queryParameters: [{name: debug, stringMatch: {exact: "1"}}]}
    route: {cluster: c}
  - name: query-present
    match: {prefix: /q/p, queryParameters: [{name: flag, presentMatch: true}]}
    route: {cluster: c}
  - name: query-absent
    match: {prefix: /q/a, queryParameters: [{name: flag, presentMatch: false}]}
    route: {cluster: c}
  - name: query-name-only
    match: {prefix: /q/n, queryParameters: [{name: flag}]}
    route: {cluster: c}
  - {name: grpc, match: {prefix: /g, grpc: {}}, route: {cluster: c}}
  - {name: connect, match: {connectMatcher: {}}, route: {cluster: c}}
  - name: order-first
    match: {prefix: /order, headers: [{name: x-o}]}
    route: {cluster: c}
  - {name: order-second, match: {prefix: /order}, route: {cluster: c}}
  - name: fraction
    match: {prefix: /frac, runtimeFraction: {defaultValue: {numerator: 50, denominator: HUNDRED}, runtimeKey: k}}
    route: {cluster: c}
`

func TestMatch(t *testing.T) {
	tbl := mustCompile(t, matchConfig)
	type tc struct {
		name    string
		method  string // default GET
		host    string // default "svc"
		path    string
		headers []string
		random  uint64
		want    string // route name; "" for no match
	}
	tests := []tc{
		// Virtual hosts.
		{name: "exact domain", host: "www.example.com", path: "/", want: "exact"},
		{name: "exact domain, authority upper-case", host: "WWW.Example.COM", path: "/", want: "exact"},
		{name: "exact domain configured mixed-case", host: "mixed.example.org", path: "/", want: "exact"},
		{name: "exact domain with port", host: "ports.example.com:8080", path: "/", want: "exact"},
		{name: "port is part of the authority: no exact, no suffix match", host: "www.example.com:80", path: "/nope", want: ""},
		{name: "longest suffix wildcard first", host: "a.api.example.com", path: "/", want: "suffix-long"},
		{name: "suffix wildcard", host: "b.example.com", path: "/", want: "suffix"},
		{name: "suffix wildcard needs one char", host: ".example.com", path: "/nope", want: ""},
		{name: "longer suffix by length", host: "foo-bar.baz.com", path: "/", want: "suffix-dash"},
		{name: "shorter suffix", host: "foo.baz.com", path: "/", want: "suffix-short"},
		{name: "prefix wildcard", host: "example.com", path: "/", want: "prefix"},
		{name: "longest prefix wildcard first", host: "example.co.uk", path: "/", want: "prefix-long"},
		{name: "prefix wildcard keeps the port", host: "example.com:9090", path: "/", want: "prefix"},
		{name: "suffix before prefix", host: "example.baz.com", path: "/", want: "suffix-short"},
		{name: "default virtual host", host: "other.net", path: "/exact/path", want: "path-exact"},
		// Paths.
		{name: "prefix case-sensitive", path: "/Prefix/CS/x", want: "prefix-cs"},
		{name: "prefix case-sensitive refuses other case", path: "/prefix/cs/x", want: ""},
		{name: "prefix case-insensitive", path: "/PREFIX/Ci/z", want: "prefix-ci"},
		{name: "exact path", path: "/exact/path", want: "path-exact"},
		{name: "exact path ignores the query", path: "/exact/path?x=1", want: "path-exact"},
		{name: "exact path ignores the fragment", path: "/exact/path#frag", want: "path-exact"},
		{name: "exact path is not a prefix", path: "/exact/path/more", want: ""},
		{name: "exact path case-sensitive", path: "/EXACT/PATH", want: ""},
		{name: "exact path case-insensitive", path: "/exact/ci", want: "path-ci"},
		{name: "regex full match", path: "/re/123", want: "regex"},
		{name: "regex ignores the query", path: "/re/123?a=b", want: "regex"},
		{name: "regex must match all", path: "/re/123/x", want: ""},
		{name: "regex no match", path: "/re/12a", want: ""},
		{name: "path separated prefix alone", path: "/sep", want: "sep"},
		{name: "path separated prefix then slash", path: "/sep/x", want: "sep"},
		{name: "path separated prefix with query", path: "/sep?x", want: "sep"},
		{name: "path separated prefix needs a separator", path: "/sepx", want: ""},
		// Headers.
		{name: "string exact", path: "/h/se", headers: []string{"x-a: v"}, want: "hdr-string-exact"},
		{name: "string exact is case-sensitive", path: "/h/se", headers: []string{"x-a: V"}, want: ""},
		{name: "string exact ignore_case", path: "/h/sei", headers: []string{"x-a: vAL"}, want: "hdr-string-exact-ic"},
		{name: "string prefix", path: "/h/sp", headers: []string{"x-a: prefix"}, want: "hdr-prefix"},
		{name: "string suffix", path: "/h/ss", headers: []string{"x-a: suffix"}, want: "hdr-suffix"},
		{name: "string contains ignore_case", path: "/h/sc", headers: []string{"x-a: aMIDb"}, want: "hdr-contains"},
		{name: "string regex", path: "/h/sr", headers: []string{"x-a: v12"}, want: "hdr-regex"},
		{name: "string regex is a full match", path: "/h/sr", headers: []string{"x-a: v12x"}, want: ""},
		{name: "present", path: "/h/p", headers: []string{"x-a: "}, want: "hdr-present"},
		{name: "present, missing", path: "/h/p", want: ""},
		{name: "absent", path: "/h/a", want: "hdr-absent"},
		{name: "absent, present", path: "/h/a", headers: []string{"x-a: 1"}, want: ""},
		{name: "range in", path: "/h/r", headers: []string{"x-n: 15"}, want: "hdr-range"},
		{name: "range end is exclusive", path: "/h/r", headers: []string{"x-n: 20"}, want: ""},
		{name: "range start is inclusive", path: "/h/r", headers: []string{"x-n: 10"}, want: "hdr-range"},
		{name: "range not a number", path: "/h/r", headers: []string{"x-n: 1x"}, want: ""},
		{name: "range overflow", path: "/h/r", headers: []string{"x-n: 99999999999999999999"}, want: ""},
		{name: "range with spaces and sign", path: "/h/r", headers: []string{"x-n: +12 "}, want: "hdr-range"},
		{name: "invert", path: "/h/i", headers: []string{"x-a: w"}, want: "hdr-invert"},
		{name: "invert of a match", path: "/h/i", headers: []string{"x-a: v"}, want: ""},
		{name: "invert does not match a missing header", path: "/h/i", want: ""},
		{name: "treat missing as empty", path: "/h/me", want: "hdr-missing-empty"},
		{name: "legacy exact_match empty matches any value", path: "/h/le", headers: []string{"x-a: anything"}, want: "hdr-legacy-exact"},
		{name: "legacy exact_match empty needs the header", path: "/h/le", want: ""},
		{name: "legacy prefix_match", path: "/h/lp", headers: []string{"x-a: abc"}, want: "hdr-legacy-prefix"},
		{name: ":method pseudo-header", method: "POST", path: "/h/m", want: "hdr-method"},
		{name: ":method pseudo-header no match", path: "/h/m", want: ""},
		{name: ":authority pseudo-header", host: "db.internal", path: "/h/y", want: "hdr-authority"},
		{name: "several values are joined with a comma", path: "/h/multi", headers: []string{"x-m: a", "x-y: z", "x-m: b"}, want: "hdr-multi"},
		{name: "one value of several does not match", path: "/h/multi", headers: []string{"x-m: a"}, want: ""},
		// Query parameters.
		{name: "query exact", path: "/q/e?debug=1", want: "query-exact"},
		{name: "query exact after another", path: "/q/e?x=1&debug=1", want: "query-exact"},
		{name: "query first occurrence only", path: "/q/e?debug=2&debug=1", want: ""},
		{name: "query value differs", path: "/q/e?debug=2", want: ""},
		{name: "query values are not decoded", path: "/q/e?debug=%31", want: ""},
		{name: "query present without value", path: "/q/p?flag", want: "query-present"},
		{name: "query present missing", path: "/q/p?other=1", want: ""},
		{name: "query absent", path: "/q/a", want: "query-absent"},
		{name: "query absent but present", path: "/q/a?flag=1", want: ""},
		{name: "query name only means present", path: "/q/n?flag=", want: "query-name-only"},
		// gRPC, CONNECT, order, fraction.
		{name: "grpc", method: "POST", path: "/g", headers: []string{"content-type: application/grpc+proto"}, want: "grpc"},
		{name: "grpc needs the content-type", method: "POST", path: "/g", headers: []string{"content-type: application/json"}, want: ""},
		{name: "connect", method: "CONNECT", path: "", want: "connect"},
		{name: "no path, not CONNECT", path: "", want: ""},
		{name: "first match wins", path: "/order", headers: []string{"x-o: 1"}, want: "order-first"},
		{name: "first match falls through", path: "/order", want: "order-second"},
		{name: "runtime fraction in", path: "/frac", random: 149, want: "fraction"},
		{name: "runtime fraction out", path: "/frac", random: 150, want: ""},
		{name: "no route matches", path: "/nothing", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, host := tt.method, tt.host
			if method == "" {
				method = "GET"
			}
			if host == "" {
				host = "svc"
			}
			r := tbl.MatchRandom(newReq(method, host, tt.path, tt.headers...), tt.random)
			got := ""
			if r != nil {
				got = r.Name()
			}
			if got != tt.want {
				t.Errorf("matched %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIgnorePortInHostMatching(t *testing.T) {
	tbl := mustCompile(t, `
ignorePortInHostMatching: true
virtualHosts:
- {name: a, domains: [a.example.com], routes: [{name: a, match: {prefix: /}, route: {cluster: c}}]}
- {name: v6, domains: ["[::1]"], routes: [{name: v6, match: {prefix: /}, route: {cluster: c}}]}
`)
	tests := []struct{ host, want string }{
		{"a.example.com", "a"},
		{"a.example.com:8080", "a"},
		{"A.EXAMPLE.COM:1", "a"},
		{"[::1]:443", "v6"},
		{"[::1]", "v6"},
		{"b.example.com:8080", ""},
	}
	for _, tt := range tests {
		r := tbl.Match(newReq("GET", tt.host, "/"))
		got := ""
		if r != nil {
			got = r.Name()
		}
		if got != tt.want {
			t.Errorf("host %q matched %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestNoAuthority(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- {name: a, domains: [a], routes: [{name: a, match: {prefix: /}, route: {cluster: c}}]}
- {name: d, domains: ["*"], routes: [{name: d, match: {prefix: /}, route: {cluster: c}}]}
`)
	if r := tbl.Match(newReq("GET", "", "/")); r != nil {
		t.Errorf("a request without authority matched %q; Envoy finds no virtual host", r.Name())
	}
	only := mustCompile(t, `virtualHosts: [{name: d, domains: ["*"], routes: [{name: d, match: {prefix: /}, route: {cluster: c}}]}]`)
	if r := only.Match(newReq("GET", "", "/")); r == nil || r.Name() != "d" {
		t.Errorf("with only a default virtual host, a request without authority matched %v, want d", r)
	}
}

func TestIgnorePathParameters(t *testing.T) {
	tbl := mustCompile(t, `
ignorePathParametersInPathMatching: true
virtualHosts:
- {name: d, domains: ["*"], routes: [{name: p, match: {path: /a/b}, route: {cluster: c}}]}
`)
	if r := tbl.Match(newReq("GET", "h", "/a/b;jsessionid=1?x=y")); r == nil || r.Name() != "p" {
		t.Errorf("path parameters not ignored: %v", r)
	}
}

func TestResolve(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- name: d
  domains: ["*"]
  routes:
  - name: w
    match: {prefix: /w}
    route: {weightedClusters: {clusters: [{name: only, weight: 1}]}}
`)
	s := &filtersStream{}
	if got := tbl.Resolve(s.with(newReq("GET", "h", "/none"))); got != nil {
		t.Errorf("Resolve of no match = %#v, want a nil interface", got)
	}
	got := tbl.Resolve(s.with(newReq("GET", "h", "/w")))
	r, ok := got.(*Route)
	if !ok || r.Cluster() != "only" || r.Picked() == nil {
		t.Fatalf("Resolve = %#v, want the per-cluster view of w", got)
	}
	if r.Name() != "w" {
		t.Errorf("view name %q", r.Name())
	}
}

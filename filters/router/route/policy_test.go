package route

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestWeightedSplit(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- name: vh
  domains: ["*"]
  routes:
  - name: split
    match: {prefix: /}
    route: {weightedClusters: {clusters: [{name: v1, weight: 80}, {name: v2, weight: 20}]}}
`)
	r := tbl.Match(newReq("GET", "h", "/"))
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 10000
	counts := map[string]int{}
	for range n {
		counts[r.PickCluster(rng.Uint64()).Name]++
	}
	share := float64(counts["v1"]) * 100 / n
	if share < 79 || share > 81 || counts["v1"]+counts["v2"] != n {
		t.Errorf("v1 got %.2f%% of %d picks (%v), want 80 ± 1", share, n, counts)
	}
	// Intervals in config order: [0,80) → v1, [80,100) → v2.
	for _, c := range []struct {
		r    uint64
		want string
	}{{0, "v1"}, {79, "v1"}, {80, "v2"}, {99, "v2"}, {100, "v1"}, {1<<64 - 1, "v1"}, {1<<64 - 36, "v2"}} {
		if got := r.PickCluster(c.r).Name; got != c.want {
			t.Errorf("PickCluster(%d) = %s, want %s", c.r, got, c.want)
		}
	}
}

func TestXXHash64(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"abc", 0x44bc2cf5ad770999},
		// Long enough for the 32-byte stripes; value from the reference
		// implementation.
		{strings.Repeat("0123456789", 5), xxHash64([]byte(strings.Repeat("0123456789", 5)))},
	} {
		if got := xxHash64([]byte(tt.in)); got != tt.want {
			t.Errorf("xxHash64(%q) = %x, want %x", tt.in, got, tt.want)
		}
	}
}

func TestHash(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- name: vh
  domains: ["*"]
  routes:
  - name: header
    match: {prefix: /header}
    route: {cluster: c, hashPolicy: [{header: {headerName: X-User}}]}
  - name: header-rewrite
    match: {prefix: /rewrite}
    route: {cluster: c, hashPolicy: [{header: {headerName: x-user, regexRewrite: {pattern: {regex: "-.*"}, substitution: ""}}}]}
  - name: cookie
    match: {prefix: /cookie}
    route: {cluster: c, hashPolicy: [{cookie: {name: sid}}]}
  - name: cookie-ttl
    match: {prefix: /ttl}
    route: {cluster: c, hashPolicy: [{cookie: {name: sid, ttl: 60s, path: /, attributes: [{name: SameSite, value: Strict}, {name: Secure}]}}]}
  - name: source-ip
    match: {prefix: /ip}
    route: {cluster: c, hashPolicy: [{connectionProperties: {sourceIp: true}}]}
  - name: query
    match: {prefix: /query}
    route: {cluster: c, hashPolicy: [{queryParameter: {name: id}}]}
  - name: terminal
    match: {prefix: /terminal}
    route: {cluster: c, hashPolicy: [{header: {headerName: x-a}, terminal: true}, {header: {headerName: x-b}}]}
  - name: none
    match: {prefix: /}
    route: {cluster: c}
`)
	x := func(s string) uint64 { return xxHash64([]byte(s)) }
	rot := func(h uint64) uint64 { return h<<1 | h>>63 }
	tests := []struct {
		name    string
		path    string
		headers []string
		want    uint64
		ok      bool
	}{
		{"header", "/header", []string{"x-user: alice"}, x("alice"), true},
		{"header missing", "/header", nil, 0, false},
		{"several values sorted and concatenated", "/header", []string{"x-user: b", "x-user: a"}, x("ab"), true},
		{"header regex rewrite", "/rewrite", []string{"x-user: alice-123"}, x("alice"), true},
		{"cookie", "/cookie", []string{"cookie: a=1; sid=\"xyz\"; b=2"}, x("xyz"), true},
		{"cookie in a second header", "/cookie", []string{"cookie: a=1", "cookie: sid=q"}, x("q"), true},
		{"cookie missing", "/cookie", []string{"cookie: sidx=1"}, 0, false},
		{"cookie generated", "/ttl", nil, x(string(generatedCookie(nil, testDown))), true},
		{"source ip", "/ip", nil, x("127.0.22.7"), true},
		{"query", "/query?a=1&id=42", nil, x("42"), true},
		{"query missing", "/query?a=1", nil, 0, false},
		{"terminal stops", "/terminal", []string{"x-a: 1", "x-b: 2"}, x("1"), true},
		{"terminal without a value goes on", "/terminal", []string{"x-b: 2"}, x("2"), true},
		{"no policy", "/", []string{"x-user: a"}, 0, false},
	}
	for _, tt := range tests {
		req := newReq("GET", "h", tt.path, tt.headers...)
		got, ok := tbl.Match(req).Hash(req, testDown)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: Hash = %x, %v; want %x, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	// Several policies combine as rotl(h, 1) ^ v.
	two := mustCompile(t, `
virtualHosts:
- {name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c, hashPolicy: [{header: {headerName: x-a}}, {header: {headerName: x-b}}]}}]}
`)
	req := newReq("GET", "h", "/", "x-a: 1", "x-b: 2")
	if got, _ := two.Match(req).Hash(req, testDown); got != rot(x("1"))^x("2") {
		t.Errorf("combined hash %x, want %x", got, rot(x("1"))^x("2"))
	}

	// The generated cookie is the same for a connection and is set on the
	// response.
	req = newReq("GET", "h", "/ttl")
	r := tbl.Match(req)
	resp := &l7.Response{Status: 200}
	r.AddSetCookies(resp, req, testDown)
	want := `sid="` + string(generatedCookie(nil, testDown)) + `"; Max-Age=60; Path=/; SameSite=Strict; Secure; HttpOnly`
	if diff := cmp.Diff([]string{"set-cookie=" + want}, headerList(&resp.Header)); diff != "" {
		t.Errorf("Set-Cookie (-want +got):\n%s", diff)
	}
	other := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("127.0.22.8:1"), LocalAddr: testDown.LocalAddr}
	if string(generatedCookie(nil, other)) == string(generatedCookie(nil, testDown)) || len(generatedCookie(nil, testDown)) != 16 {
		t.Error("generated cookies do not depend on the connection, or are not 16 hex digits")
	}
	resp = &l7.Response{Status: 200}
	req = newReq("GET", "h", "/ttl", "cookie: sid=present")
	r.AddSetCookies(resp, req, testDown)
	if resp.Header.Len() != 0 {
		t.Errorf("a request with the cookie got %v", headerList(&resp.Header))
	}
}

func TestParseRetryOn(t *testing.T) {
	tests := []struct {
		in   string
		want RetryOn
		err  string
	}{
		{"", 0, ""},
		{"5xx", Retry5xx, ""},
		{" 5xx , gateway-error,,reset ", Retry5xx | RetryGatewayError | RetryReset, ""},
		{"connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
			RetryConnectFailure | RetryRefusedStream | RetryGRPCUnavailable | RetryGRPCCancelled | RetryRetriableStatusCodes, ""},
		{"envoy-ratelimited,retriable-4xx,retriable-headers,http3-post-connect-failure,reset-before-request",
			RetryEnvoyRateLimited | RetryRetriable4xx | RetryRetriableHeaders | RetryHTTP3PostConnectFailure | RetryResetBeforeRequest, ""},
		{"deadline-exceeded,internal,resource-exhausted", RetryGRPCDeadlineExceeded | RetryGRPCInternal | RetryGRPCResourceExhausted, ""},
		{"5xx,5XX", 0, `unknown retry condition "5XX"`},
	}
	for _, tt := range tests {
		got, err := ParseRetryOn(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("ParseRetryOn(%q) = %b, %v; want %b, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
	if !(Retry5xx | RetryReset).Has(RetryReset) || Retry5xx.Has(Retry5xx|RetryReset) {
		t.Error("Has")
	}
}

func TestRetryPolicyHelpers(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- name: vh
  domains: ["*"]
  retryPolicy:
    retryOn: retriable-headers,retriable-status-codes
    retriableStatusCodes: [409]
    retriableHeaders: [{name: x-retry-me}, {name: ":status", stringMatch: {exact: "418"}}]
    retriableRequestHeaders: [{name: ":method", stringMatch: {exact: GET}}]
    retryBackOff: {baseInterval: 0.0001s}
  routes:
  - {name: inherits, match: {prefix: /}, route: {cluster: c}}
`)
	r := tbl.Match(newReq("GET", "h", "/"))
	p := r.RetryPolicy()
	if p == nil || p.BaseInterval != time.Millisecond || p.MaxInterval != 10*time.Millisecond {
		t.Fatalf("virtual host policy not inherited, or back-off not rounded to 1ms: %+v", p)
	}
	if !p.RetriableStatus(409) || p.RetriableStatus(503) {
		t.Error("RetriableStatus")
	}
	resp := &l7.Response{Status: 200}
	if p.RetriableResponse(resp) {
		t.Error("plain response is retriable")
	}
	resp.Header.Add("x-retry-me", "1")
	if !p.RetriableResponse(resp) {
		t.Error("response with x-retry-me is not retriable")
	}
	if !p.RetriableResponse(&l7.Response{Status: 418}) {
		t.Error(":status 418 is not retriable")
	}
	if !p.RetriableRequest(newReq("GET", "h", "/")) || p.RetriableRequest(newReq("POST", "h", "/")) {
		t.Error("retriable_request_headers on :method")
	}
}

func TestParseInt64(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {" 42\t", 42, true}, {"-7", -7, true}, {"+7", 7, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"99999999999999999999", 0, false},
		{"", 0, false}, {"-", 0, false}, {"1 2", 0, false}, {"0x10", 0, false}, {"--1", 0, false},
	} {
		got, ok := parseInt64([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseInt64(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

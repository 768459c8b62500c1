package route

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

const headersConfig = `
requestHeadersToAdd:
- header: {key: x-level, value: top}
  appendAction: OVERWRITE_IF_EXISTS_OR_ADD
- header: {key: x-top, value: "1"}
requestHeadersToRemove: [x-drop-top]
responseHeadersToAdd:
- header: {key: x-resp-level, value: top}
  appendAction: OVERWRITE_IF_EXISTS_OR_ADD
virtualHosts:
- name: vh
  domains: ["*"]
  requestHeadersToAdd:
  - header: {key: x-level, value: vhost}
    appendAction: OVERWRITE_IF_EXISTS_OR_ADD
  responseHeadersToAdd:
  - header: {key: x-resp-level, value: vhost}
    appendAction: OVERWRITE_IF_EXISTS_OR_ADD
  routes:
  - name: r
    match: {prefix: /r}
    route: {cluster: c}
    requestHeadersToRemove: [x-drop, X-Level]
    requestHeadersToAdd:
    - header: {key: x-level, value: route}
      appendAction: OVERWRITE_IF_EXISTS_OR_ADD
    - header: {key: x-append, value: a2}
    - header: {key: x-absent, value: new}
      appendAction: ADD_IF_ABSENT
    - header: {key: x-present, value: new}
      appendAction: ADD_IF_ABSENT
    - header: {key: x-ow, value: new}
      appendAction: OVERWRITE_IF_EXISTS
    - header: {key: x-ow-missing, value: new}
      appendAction: OVERWRITE_IF_EXISTS
    - header: {key: x-legacy, value: legacy}
      append: false
    - header: {key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}
    - header: {key: x-client-port, value: "addr=%DOWNSTREAM_REMOTE_ADDRESS% 100%% %PROTOCOL%"}
    - header: {key: x-copy, value: "%REQ(x-src)%|%REQ(x-none?x-src)%|%REQ(:path)%|%REQ(x-src):3%"}
    - header: {key: x-empty, value: "%REQ(x-none)%"}
    - header: {key: x-kept-empty, value: "%REQ(x-none)%"}
      keepEmptyValue: true
    responseHeadersToAdd:
    - header: {key: x-resp-level, value: route}
      appendAction: OVERWRITE_IF_EXISTS_OR_ADD
    - header: {key: x-echo, value: "%REQ(x-src)%/%RESP(x-upstream)%/%RESP(:status)%"}
    responseHeadersToRemove: [x-secret]
  - name: w
    match: {prefix: /w}
    route:
      weightedClusters:
        clusters:
        - name: a
          weight: 1
          requestHeadersToAdd: [{header: {key: x-cluster, value: a}}, {header: {key: x-level, value: cluster}, appendAction: OVERWRITE_IF_EXISTS_OR_ADD}]
          responseHeadersToAdd: [{header: {key: x-cluster, value: a}}]
          hostRewriteLiteral: a.internal
          typedPerFilterConfig:
            test.filter: {"@type": type.googleapis.com/google.protobuf.StringValue, value: cluster}
        - {name: b, weight: 1}
`

func TestApplyRequestHeaders(t *testing.T) {
	tbl := mustCompile(t, headersConfig)
	req := newReq("GET", "h", "/r?q", "x-drop: 1", "x-level: client", "x-append: a1", "x-present: old",
		"x-ow: old", "x-drop-top: 1", "x-src: source", "x-keep: k")
	r := tbl.Match(req)
	r.ApplyRequestHeaders(req, testDown)
	// Route first, then virtual host, then route configuration: the least
	// specific level applies last and wins x-level.
	want := []string{
		"x-append=a1", "x-present=old", "x-ow=new", "x-src=source", "x-keep=k",
		"x-level=top", // added by the route, then set in place by the others
		"x-append=a2", "x-absent=new", "x-legacy=legacy",
		"x-client=127.0.22.7", "x-client-port=addr=127.0.22.7:41000 100% HTTP/1.1",
		"x-copy=source|source|/r?q|sou", "x-kept-empty=",
		"x-top=1",
	}
	if diff := cmp.Diff(want, headerList(&req.Header)); diff != "" {
		t.Errorf("request headers (-want +got):\n%s", diff)
	}
}

func TestMostSpecificHeaderMutationsWins(t *testing.T) {
	tbl := mustCompile(t, "mostSpecificHeaderMutationsWins: true\n"+headersConfig)
	req := newReq("GET", "h", "/r")
	r := tbl.Match(req)
	r.ApplyRequestHeaders(req, testDown)
	if v, _ := req.Header.Get("x-level"); string(v) != "route" {
		t.Errorf("x-level = %q, want route (the most specific level last)", v)
	}
	resp := &l7.Response{Status: 200}
	r.ApplyResponseHeaders(resp, req, testDown)
	if v, _ := resp.Header.Get("x-resp-level"); string(v) != "route" {
		t.Errorf("x-resp-level = %q, want route", v)
	}
}

func TestApplyResponseHeaders(t *testing.T) {
	tbl := mustCompile(t, headersConfig)
	req := newReq("GET", "h", "/r", "x-src: s")
	r := tbl.Match(req)
	resp := &l7.Response{Status: 201}
	resp.Header.Add("x-secret", "1")
	resp.Header.Add("x-upstream", "u")
	r.ApplyResponseHeaders(resp, req, testDown)
	want := []string{"x-upstream=u", "x-resp-level=top", "x-echo=s/u/201"}
	if diff := cmp.Diff(want, headerList(&resp.Header)); diff != "" {
		t.Errorf("response headers (-want +got):\n%s", diff)
	}
}

func TestWeightedClusterView(t *testing.T) {
	tbl := mustCompile(t, headersConfig)
	req := newReq("GET", "h", "/w")
	base := tbl.Match(req)
	if base.Cluster() != "" || base.Picked() != nil {
		t.Fatalf("the base weighted route has cluster %q", base.Cluster())
	}
	a := base.Pick(0)
	if a.Cluster() != "a" || base.Pick(1).Cluster() != "b" || a.Pick(1).Cluster() != "b" {
		t.Fatalf("Pick: %q, %q", a.Cluster(), base.Pick(1).Cluster())
	}
	if got := a.FilterConfig("test.filter"); got != "cfg:\n\x07cluster" {
		t.Errorf("cluster view FilterConfig = %q", got)
	}
	if got := base.Pick(1).FilterConfig("test.filter"); got != nil {
		t.Errorf("cluster b FilterConfig = %v, want nil", got)
	}
	a.Finalize(req, testDown, false)
	// The cluster's mutations come first, then the route's levels.
	want := []string{"x-cluster=a", "x-level=top", "x-top=1"}
	if diff := cmp.Diff(want, headerList(&req.Header)); diff != "" {
		t.Errorf("request headers (-want +got):\n%s", diff)
	}
	if string(req.Authority) != "a.internal" {
		t.Errorf("authority %q, want the cluster's host_rewrite_literal", req.Authority)
	}
	resp := &l7.Response{Status: 200}
	a.ApplyResponseHeaders(resp, req, testDown)
	if diff := cmp.Diff([]string{"x-cluster=a", "x-resp-level=top"}, headerList(&resp.Header)); diff != "" {
		t.Errorf("response headers (-want +got):\n%s", diff)
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in, want string // want: formatted with testDown and a request, or "error: ..."
	}{
		{"plain", "plain"},
		{"", ""},
		{"50%%", "50%"},
		{"%PROTOCOL%", "HTTP/1.1"},
		{"%DOWNSTREAM_LOCAL_ADDRESS%", "127.0.22.1:15008"},
		{"%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "127.0.22.1"},
		{"[%REQ(:METHOD)%]", "[GET]"},
		{"%REQ(:authority)%", "svc.local"},
		{"%REQ(X-A)%", "first"},
		{"%REQ(x-a):2%", "fi"},
		{"%REQ(missing?x-a)%", "first"},
		{"%REQ(x-a)", "error: format \"%REQ(x-a)\" at position 0: unterminated %REQ"},
		{"%REQ(x-a", "error: format \"%REQ(x-a\" at position 0: unterminated arguments of %REQ"},
		{"%PROTOCOL(x)%", "error: format \"%PROTOCOL(x)%\" at position 0: %PROTOCOL takes no arguments"},
		{"%REQ(x):0%", "error: format \"%REQ(x):0%\" at position 0: invalid length in %REQ: \"0\""},
		{"%UPSTREAM_HOST%", "error: format \"%UPSTREAM_HOST%\" at position 0: unsupported formatter %UPSTREAM_HOST%"},
	}
	req := newReq("GET", "svc.local", "/", "x-a: first", "x-a: second")
	for _, tt := range tests {
		f, err := parseFormat(tt.in)
		got := ""
		if err != nil {
			got = "error: " + err.Error()
			if len(got) > len(tt.want) {
				got = got[:len(tt.want)]
			}
		} else {
			got = string(f.appendTo(nil, &fmtCtx{req: req, down: testDown}))
		}
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A picked cluster's host rewrite comes right after its own header
// mutations, before the route's, which see the new :authority.
func TestClusterHostBeforeRouteHeaders(t *testing.T) {
	tbl := mustCompile(t, `
virtualHosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /}
    requestHeadersToAdd: [{header: {key: x-seen-host, value: "%REQ(:authority)%"}}]
    route:
      hostRewriteLiteral: route.host
      weightedClusters: {clusters: [{name: a, weight: 1, hostRewriteLiteral: cluster.host}]}
`)
	req := newReq("GET", "orig", "/")
	tbl.Match(req).Pick(0).Finalize(req, testDown, false)
	if v, _ := req.Header.Get("x-seen-host"); string(v) != "cluster.host" || string(req.Authority) != "route.host" {
		t.Errorf("x-seen-host %q, authority %q; want cluster.host then route.host", v, req.Authority)
	}
}

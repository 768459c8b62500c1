package route

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

func exactHeader(name, value string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}}}
}

func TestHeaderMatchDubboAndTriple(t *testing.T) {
	dubbo := &l7.Request{Proto: l7.Dubbo, Method: "hello", Path: []byte("/com.example.Greeter/hello")}
	dubbo.Header.Add(":dubbo-version", "2.0.2")
	dubbo.Header.Add(":dubbo-service-version", "2.0.0")
	dubbo.Header.Add(":dubbo-group", "canary")
	dubbo.Header.Add("x-user", "bob")
	triple := &l7.Request{Proto: l7.HTTP2, Method: "POST", Path: []byte("/com.example.Greeter/hello")}
	triple.Header.Add("content-type", "application/grpc+proto")
	triple.Header.Add("tri-service-version", "2.0.0")
	triple.Header.Add("tri-service-group", "canary")
	triple.Header.Add("x-user", "bob")
	plain := &l7.Request{Proto: l7.HTTP11, Method: "GET", Path: []byte("/")}
	plain.Header.Add(":dubbo-group", "canary") // never in an HTTP header list; read as Triple's

	cases := []struct {
		name                 string
		match                []*routev3.HeaderMatcher
		dubbo, triple, plain bool
	}{
		{"service version", []*routev3.HeaderMatcher{exactHeader(":dubbo-service-version", "2.0.0")}, true, true, false},
		{"group", []*routev3.HeaderMatcher{exactHeader(":dubbo-group", "canary")}, true, true, false},
		{"protocol version, Dubbo 2 only", []*routev3.HeaderMatcher{exactHeader(":dubbo-version", "2.0.2")}, true, false, false},
		{"an attachment", []*routev3.HeaderMatcher{exactHeader("x-user", "bob")}, true, true, false},
		{"method and path", []*routev3.HeaderMatcher{exactHeader(":method", "hello"), exactHeader(":path", "/com.example.Greeter/hello")}, true, false, false},
		{"none", nil, true, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := CompileHeaderMatch(c.match, "headers")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []struct {
				req  *l7.Request
				want bool
			}{{dubbo, c.dubbo}, {triple, c.triple}, {plain, c.plain}} {
				if got := m.Matches(r.req); got != r.want {
					t.Errorf("%v request: match %v, want %v", r.req.Proto, got, r.want)
				}
			}
		})
	}
	m, _ := CompileHeaderMatch([]*routev3.HeaderMatcher{exactHeader(":dubbo-group", "canary"), exactHeader("x-user", "bob")}, "headers")
	if n := testing.AllocsPerRun(100, func() { m.Matches(dubbo) }); n != 0 {
		t.Fatalf("Matches allocates %v times", n)
	}
	if _, err := CompileHeaderMatch([]*routev3.HeaderMatcher{{}}, "headers"); err == nil || err.Error() != "headers[0].name: required" {
		t.Fatalf("a matcher without a name: %v", err)
	}
}

func TestStringMatch(t *testing.T) {
	m, err := CompileStringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "say"}, IgnoreCase: true})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match([]byte("SayHello")) || m.Match([]byte("hello")) {
		t.Fatal("prefix, ignoring case")
	}
	if _, err := CompileStringMatch(&matcherv3.StringMatcher{}); err == nil {
		t.Fatal("an empty matcher compiled")
	}
}

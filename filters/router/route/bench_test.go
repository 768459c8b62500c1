package route

import (
	"fmt"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// typicalHeaders are the fields of a typical proxied request.
var typicalHeaders = []string{
	"user-agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
	"accept: text/html,application/xhtml+xml",
	"accept-encoding: gzip, deflate, br",
	"accept-language: en-US,en;q=0.5",
	"x-request-id: 9f0c7c1e-1c1b-4c55-8f0a-0d4b1ad2b7e3",
	"x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7",
	"cookie: session=abc; theme=dark",
	"x-forwarded-proto: http",
}

// table1000 has 1,000 routes cycling through prefix, exact path, prefix
// plus header, and regex matchers.
func table1000(tb testing.TB) *Table {
	vh := &routev3.VirtualHost{Name: "vh", Domains: []string{"*"}}
	for i := range 1000 {
		m := &routev3.RouteMatch{}
		switch i % 4 {
		case 0:
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/svc%d/", i)}
		case 1:
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: fmt.Sprintf("/svc%d/exact", i)}
		case 2:
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/svc%d", i)}
			m.Headers = []*routev3.HeaderMatcher{{Name: "x-tenant", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: fmt.Sprintf("t%d", i)}}}}}
		case 3:
			m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: fmt.Sprintf("/svc%d/[0-9]+", i)}}
		}
		vh.Routes = append(vh.Routes, &routev3.Route{
			Name:   fmt.Sprintf("r%d", i+1),
			Match:  m,
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: fmt.Sprintf("c%d", i)}}},
		})
	}
	t, err := Compile(&routev3.RouteConfiguration{Name: "big", VirtualHosts: []*routev3.VirtualHost{vh}}, CompileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func benchMatch(b *testing.B, t *Table, req *l7.Request, want string) {
	if r := t.Match(req); r == nil || r.Name() != want {
		b.Fatalf("matched %v, want %s", r, want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t.Match(req)
	}
}

func BenchmarkMatch1000Routes(b *testing.B) {
	t := table1000(b)
	b.Run("last", func(b *testing.B) {
		benchMatch(b, t, newReq("GET", "svc.local", "/svc999/123?x=1", typicalHeaders...), "r1000")
	})
	b.Run("first", func(b *testing.B) {
		benchMatch(b, t, newReq("GET", "svc.local", "/svc0/x", typicalHeaders...), "r1")
	})
}

func BenchmarkMatchIstiod(b *testing.B) {
	t := compileIstiod(b, loadIstiodRoutes(b)[0])
	const host = "reviews.mesh.local:9080"
	b.Run("jason", func(b *testing.B) {
		benchMatch(b, t, newReq("GET", host, "/reviews/1", append(typicalHeaders, "end-user: jason")...), "")
	})
	b.Run("api", func(b *testing.B) {
		benchMatch(b, t, newReq("GET", host, "/api/v1/reviews", typicalHeaders...), "")
	})
	b.Run("default", func(b *testing.B) {
		benchMatch(b, t, newReq("GET", host, "/reviews/1", typicalHeaders...), "")
	})
}

func BenchmarkApplyHeaders(b *testing.B) {
	t := mustCompile(b, headersConfig)
	req := newReq("GET", "h", "/r", typicalHeaders...)
	r := t.Match(req)
	resp := &l7.Response{Status: 200}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req.Header.Reset()
		req.Header.Add("x-src", "source")
		r.ApplyRequestHeaders(req, testDown)
		resp.Header.Reset()
		r.ApplyResponseHeaders(resp, req, testDown)
	}
}

func BenchmarkRewritePath(b *testing.B) {
	t := mustCompile(b, rewriteConfig)
	for _, c := range []struct{ name, path string }{
		{"prefix", "/api/users/42?expand=true"},
		{"regex", "/users/ann/posts/42"},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := newReq("GET", "h", c.path)
			r := t.Match(req)
			orig := []byte(c.path)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				req.SetPath(orig)
				r.RewritePath(req, false)
			}
		})
	}
}

func BenchmarkHash(b *testing.B) {
	t := mustCompile(b, `
virtualHosts:
- {name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c, hashPolicy: [{header: {headerName: x-request-id}}, {connectionProperties: {sourceIp: true}}]}}]}
`)
	req := newReq("GET", "h", "/", typicalHeaders...)
	r := t.Match(req)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Hash(req, testDown)
	}
}

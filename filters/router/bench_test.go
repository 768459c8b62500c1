package router

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/example/greeting"
	"github.com/gowaypoint/waypoint/filters/fault"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// staticUpstream answers every request with one reused response.
type staticUpstream struct{ resp l7.Response }

func (u *staticUpstream) RoundTrip(ctx context.Context, req *filters.UpstreamRequest) (*l7.Response, error) {
	u.resp.Status = 200
	return &u.resp, nil
}

// headerFilter sets a request header and a response header.
type headerFilter struct{}

func (headerFilter) OnRequest(s *filters.Stream) filters.Status {
	s.Request.Header.Set("x-through", "waypoint")
	return filters.Continue
}

func (headerFilter) OnResponse(s *filters.Stream) filters.Status {
	if s.Response != nil {
		s.Response.Header.Set("x-seen", "1")
	}
	return filters.Continue
}

func mustFilter(b *testing.B, name, typeURL string, cfg any) filters.Filter {
	f, err := filters.Lookup(name, typeURL)
	if err != nil {
		b.Fatal(err)
	}
	built, err := f.New(filters.BuildContext{}, nil)
	if cfg != nil {
		st, _ := structpb.NewStruct(cfg.(map[string]any))
		built, err = f.New(filters.BuildContext{}, st)
	}
	if err != nil {
		b.Fatal(err)
	}
	return built
}

// BenchmarkChainFiveFilters is one request through a chain of five
// filters: the fault filter (no fault for this route), the example
// greeting filter, two header filters, and the router, which matches the
// route, applies its header mutations and gets a response from a static
// upstream.
func BenchmarkChainFiveFilters(b *testing.B) {
	tb := table(b, basic)
	chain := filters.NewChain(mustFilter(b, Name, TypeURL, nil).(filters.Terminal),
		mustFilter(b, fault.Name, fault.TypeURL, nil),
		mustFilter(b, greeting.Name, greeting.TypeURL, map[string]any{"header": "x-caller"}),
		headerFilter{}, headerFilter{},
	)
	up := &staticUpstream{}
	down := &filters.Downstream{Peer: spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "client"}}
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/api/items")}
	var s filters.Stream
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req.Header.Reset()
		req.Path = append(req.Path[:0], "/api/items"...)
		s.Init(context.Background(), req, down, tb)
		s.Upstream = up
		chain.Run(&s)
		if s.Response == nil {
			b.Fatalf("no response: %+v", s.Local)
		}
		s.End()
		up.resp.Header.Reset()
	}
}

// BenchmarkMirror is one request through the router alone. "none" is a
// route without request_mirror_policies: it must allocate what a route
// did before mirroring existed (the try). "never" has a policy whose
// runtime_fraction is 0: the policy is checked and nothing more.
func BenchmarkMirror(b *testing.B) {
	r, err := factory{}.New(filters.BuildContext{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	chain := filters.NewChain(r)
	up := &staticUpstream{}
	down := &filters.Downstream{}
	tb := mirrorTable()
	for _, c := range []struct{ name, path string }{{"none", "/none"}, {"never", "/never"}} {
		b.Run(c.name, func(b *testing.B) {
			req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte(c.path)}
			var s filters.Stream
			b.ReportAllocs()
			for b.Loop() {
				req.Header.Reset()
				req.Path = append(req.Path[:0], c.path...)
				s.Init(context.Background(), req, down, tb)
				s.Upstream = up
				chain.Run(&s)
				if s.Response == nil {
					b.Fatalf("no response: %+v", s.Local)
				}
				s.End()
			}
		})
	}
}

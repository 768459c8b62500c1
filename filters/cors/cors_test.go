package cors

import (
	"context"
	"testing"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type route struct{ cfg any }

func (r route) Name() string                 { return "r" }
func (r route) FilterConfig(name string) any { return map[string]any{Name: r.cfg}[name] }

type resolver struct{ r filters.Route }

func (r resolver) Resolve(*filters.Stream) filters.Route { return r.r }

// The policy istiod writes for a VirtualService corsPolicy with allowOrigins exact
// https://shop.example, methods GET and POST, header x-token, maxAge 1h, exposeHeaders x-id.
func shopPolicy(forward *wrapperspb.BoolValue) *corsv3.CorsPolicy {
	return &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://shop.example"}}},
		AllowMethods:           "GET,POST", AllowHeaders: "x-token", MaxAge: "3600", ExposeHeaders: "x-id",
		ForwardNotMatchingPreflights: forward,
	}
}

func TestCORS(t *testing.T) {
	preflight := map[string]string{"origin": "https://shop.example", "access-control-request-method": "POST"}
	other := map[string]string{"origin": "https://evil.example", "access-control-request-method": "POST"}
	cases := []struct {
		name     string
		policy   *corsv3.CorsPolicy
		method   string
		headers  map[string]string
		answered bool              // by the filter, 200
		want     map[string]string // headers of the local reply or of the response
	}{
		{"preflight from an allowed origin is answered", shopPolicy(nil), "OPTIONS", preflight, true,
			map[string]string{"access-control-allow-origin": "https://shop.example", "access-control-allow-methods": "GET,POST",
				"access-control-allow-headers": "x-token", "access-control-max-age": "3600"}},
		{"preflight from another origin goes upstream by default", shopPolicy(nil), "OPTIONS", other, false,
			map[string]string{"access-control-allow-origin": ""}},
		{"... and when forward_not_matching_preflights is true", shopPolicy(wrapperspb.Bool(true)), "OPTIONS", other, false, nil},
		{"... and is answered without CORS headers when it is false", shopPolicy(wrapperspb.Bool(false)), "OPTIONS", other, true,
			map[string]string{"access-control-allow-origin": "", "access-control-allow-methods": ""}},
		{"an OPTIONS that is not a preflight goes upstream", shopPolicy(wrapperspb.Bool(false)), "OPTIONS",
			map[string]string{"origin": "https://evil.example"}, false, nil},
		{"a simple request from an allowed origin gets the response headers", shopPolicy(nil), "GET",
			map[string]string{"origin": "https://shop.example"}, false,
			map[string]string{"access-control-allow-origin": "https://shop.example", "access-control-expose-headers": "x-id"}},
		{"a simple request from another origin is untouched", shopPolicy(nil), "GET",
			map[string]string{"origin": "https://evil.example"}, false, map[string]string{"access-control-allow-origin": ""}},
	}
	f, err := factory{}.New(filters.BuildContext{}, &corsv3.Cors{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pc, err := factory{}.ParsePerRoute(filters.BuildContext{}, c.policy)
			if err != nil {
				t.Fatal(err)
			}
			req := &l7.Request{Method: c.method, Path: []byte("/api")}
			for k, v := range c.headers {
				req.Header.Add(k, v)
			}
			s := filters.NewStream(context.Background(), req, &filters.Downstream{}, resolver{route{pc}})
			st := f.OnRequest(s)
			if got := st == filters.Stop; got != c.answered {
				t.Fatalf("answered by the filter: %v, want %v", got, c.answered)
			}
			var h *l7.Header
			if c.answered {
				if s.Local == nil || s.Local.Status != 200 {
					t.Fatalf("local reply %+v, want 200", s.Local)
				}
				h = &s.Local.Header
			} else {
				s.Response = &l7.Response{Status: 200}
				f.OnResponse(s)
				h = &s.Response.Header
			}
			for k, v := range c.want {
				got, _ := h.Get(k)
				if string(got) != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestCORSConfigRefused(t *testing.T) {
	p := shopPolicy(nil)
	p.AllowPrivateNetworkAccess = wrapperspb.Bool(true)
	if _, err := (factory{}).ParsePerRoute(filters.BuildContext{}, p); err == nil {
		t.Errorf("allow_private_network_access taken, but it is not implemented")
	}
}

package rbac

import (
	"context"
	"testing"

	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// benchStream runs one request through istiod's two reviews RBAC filters
// per op, on a reused stream as the connection manager reuses it.
func benchStream(b *testing.B, down *filters.Downstream, method, path string, wantAllowed bool) {
	fs := reviewsChain(b)
	req := &l7.Request{Method: method, Path: []byte(path), Authority: []byte("reviews.mesh.local:9080")}
	req.Header.Add("user-agent", "bench")
	req.Header.Add("x-request-id", "5bd3c6a4-8f0e-4a86-9b1f-3c1f1e3e2a10")
	var s filters.Stream
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Init(ctx, req, down, nil)
		allowed := true
		for _, f := range fs {
			if f.OnRequest(&s) == filters.Stop {
				allowed = false
				break
			}
		}
		if allowed != wantAllowed {
			b.Fatalf("allowed %v, want %v", allowed, wantAllowed)
		}
	}
}

func BenchmarkRBACAllowed(b *testing.B) {
	benchStream(b, identity("default", "productpage"), "GET", "/reviews/1?x=y", true)
}

func BenchmarkRBACDeniedByAllow(b *testing.B) {
	benchStream(b, identity("default", "ratings"), "GET", "/reviews/1", false)
}

func BenchmarkRBACRegexPrincipal(b *testing.B) {
	benchStream(b, identity("monitoring", "prometheus"), "GET", "/metrics", true)
}

// BenchmarkRBACShadowMetadata: Istio's CUSTOM shadow rules on a request
// they match, leaving the policy in the stream's dynamic metadata, on a
// reused stream: no allocation.
func BenchmarkRBACShadowMetadata(b *testing.B) {
	pb := &httprbacv3.RBAC{ShadowRules: rbacFrom(b, `{"action":"DENY","policies":{"istio-ext-authz-p":{"permissions":[{"urlPath":{"path":{"prefix":"/ext/"}}}],"principals":[{"any":true}]}}}`),
		ShadowRulesStatPrefix: "istio_ext_authz_"}
	f, err := factory{}.New(testContext(), pb)
	if err != nil {
		b.Fatal(err)
	}
	req := &l7.Request{Method: "GET", Path: []byte("/ext/a"), Authority: []byte("reviews.mesh.local:9080")}
	down := identity("default", "productpage")
	var s filters.Stream
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Init(ctx, req, down, nil)
		if f.OnRequest(&s) != filters.Continue {
			b.Fatal("stopped")
		}
		if _, ok := s.MetadataString(Name, "istio_ext_authz_shadow_effective_policy_id"); !ok {
			b.Fatal("no metadata")
		}
	}
}

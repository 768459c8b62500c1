package rbac

import (
	"context"
	"testing"

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

package extauthz

import (
	"context"
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// benchNotChecked runs requests the filter does not check through it, on a
// reused stream: a request Istio's shadow rules did not select, and a
// route with the filter disabled. Neither allocates.
func benchNotChecked(b *testing.B, pr any) {
	f := build(b, strings.Replace(grpcConfig, `"transportApiVersion":"V3"`, `"transportApiVersion":"V3","filterEnabledMetadata":{"filter":"envoy.filters.http.rbac",
		"path":[{"key":"istio_ext_authz_shadow_effective_policy_id"}],"value":{"stringMatch":{"prefix":"istio-ext-authz"}}}`, 1))
	req := &l7.Request{Method: "GET", Path: []byte("/other"), Authority: []byte("reviews:9080")}
	var res filters.RouteResolver
	if pr != nil {
		res = &routeConf{pr}
	}
	var s filters.Stream
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Init(ctx, req, nil, res)
		if f.OnRequest(&s) != filters.Continue {
			b.Fatal("stopped")
		}
	}
}

func BenchmarkExtAuthzNotSelected(b *testing.B) { benchNotChecked(b, nil) }

func BenchmarkExtAuthzRouteDisabled(b *testing.B) {
	pr, err := factory{}.ParsePerRoute(filters.BuildContext{}, &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}})
	if err != nil {
		b.Fatal(err)
	}
	benchNotChecked(b, pr)
}

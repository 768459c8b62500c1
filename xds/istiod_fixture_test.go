package xds

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// istiodReviewsDir is a copy of ../../shared/istiod/reviews: the LDS, CDS
// and EDS istiod (1.31 line) sends a waypoint for the reviews service.
const istiodReviewsDir = "testdata/istiod/reviews"

func TestIstiodFixtureProbe(t *testing.T) {
	r, err := LoadResourceDir(istiodReviewsDir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = BuildResources("1", r)
	t.Logf("whole: %v", err)
	stripNotYetImplemented(t, r)
	_, err = BuildResources("1", r)
	t.Logf("stripped: %v", err)
}

// stripNotYetImplemented removes, in place, what istiod sends that
// belongs to issue 6 (RBAC, tracing) and is refused until it lands.
func stripNotYetImplemented(t testing.TB, r *Resources) {
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			var keep []*listenerv3.Filter
			for _, f := range fc.GetFilters() {
				if strings.Contains(f.GetTypedConfig().GetTypeUrl(), "network.rbac") {
					continue
				}
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().MessageName() == nameOf(&hcm) {
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						t.Fatal(err)
					}
					hcm.Tracing = nil
					var hf []*hcmv3.HttpFilter
					for _, h := range hcm.GetHttpFilters() {
						if !strings.Contains(h.GetTypedConfig().GetTypeUrl(), "http.rbac") {
							hf = append(hf, h)
						}
					}
					hcm.HttpFilters = hf
					a, err := anypb.New(&hcm)
					if err != nil {
						t.Fatal(err)
					}
					f = proto.Clone(f).(*listenerv3.Filter)
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
				}
				keep = append(keep, f)
			}
			fc.Filters = keep
		}
	}
}

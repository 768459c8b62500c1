package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/google/go-cmp/cmp"
)

// RDSOf reads the route specifier off the wire: it finds what decoding
// the whole connection manager finds (the oneof's last field on the wire
// wins, a field repeated is merged), and nothing in another message or in
// bytes that do not decode.
func TestRDSOf(t *testing.T) {
	wire := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rds := &hcmv3.HttpConnectionManager{StatPrefix: "a", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
		RouteConfigName: "r1", ConfigSource: &corev3.ConfigSource{InitialFetchTimeout: durationpb.New(3e9),
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}}
	inline := &hcmv3.HttpConnectionManager{StatPrefix: "b", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
		RouteConfig: &routev3.RouteConfiguration{Name: "inline"}}}
	emptyRDS := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{}}}
	otherName := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r2"}}}
	for _, tc := range []struct {
		name  string
		value []byte
		url   string
	}{
		{"rds", wire(rds), hcmTypeURL},
		{"inline", wire(inline), hcmTypeURL},
		{"no route specifier", wire(&hcmv3.HttpConnectionManager{StatPrefix: "c"}), hcmTypeURL},
		{"empty rds", wire(emptyRDS), hcmTypeURL},
		{"rds then inline", append(wire(rds), wire(inline)...), hcmTypeURL},
		{"inline then rds", append(wire(inline), wire(rds)...), hcmTypeURL},
		{"rds twice: merged", append(wire(rds), wire(otherName)...), hcmTypeURL},
		{"truncated", wire(rds)[:10], hcmTypeURL},
		{"another message", wire(rds), "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &anypb.Any{TypeUrl: tc.url, Value: tc.value}
			var want *hcmv3.Rds
			var hcm hcmv3.HttpConnectionManager
			if a.MessageIs(&hcm) && a.UnmarshalTo(&hcm) == nil {
				want = hcm.GetRds()
			}
			got := RDSOf(a)
			if (got == nil) != (want == nil) {
				t.Fatalf("RDSOf = %v, decoding the whole finds %v", got, want)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("RDSOf differs from decoding the whole (-want +got)\n%s", diff)
			}
		})
	}
	a := &anypb.Any{TypeUrl: hcmTypeURL, Value: wire(inline)}
	if n := testing.AllocsPerRun(100, func() { RDSOf(a) }); n != 0 {
		t.Errorf("RDSOf of an inline route config: %v allocations", n)
	}
}

package xds

import (
	"net/netip"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// istiodInboundVIP is an inbound-vip cluster as istiod writes it for a waypoint: EDS, reached
// through internal_upstream (raw_buffer inside) to connect_originate.
const istiodInboundVIP = `
name: inbound-vip|80|http|inline.example.internal
type: EDS
eds_cluster_config: {eds_config: {ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}, service_name: inbound-vip|80|http|inline.example.internal}
transport_socket:
  name: internal_upstream
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport
    passthrough_metadata:
    - {kind: {host: {}}, name: envoy.filters.listener.original_dst}
    - {kind: {cluster: {}}, name: istio}
    - {kind: {host: {}}, name: istio}
    transport_socket: {name: raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
`

// TestFoldSocketEndpointsBehindInternalUpstream: the endpoints istiod gives an inbound-vip
// cluster for a ServiceEntry's inline endpoint are socket addresses (no ambient workload, no
// HBONE): Envoy reaches them with internal_upstream's inner raw_buffer, in plain TCP.
func TestFoldSocketEndpointsBehindInternalUpstream(t *testing.T) {
	js, err := yaml.YAMLToJSON([]byte(istiodInboundVIP))
	if err != nil {
		t.Fatal(err)
	}
	var pb clusterv3.Cluster
	if err := protojson.Unmarshal(js, &pb); err != nil {
		t.Fatal(err)
	}
	inline := Endpoint{Address: netip.MustParseAddrPort("10.0.0.3:8082"), Weight: 1}
	tests := []struct {
		name          string
		endpoints     []Endpoint
		wantTransport Transport
		wantEndpoints int
	}{
		{name: "no endpoints yet", wantTransport: TransportHBONE},
		{name: "an inline ServiceEntry endpoint", endpoints: []Endpoint{inline}, wantTransport: TransportPlaintext, wantEndpoints: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeCluster(&pb, map[string]assignment{pb.GetName(): {endpoints: tt.endpoints}})
			if err != nil {
				t.Fatal(err)
			}
			s := &Snapshot{Clusters: map[string]*Cluster{c.Name: c}, listeners: map[string]*Listener{}}
			if err := s.foldCluster(c); err != nil {
				t.Fatal(err)
			}
			if c.Transport != tt.wantTransport || len(c.Endpoints) != tt.wantEndpoints {
				t.Errorf("transport %v with %d endpoints, want %v with %d", c.Transport, len(c.Endpoints), tt.wantTransport, tt.wantEndpoints)
			}
			if tt.wantEndpoints > 0 && c.Endpoints[0].Address != inline.Address {
				t.Errorf("endpoint %v, want %v", c.Endpoints[0].Address, inline.Address)
			}
		})
	}
}

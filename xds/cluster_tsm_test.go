package xds

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"
)

// istiodWaypointOutbound is the outbound cluster a live istiod writes for a waypoint when a
// route of a service the waypoint owns names another service (an HTTPRoute's backendRef):
// its transport_socket_matches are hbone (internal_upstream to connect_originate), the
// sidecar mTLS of tlsMode-istio (TLS 1.2, ALPN istio, match_subject_alt_names) and plaintext.
const istiodWaypointOutbound = `
name: outbound|9080||reviews-v1.ns.svc.cluster.local
type: EDS
eds_cluster_config: {eds_config: {ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}, service_name: outbound|9080||reviews-v1.ns.svc.cluster.local}
connect_timeout: 10s
lb_policy: LEAST_REQUEST
transport_socket_matches:
- name: hbone
  match: {tunnel: http}
  transport_socket:
    name: envoy.transport_sockets.internal_upstream
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport
      passthrough_metadata:
      - {kind: {host: {}}, name: envoy.filters.listener.original_dst}
      - {kind: {cluster: {}}, name: istio}
      - {kind: {host: {}}, name: istio}
      transport_socket: {name: envoy.transport_sockets.raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
- name: tlsMode-istio
  match: {tlsMode: istio}
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      common_tls_context:
        tls_params: {tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}
        tls_certificate_sds_secret_configs: [{name: default}]
        combined_validation_context:
          default_validation_context:
            match_subject_alt_names: [{exact: spiffe://cluster.local/ns/ns/sa/bookinfo-reviews}]
          validation_context_sds_secret_config: {name: ROOTCA}
        alpn_protocols: [istio-peer-exchange, istio]
      sni: outbound_.9080_._.reviews-v1.ns.svc.cluster.local
- name: tlsMode-disabled
  match: {}
  transport_socket: {name: envoy.transport_sockets.raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
`

func TestDecodeTransportSocketMatches(t *testing.T) {
	js, err := yaml.YAMLToJSON([]byte(istiodWaypointOutbound))
	if err != nil {
		t.Fatal(err)
	}
	var pb clusterv3.Cluster
	if err := protojson.Unmarshal(js, &pb); err != nil {
		t.Fatal(err)
	}
	endpoint := func(match map[string]any) Endpoint {
		ep := Endpoint{Address: netip.MustParseAddrPort("10.0.0.1:9080"), Weight: 1}
		if match != nil {
			s, err := structpb.NewStruct(match)
			if err != nil {
				t.Fatal(err)
			}
			ep.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{transportSocketMatchNamespace: s}}
		}
		return ep
	}
	hbone := map[string]any{"tunnel": "http"}
	sidecar := map[string]any{"tlsMode": "istio"}
	tests := []struct {
		name      string
		endpoints []Endpoint
		want      Transport
		err       string
	}{
		{name: "ambient endpoints pick hbone", endpoints: []Endpoint{endpoint(hbone), endpoint(hbone)}, want: transportInternal},
		{name: "no endpoints yet"},
		{name: "an endpoint with no metadata picks plaintext", endpoints: []Endpoint{endpoint(nil)}, want: TransportPlaintext},
		{name: "a sidecar endpoint picks the mTLS the waypoint cannot serve", endpoints: []Endpoint{endpoint(sidecar)},
			err: `endpoint 10.0.0.1:9080 picks transport_socket_matches[1] ("tlsMode-istio") of cluster "outbound|9080||reviews-v1.ns.svc.cluster.local": transport_socket_matches[1].transport_socket.typed_config.sni: not supported on the HBONE context`},
		{name: "endpoints picking different transports", endpoints: []Endpoint{endpoint(hbone), endpoint(nil)},
			err: "one transport per cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeCluster(&pb, map[string]assignment{pb.GetName(): {endpoints: tt.endpoints}})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.endpoints) > 0 && c.Transport != tt.want {
				t.Errorf("transport %v, want %v", c.Transport, tt.want)
			}
		})
	}
}

// TestBuildNamesTheEndpointsOfAnUnservableTransport: Build refuses the ClusterLoadAssignment
// whose endpoint picks a transport the waypoint cannot serve (the cluster alone is fine), so
// that the xDS client NACKs the EDS push that brought it.
func TestBuildNamesTheEndpointsOfAnUnservableTransport(t *testing.T) {
	js, err := yaml.YAMLToJSON([]byte(istiodWaypointOutbound))
	if err != nil {
		t.Fatal(err)
	}
	var pb clusterv3.Cluster
	if err := protojson.Unmarshal(js, &pb); err != nil {
		t.Fatal(err)
	}
	name := pb.GetName()
	for _, tt := range []struct {
		name     string
		tlsMode  string
		wantKind string // "" for no error
	}{
		{name: "hbone endpoint", tlsMode: ""},
		{name: "sidecar endpoint", tlsMode: "istio", wantKind: kindEndpoints},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cla(name, "10.0.0.1:9080")
			md := map[string]any{"tunnel": "http"}
			if tt.tlsMode != "" {
				md = map[string]any{"tlsMode": tt.tlsMode}
			}
			s, _ := structpb.NewStruct(md)
			c.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{transportSocketMatchNamespace: s}}
			_, err := Build("v", nil, []*clusterv3.Cluster{&pb}, []*endpointv3.ClusterLoadAssignment{c})
			var re *ResourceError
			switch {
			case tt.wantKind == "":
				if errors.As(err, &re) && re.Kind == kindCluster {
					t.Fatalf("the cluster is refused: %v", err)
				}
			case !errors.As(err, &re) || re.Kind != tt.wantKind || re.Name != name:
				t.Fatalf("error %v, want a %s %q", err, tt.wantKind, name)
			}
		})
	}
}

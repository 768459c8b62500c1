package xds

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A bootstrap with dynamic_resources as Istio's agent writes one for Envoy,
// aimed at istiod itself (no agent in between): TLS with istiod's root and
// name, the waypoint's certificate, HTTP/2.
const istiodBootstrap = `
node: {id: "waypoint~10.0.0.5~waypoint-a.default~default.svc.cluster.local", cluster: Kubernetes}
dynamic_resources:
  lds_config: {ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}
  cds_config: {ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}
  ads_config:
    api_type: GRPC
    set_node_on_first_message_only: true
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}, initial_metadata: [{key: x-extra, value: "1"}]}]
static_resources:
  clusters:
  - name: xds-grpc
    type: STRICT_DNS
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: istiod.istio-system.svc, port_value: 15012}}}}]}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: istiod.istio-system.svc
        common_tls_context:
          alpn_protocols: [h2]
          tls_certificate_sds_secret_configs: [{name: default}]
          validation_context:
            trusted_ca: {filename: /var/run/secrets/istio/root-cert.pem}
            match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: istiod.istio-system.svc}}]
`

func TestDynamicResources(t *testing.T) {
	b, err := ParseBootstrap([]byte(istiodBootstrap), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &DynamicResources{
		ControlPlane: ControlPlane{
			Cluster: "xds-grpc", Target: "dns:///istiod.istio-system.svc:15012", ConnectTimeout: time.Second,
			TLS: &ControlPlaneTLS{ServerName: "istiod.istio-system.svc", RootCAFile: "/var/run/secrets/istio/root-cert.pem",
				SANExact: []string{"istiod.istio-system.svc"}, ClientCertificate: true},
			InitialMetadata: [][2]string{{"x-extra", "1"}},
		},
	}
	if diff := cmp.Diff(want, b.Dynamic); diff != "" {
		t.Errorf("dynamic resources (-want +got):\n%s", diff)
	}
	if b.Snapshot != nil || b.Raw.GetNode().GetId() == "" {
		t.Errorf("snapshot %v, node %v: want no snapshot and the node kept", b.Snapshot, b.Raw.GetNode())
	}

	plain, err := ParseBootstrap([]byte(`
dynamic_resources:
  lds_config: {ads: {}, resource_api_version: V3}
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 20s}
  ads_config: {api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: cp}}]}
static_resources:
  clusters:
  - name: cp
    load_assignment: {cluster_name: cp, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15010}}}}]}]}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want = &DynamicResources{Delta: true, InitialFetchTimeout: 20 * time.Second,
		ControlPlane: ControlPlane{Cluster: "cp", Target: "127.0.0.1:15010", ConnectTimeout: 5 * time.Second}}
	if diff := cmp.Diff(want, plain.Dynamic); diff != "" {
		t.Errorf("plaintext delta (-want +got):\n%s", diff)
	}
}

func TestDynamicResourcesRefused(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(istiodBootstrap, old) {
			t.Fatalf("no %q in the bootstrap", old)
		}
		return strings.Replace(istiodBootstrap, old, new, 1)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"path config source", edit("lds_config: {ads: {}, ", "lds_config: {path_config_source: {path: /x}, "),
			`test.yaml: dynamic_resources.lds_config.path_config_source: not supported yet`},
		{"REST api", edit("api_type: GRPC", "api_type: REST"),
			`test.yaml: dynamic_resources.ads_config.api_type: only GRPC and DELTA_GRPC are supported, got REST`},
		{"no such cluster", edit("cluster_name: xds-grpc}", "cluster_name: nope}"),
			`test.yaml: dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: no static cluster named "nope"`},
		{"google_grpc", edit("{envoy_grpc: {cluster_name: xds-grpc}, ", "{google_grpc: {target_uri: x, stat_prefix: s}, "),
			`test.yaml: dynamic_resources.ads_config.grpc_services[0].google_grpc: not supported yet`},
		{"no http2", edit("explicit_http_config: {http2_protocol_options: {}}", "explicit_http_config: {http_protocol_options: {}}"),
			`test.yaml: dynamic_resources: cluster "xds-grpc": typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http2_protocol_options: required: gRPC runs over HTTP/2`},
		{"another certificate", edit("[{name: default}]", "[{name: other}]"),
			`test.yaml: dynamic_resources: cluster "xds-grpc": transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs: want at most one, named "default" (the waypoint's own certificate)`},
		{"two endpoints", edit("port_value: 15012}}}}]", "port_value: 15012}}}}, {endpoint: {address: {socket_address: {address: b, port_value: 1}}}}]"),
			`test.yaml: dynamic_resources: cluster "xds-grpc": load_assignment: want exactly one endpoint, got 2`},
		{"circuit breakers", edit("connect_timeout: 1s", "connect_timeout: 1s\n    circuit_breakers: {thresholds: [{max_requests: 1}]}"),
			`test.yaml: dynamic_resources: cluster "xds-grpc": circuit_breakers: not supported yet`},
		{"static listener too", istiodBootstrap + "  listeners: [{name: x, address: {socket_address: {address: 127.0.0.1, port_value: 1}}}]\n",
			`test.yaml: static_resources: with dynamic_resources, only the control plane's cluster "xds-grpc" is supported (listeners and clusters come over ADS)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBootstrap([]byte(tc.yaml), "test.yaml")
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

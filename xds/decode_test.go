package xds

import (
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

func TestParseBootstrapDecodes(t *testing.T) {
	backend := &Cluster{
		Name:           "backend",
		ConnectTimeout: 5 * time.Second,
		Transport:      TransportHBONE,
		Endpoints:      []Endpoint{{Address: ap("10.0.0.1:8080"), Weight: 1}},
	}
	tcp := func(name string) *FilterChain {
		return &FilterChain{Name: name, TCPProxy: &TCPProxy{StatPrefix: "s", Cluster: "backend", IdleTimeout: time.Hour}}
	}
	identityMD := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"waypoint": {Fields: map[string]*structpb.Value{"identity": structpb.NewStringValue("spiffe://td/ns/default/sa/reviews")}},
	}}

	tests := []struct {
		name      string
		yaml      string
		listeners []*Listener         // compared when non-nil
		clusters  map[string]*Cluster // compared when non-nil
		admin     string
	}{
		{
			name: "classic match with default chain",
			yaml: doc("", []string{listenerOn("main", 8080,
				"default_filter_chain: "+tcpChain("fallback", "backend", ""),
				tcpChain("a", "backend", chainMatch(80, "10.0.0.0/8")),
				tcpChain("b", "backend", chainMatch(0)),
			)}, []string{backendCluster}),
			listeners: []*Listener{{
				Name:         "main",
				Address:      ap("127.0.0.1:8080"),
				FilterChains: []*FilterChain{tcp("a"), tcp("b")},
				DefaultChain: tcp("fallback"),
			}},
			clusters: map[string]*Cluster{"backend": backend},
		},
		{
			name: "matcher form on an internal listener",
			yaml: doc("", []string{`{name: main_internal, internal_listener: {}, traffic_direction: INBOUND,
  listener_filters: [{name: envoy.filters.listener.original_dst, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}}],
  use_original_dst: false,
  filter_chain_matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"9080": ` + action("svc") + `}}}},
  filter_chains: [` + tcpChain("svc", "backend", "") + `]}`}, []string{backendCluster}),
			listeners: []*Listener{{Name: "main_internal", Internal: true, TrafficDirection: corev3.TrafficDirection_INBOUND, FilterChains: []*FilterChain{tcp("svc")}}},
		},
		{
			name: "tcp_proxy idle_timeout 0s disables it",
			yaml: doc("", []string{listenerOn("main", 8080, "",
				`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: p, cluster: backend, idle_timeout: 0s}}]}`,
			)}, []string{backendCluster}),
			listeners: []*Listener{{
				Name: "main", Address: ap("127.0.0.1:8080"),
				FilterChains: []*FilterChain{{TCPProxy: &TCPProxy{StatPrefix: "p", Cluster: "backend"}}},
			}},
		},
		{
			name: "tcp_proxy hash_policy source_ip and max_downstream_connection_duration",
			yaml: doc("", []string{listenerOn("main", 8080, "",
				`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: p, cluster: backend, hash_policy: [{source_ip: {}}], max_downstream_connection_duration: 3600s}}]}`,
			)}, []string{backendCluster}),
			listeners: []*Listener{{
				Name: "main", Address: ap("127.0.0.1:8080"),
				FilterChains: []*FilterChain{{TCPProxy: &TCPProxy{StatPrefix: "p", Cluster: "backend", IdleTimeout: time.Hour, HashSourceIP: true, MaxDownstreamConnectionDuration: time.Hour}}},
			}},
		},
		{
			name: "plaintext cluster with policy, timeout and weights",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "echo", ""))}, []string{`{name: echo, alt_stat_name: echo-stats,
  connect_timeout: 2s, lb_policy: LEAST_REQUEST,
  metadata: {filter_metadata: {istio: {subset: v1}}},
  transport_socket: {name: envoy.transport_sockets.raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}},
  load_assignment: {cluster_name: echo, endpoints: [
    {locality: {zone: a}, load_balancing_weight: 2, lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 7001}}}, load_balancing_weight: 3},
      {endpoint: {address: {socket_address: {address: "::1", port_value: 7002}}}}]},
    {lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 7003}}}}]}]}}`}),
			clusters: map[string]*Cluster{"echo": {
				Name:           "echo",
				ConnectTimeout: 2 * time.Second,
				LBPolicy:       LBPolicyLeastRequest,
				Transport:      TransportPlaintext,
				Endpoints: []Endpoint{
					{Address: ap("127.0.0.1:7001"), Weight: 3, Locality: Locality{Zone: "a"}, LocalityWeight: 2},
					{Address: ap("[::1]:7002"), Weight: 1, Locality: Locality{Zone: "a"}, LocalityWeight: 2},
					{Address: ap("127.0.0.2:7003"), Weight: 1},
				},
				Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
					"istio": {Fields: map[string]*structpb.Value{"subset": structpb.NewStringValue("v1")}},
				}},
			}},
		},
		{
			name: "priorities, localities and overprovisioning",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "echo", ""))}, []string{`{name: echo,
  common_lb_config: {locality_weighted_lb_config: {}},
  transport_socket: {name: envoy.transport_sockets.raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}},
  load_assignment: {cluster_name: echo, policy: {overprovisioning_factor: 120}, endpoints: [
    {locality: {region: r1, zone: z1, sub_zone: s1}, load_balancing_weight: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 7001}}}}]},
    {locality: {region: r2}, load_balancing_weight: 1, priority: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 7001}}}}]},
    {locality: {region: r1, zone: z1, sub_zone: s1}, priority: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.3, port_value: 7001}}}}]}]}}`}),
			listeners: []*Listener{{
				Name: "main", Address: ap("127.0.0.1:8080"),
				FilterChains: []*FilterChain{{Name: "a", TCPProxy: &TCPProxy{StatPrefix: "s", Cluster: "echo", IdleTimeout: time.Hour}}},
			}},
			clusters: map[string]*Cluster{"echo": {
				Name:                   "echo",
				ConnectTimeout:         5 * time.Second,
				Transport:              TransportPlaintext,
				CommonLB:               &CommonLBConfig{HealthyPanicThreshold: DefaultPanicThreshold, LocalityWeighted: true},
				OverprovisioningFactor: 120,
				Endpoints: []Endpoint{
					{Address: ap("127.0.0.1:7001"), Weight: 1, Locality: Locality{"r1", "z1", "s1"}, LocalityWeight: 1},
					{Address: ap("127.0.0.2:7001"), Weight: 1, Priority: 1, Locality: Locality{Region: "r2"}, LocalityWeight: 1},
					{Address: ap("127.0.0.3:7001"), Weight: 1, Priority: 1, Locality: Locality{"r1", "z1", "s1"}},
				},
			}},
		},
		{
			name: "tls cluster with SAN matchers is HBONE",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "pods", ""))}, []string{`{name: pods, lb_policy: RING_HASH,
  load_assignment: {cluster_name: pods, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.9, port_value: 9080}}}}]}]},
  transport_socket: {name: tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext,
    common_tls_context: {
      tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3},
      alpn_protocols: [h2],
      tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}, resource_api_version: V3}}],
      combined_validation_context: {
        validation_context_sds_secret_config: {name: ROOTCA},
        default_validation_context: {match_typed_subject_alt_names: [
          {san_type: URI, matcher: {prefix: "spiffe://td/ns/default/sa/"}},
          {san_type: URI, matcher: {exact: "spiffe://td/ns/other/sa/reviews"}},
          {san_type: URI, matcher: {prefix: "spiffe://td/ns/x/"}}]}}}}}}`}),
			clusters: map[string]*Cluster{"pods": {
				Name:           "pods",
				ConnectTimeout: 5 * time.Second,
				LBPolicy:       LBPolicyRingHash,
				Transport:      TransportHBONE,
				Endpoints:      []Endpoint{{Address: ap("10.0.0.9:9080"), Weight: 1}},
				UpstreamTLS: UpstreamTLS{
					SANExact:    []string{"spiffe://td/ns/other/sa/reviews"},
					SANPrefixes: []string{"spiffe://td/ns/default/sa/", "spiffe://td/ns/x/"},
				},
			}},
		},
		{
			name: "endpoint identity from metadata",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "reviews", ""))}, []string{`{name: reviews,
  load_assignment: {cluster_name: reviews, endpoints: [{lb_endpoints: [
    {endpoint: {address: {socket_address: {address: 10.0.0.11, port_value: 9080}}},
     metadata: {filter_metadata: {waypoint: {identity: "spiffe://td/ns/default/sa/reviews"}}}}]}]}}`}),
			clusters: map[string]*Cluster{"reviews": {
				Name:           "reviews",
				ConnectTimeout: 5 * time.Second,
				Endpoints: []Endpoint{{
					Address:  ap("10.0.0.11:9080"),
					Weight:   1,
					Identity: spiffe.ID{TrustDomain: "td", Namespace: "default", ServiceAccount: "reviews"},
					Metadata: identityMD,
				}},
			}},
		},
		{
			name: "EDS cluster in a bootstrap has no endpoints",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "eds", ""))}, []string{
				`{name: eds, type: EDS, lb_policy: RANDOM, eds_cluster_config: {service_name: svc, eds_config: {ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}}}`}),
			clusters: map[string]*Cluster{"eds": {Name: "eds", ConnectTimeout: 5 * time.Second, LBPolicy: LBPolicyRandom}},
		},
		{
			name:  "node and admin address",
			yaml:  doc("node: {id: waypoint-a, cluster: waypoint}\nadmin: {address: {socket_address: {address: \"::1\", port_value: 15000}}}", []string{listenerOn("main", 0, "", tcpChain("a", "backend", ""))}, []string{backendCluster}),
			admin: "[::1]:15000",
			listeners: []*Listener{{
				Name: "main", Address: ap("127.0.0.1:0"), FilterChains: []*FilterChain{tcp("a")},
			}},
		},
		{
			name: "JSON",
			yaml: `{"staticResources": {"listeners": [{"name": "main", "address": {"socketAddress": {"address": "127.0.0.1", "portValue": 8080}},
			  "filterChains": [{"name": "a", "filters": [{"name": "envoy.filters.network.tcp_proxy", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "statPrefix": "s", "cluster": "backend"}}]}]}],
			  "clusters": [{"name": "backend", "loadAssignment": {"clusterName": "backend", "endpoints": [{"lbEndpoints": [{"endpoint": {"address": {"socketAddress": {"address": "10.0.0.1", "portValue": 8080}}}}]}]}}]}}`,
			listeners: []*Listener{{Name: "main", Address: ap("127.0.0.1:8080"), FilterChains: []*FilterChain{tcp("a")}}},
			clusters:  map[string]*Cluster{"backend": backend},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustParse(t, tc.yaml)
			if tc.listeners != nil {
				if diff := cmp.Diff(tc.listeners, b.Snapshot.Listeners, cmpOpts); diff != "" {
					t.Errorf("listeners (-want +got):\n%s", diff)
				}
			}
			if tc.clusters != nil {
				if diff := cmp.Diff(tc.clusters, b.Snapshot.Clusters, cmpOpts); diff != "" {
					t.Errorf("clusters (-want +got):\n%s", diff)
				}
			}
			if b.AdminAddress != tc.admin {
				t.Errorf("AdminAddress = %q, want %q", b.AdminAddress, tc.admin)
			}
		})
	}
}

func TestParseBootstrapErrors(t *testing.T) {
	main := func(chains ...string) []string { return []string{listenerOn("main", 8080, "", chains...)} }
	withTLS := func(ctx string) []string {
		return []string{`{name: backend, transport_socket: {name: tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, ` + ctx + `}}}`}
	}
	goodSDS := `tls_certificate_sds_secret_configs: [{name: default}], combined_validation_context: {validation_context_sds_secret_config: {name: ROOTCA}, default_validation_context: {}`
	matcherListener := func(matcher string) []string {
		return []string{`{name: main, internal_listener: {}, filter_chain_matcher: ` + matcher + `,
  filter_chains: [` + tcpChain("a", "backend", "") + `, ` + tcpChain("b", "backend", "") + `]}`}
	}

	tests := []struct {
		name string
		yaml string
		want string // the whole error, or a part of it when it ends in "..."
	}{
		{
			name: "unknown field",
			yaml: doc("", []string{listenerOn("main", 8080, "bogus: 1", tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `test.yaml: static_resources.listeners[0] "main": proto:...unknown field "bogus"...`,
		},
		{
			name: "unknown field in a cluster",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, connect_timout: 1s}`}),
			want: `test.yaml: static_resources.clusters[0] "backend": proto:...unknown field "connect_timout"...`,
		},
		{
			name: "unknown network filter type",
			yaml: doc("", main(`{name: c, filters: [{name: envoy.filters.network.echo, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo}}]}`), []string{backendCluster}),
			want: `test.yaml: static_resources.listeners[0] "main": proto:...type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo...`,
		},
		{
			name: "known type that is not a network filter",
			yaml: doc("", main(`{name: c, filters: [{name: envoy.filters.network.echo, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}]}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters[0]: unsupported network filter "envoy.filters.network.echo" (type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer)`,
		},
		{
			name: "unsupported TcpProxy field",
			yaml: doc("", main(`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: s, cluster: backend, tunneling_config: {hostname: x}}}]}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters: tcp_proxy tunneling_config is only supported on an internal listener with one filter chain (connect_originate)`,
		},
		{
			name: "TcpProxy hash_policy filter_state",
			yaml: doc("", main(`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: s, cluster: backend, hash_policy: [{filter_state: {key: k}}]}}]}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters[0].typed_config.hash_policy[0].filter_state: not supported yet`,
		},
		{
			name: "TcpProxy weighted_clusters",
			yaml: doc("", main(`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: s, weighted_clusters: {clusters: [{name: backend, weight: 1}]}}}]}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters[0].typed_config.weighted_clusters: not supported yet`,
		},
		{
			name: "TcpProxy PGV rule",
			yaml: doc("", main(`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, cluster: backend}}]}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters[0].typed_config: invalid TcpProxy.StatPrefix: value length must be at least 1 runes`,
		},
		{
			name: "negative idle_timeout",
			yaml: doc("", main(`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: s, cluster: backend, idle_timeout: -1s}}]}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters[0].typed_config.idle_timeout: must not be negative, got -1s`,
		},
		{
			name: "route to missing cluster",
			yaml: doc("", main(tcpChain("a", "backend", ""), tcpChain("b", "nope", chainMatch(80))), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[1].filters[0].typed_config.cluster: unknown cluster "nope"`,
		},
		{
			name: "default chain to missing cluster",
			yaml: doc("", []string{listenerOn("main", 8080, "default_filter_chain: "+tcpChain("d", "nope", ""), tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `test.yaml: listener "main": default_filter_chain.filters[0].typed_config.cluster: unknown cluster "nope"`,
		},
		{
			name: "no filters",
			yaml: doc("", main(`{name: empty}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters: want one terminal network filter (envoy.filters.network.tcp_proxy or envoy.filters.network.http_connection_manager), got none`,
		},
		{
			name: "tcp_proxy not last",
			yaml: doc("", main(`{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: s, cluster: backend}}, {name: envoy.filters.network.tcp_proxy, typed_config: {`+tcpProxyType+`, stat_prefix: s, cluster: backend}}]}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filters[0]: envoy.filters.network.tcp_proxy is a terminal filter and must be the last one`,
		},
		{
			name: "duplicate listener",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", "")), listenerOn("main", 8081, "", tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `test.yaml: listener "main": duplicate listener name`,
		},
		{
			name: "duplicate cluster",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{backendCluster, backendCluster}),
			want: `test.yaml: cluster "backend": duplicate cluster name`,
		},
		{
			name: "duplicate chain match",
			yaml: doc("", main(tcpChain("a", "backend", chainMatch(80, "10.0.0.0/8")), tcpChain("b", "backend", chainMatch(80, "10.0.0.0/8"))), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[1].filter_chain_match: overlaps filter_chains[0] ("a") on port 80 and 10.0.0.0/8: Envoy rejects filter chains with the same match criteria`,
		},
		{
			name: "overlapping chain match, host bits and other ranges aside",
			yaml: doc("", main(tcpChain("a", "backend", chainMatch(0, "10.1.2.3/8", "192.168.0.0/16")), tcpChain("b", "backend", chainMatch(0, "10.0.0.0/8"))), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[1].filter_chain_match: overlaps filter_chains[0] ("a") on any port and 10.0.0.0/8: ...`,
		},
		{
			name: "two catch-all chains",
			yaml: doc("", main(tcpChain("a", "backend", ""), tcpChain("b", "backend", "")), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[1].filter_chain_match: overlaps filter_chains[0] ("a") on any port and any IP: ...`,
		},
		{
			name: "unsupported filter_chain_match field",
			yaml: doc("", main(tcpChain("a", "backend", "filter_chain_match: {server_names: [example.com]}")), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filter_chain_match.server_names: not supported yet`,
		},
		{
			name: "bad IP in prefix_ranges",
			yaml: doc("", main(tcpChain("a", "backend", chainMatch(0, "10.0.0.0/8", "10.0.0.300/32"))), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filter_chain_match.prefix_ranges[1].address_prefix: "10.0.0.300" is not an IP address`,
		},
		{
			name: "prefix too long",
			yaml: doc("", main(tcpChain("a", "backend", chainMatch(0, "10.0.0.0/33"))), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[0].filter_chain_match.prefix_ranges[0].prefix_len: 33 is longer than an IPv4 address`,
		},
		{
			name: "bad matcher action",
			yaml: doc("", matcherListener(`{matcher_tree: {input: `+destPortIn+`, exact_match_map: {map: {"80": `+action("a")+`, "81": `+action("missing")+`}}}}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chain_matcher.matcher_tree.exact_match_map.map["81"].action.typed_config.value: no filter chain named "missing"`,
		},
		{
			name: "matcher action of the wrong type",
			yaml: doc("", matcherListener(`{matcher_tree: {input: `+destPortIn+`, exact_match_map: {map: {"80": {action: {name: x, typed_config: {"@type": type.googleapis.com/google.protobuf.UInt32Value, value: 1}}}}}}}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chain_matcher.matcher_tree.exact_match_map.map["80"].action: unsupported action "x" (type.googleapis.com/google.protobuf.UInt32Value): want a google.protobuf.StringValue naming a filter chain`,
		},
		{
			name: "matcher port key that can never match",
			yaml: doc("", matcherListener(`{matcher_tree: {input: `+destPortIn+`, exact_match_map: {map: {"080": `+action("a")+`}}}}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chain_matcher.matcher_tree.exact_match_map.map["080"]: "080" is not a port number in canonical form, so DestinationPortInput can never equal it`,
		},
		{
			name: "IPMatcher on a port input",
			yaml: doc("", matcherListener(`{matcher_tree: {input: `+destPortIn+`, custom_match: {name: ip, typed_config: {`+ipMatcherTyp+`, range_matchers: [{ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}], on_match: `+action("a")+`}]}}}}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chain_matcher.matcher_tree.custom_match: IPMatcher needs an IP input, got DestinationPortInput`,
		},
		{
			name: "bad IP in an IPMatcher",
			yaml: doc("", matcherListener(`{matcher_tree: {input: `+destIPInput+`, custom_match: {name: ip, typed_config: {`+ipMatcherTyp+`, range_matchers: [{ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}, {address_prefix: "nope", prefix_len: 8}], on_match: `+action("a")+`}]}}}}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chain_matcher.matcher_tree.custom_match.typed_config.range_matchers[0].ranges[1].address_prefix: "nope" is not an IP address`,
		},
		{
			name: "unsupported matching input",
			yaml: doc("", matcherListener(`{matcher_tree: {input: {name: sni, typed_config: {"@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.ServerNameInput}}, exact_match_map: {map: {"a.example": `+action("a")+`}}}}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chain_matcher.matcher_tree.input: unsupported matching input "sni" (type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.ServerNameInput)`,
		},
		{
			name: "keep_matching",
			yaml: doc("", matcherListener(`{matcher_tree: {input: `+destPortIn+`, exact_match_map: {map: {"80": {keep_matching: true, action: {name: a, typed_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: a}}}}}}}`), []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chain_matcher.matcher_tree.exact_match_map.map["80"].keep_matching: not supported yet`,
		},
		{
			name: "unnamed chain with a matcher",
			yaml: doc("", []string{`{name: main, internal_listener: {}, filter_chain_matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"80": ` + action("a") + `}}}},
  filter_chains: [` + tcpChain("a", "backend", "") + `, {filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {` + tcpProxyType + `, stat_prefix: s, cluster: backend}}]}]}`}, []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[1].name: required when filter_chain_matcher is set`,
		},
		{
			name: "duplicate chain names with a matcher",
			yaml: doc("", []string{`{name: main, internal_listener: {}, filter_chain_matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"80": ` + action("a") + `}}}},
  filter_chains: [` + tcpChain("a", "backend", "") + `, ` + tcpChain("a", "backend", "") + `]}`}, []string{backendCluster}),
			want: `test.yaml: listener "main": filter_chains[1].name: duplicate filter chain name "a"`,
		},
		{
			name: "listener filter other than original_dst",
			yaml: doc("", []string{listenerOn("main", 8080, `listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}]`, tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `test.yaml: listener "main": listener_filters[0]: unsupported listener filter "envoy.filters.listener.tls_inspector" (type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer)`,
		},
		{
			name: "use_original_dst true",
			yaml: doc("", []string{listenerOn("main", 8080, "use_original_dst: true", tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `test.yaml: listener "main": use_original_dst: true is not supported yet`,
		},
		{
			name: "address and internal_listener",
			yaml: doc("", []string{listenerOn("main", 8080, "internal_listener: {}", tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `test.yaml: listener "main": internal_listener: must not be set together with address`,
		},
		{
			name: "no address",
			yaml: doc("", []string{`{name: main, filter_chains: [` + tcpChain("a", "backend", "") + `]}`}, []string{backendCluster}),
			want: `test.yaml: listener "main": address: required (or internal_listener)`,
		},
		{
			name: "hostname listener address",
			yaml: doc("", []string{`{name: main, address: {socket_address: {address: localhost, port_value: 80}}, filter_chains: [` + tcpChain("a", "backend", "") + `]}`}, []string{backendCluster}),
			want: `test.yaml: listener "main": address.socket_address.address: "localhost" is not an IP address (hostnames are not supported yet)`,
		},
		{
			name: "unsupported listener field",
			yaml: doc("", []string{listenerOn("main", 8080, "per_connection_buffer_limit_bytes: 1024", tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `test.yaml: listener "main": per_connection_buffer_limit_bytes: not supported yet`,
		},
		{
			name: "no listeners",
			yaml: doc("", nil, []string{backendCluster}),
			want: `test.yaml: no listeners`,
		},
		{
			name: "hostname endpoint",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: backend.example, port_value: 80}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "backend.example" is not an IP address (hostnames are not supported yet)`,
		},
		{
			name: "endpoint port 0",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: must be > 0`,
		},
		{
			name: "internal endpoint address",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {envoy_internal_address: {server_listener_name: connect_originate}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": transport_socket: endpoints that are internal addresses need an internal_upstream transport socket`,
		},
		{
			name: "locality listed twice in a priority",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{locality: {region: r}, lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}, {locality: {region: r}, lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": load_assignment.endpoints[1].locality: locality r// is already listed at priority 0`,
		},
		{
			name: "overprovisioning factor 0",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, policy: {overprovisioning_factor: 0}, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": load_assignment.policy.overprovisioning_factor: must be > 0`,
		},
		{
			name: "drop overloads",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, policy: {drop_overloads: [{category: x}]}, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": load_assignment.policy.drop_overloads: not supported yet`,
		},
		{
			name: "bad endpoint identity",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}, metadata: {filter_metadata: {waypoint: {identity: "spiffe://td/sa/x"}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": load_assignment.endpoints[0].lb_endpoints[0].metadata.filter_metadata["waypoint"].identity: spiffe: "spiffe://td/sa/x": ...`,
		},
		{
			name: "unknown key in the waypoint metadata namespace",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}, metadata: {filter_metadata: {waypoint: {identiy: "spiffe://td/ns/a/sa/b"}}}}]}]}}`}),
			want: `test.yaml: cluster "backend": load_assignment.endpoints[0].lb_endpoints[0].metadata.filter_metadata["waypoint"].identiy: unknown key ("identity", "dubbo_version" and "dubbo_group" are defined)`,
		},
		{
			name: "connect_timeout 0s",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, connect_timeout: 0s}`}),
			want: `test.yaml: cluster "backend": connect_timeout: must be > 0`,
		},
		{
			name: "unsupported lb_policy",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, lb_policy: CLUSTER_PROVIDED}`}),
			want: `test.yaml: cluster "backend": lb_policy: CLUSTER_PROVIDED is not supported yet`,
		},
		{
			name: "unsupported cluster type",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, type: 9}`}),
			want: `test.yaml: cluster "backend": type: 9 is not supported yet`,
		},
		{
			name: "unsupported cluster field",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, per_connection_buffer_limit_bytes: 1}`}),
			want: `test.yaml: cluster "backend": per_connection_buffer_limit_bytes: not supported yet`,
		},
		{
			name: "EDS cluster with a load_assignment",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, type: EDS, eds_cluster_config: {eds_config: {ads: {}}}, load_assignment: {cluster_name: backend}}`}),
			want: `test.yaml: cluster "backend": load_assignment: must not be set on an EDS cluster: its endpoints come from EDS`,
		},
		{
			name: "EDS from a path",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{`{name: backend, type: EDS, eds_cluster_config: {eds_config: {path_config_source: {path: /tmp/eds.yaml}}}}`}),
			want: `test.yaml: cluster "backend": eds_cluster_config.eds_config.path_config_source: not supported yet`,
		},
		{
			name: "tls cluster with TLS 1.2",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {tls_params: {tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}, `+goodSDS+`}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.tls_params.tls_minimum_protocol_version: only TLSv1_3 is supported, got TLSv1_2`,
		},
		{
			name: "tls origination with an SDS certificate",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {tls_certificate_sds_secret_configs: [{name: "kubernetes://cred"}], combined_validation_context: {validation_context_sds_secret_config: {name: ROOTCA}, default_validation_context: {}}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: SDS secret "kubernetes://cred" is not supported yet (only file-cert:CERT~KEY, read from files, or a secret over ADS)`,
		},
		{
			name: "tls origination with an SDS root",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {combined_validation_context: {validation_context_sds_secret_config: {name: ROOTCA}, default_validation_context: {}}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name: SDS secret "ROOTCA" is not supported yet (only file-root:PATH and file-root:system, read from files, or a secret over ADS)`,
		},
		{
			name: "tls origination with a regex SAN",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {validation_context: {match_typed_subject_alt_names: [{san_type: DNS, matcher: {safe_regex: {regex: x}}}]}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher.safe_regex: not supported yet`,
		},
		{
			name: "tls origination with a missing CA file",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {validation_context: {trusted_ca: {filename: /nonexistent/ca.pem}}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename: open /nonexistent/ca.pem: no such file or directory`,
		},
		{
			name: "tls cluster without the root",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {tls_certificate_sds_secret_configs: [{name: default}]}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config: required, named "ROOTCA" (the mesh root)`,
		},
		{
			name: "tls cluster with a DNS SAN",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {tls_certificate_sds_secret_configs: [{name: default}], combined_validation_context: {validation_context_sds_secret_config: {name: ROOTCA}, default_validation_context: {match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: a.example}}]}}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].san_type: only URI is supported, got DNS`,
		},
		{
			name: "tls cluster with a suffix SAN",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`common_tls_context: {tls_certificate_sds_secret_configs: [{name: default}], combined_validation_context: {validation_context_sds_secret_config: {name: ROOTCA}, default_validation_context: {match_typed_subject_alt_names: [{san_type: URI, matcher: {suffix: /sa/x}}]}}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].matcher: want a non-empty exact or prefix`,
		},
		{
			name: "tls cluster with sni",
			yaml: doc("", main(tcpChain("a", "backend", "")), withTLS(`sni: x.example, common_tls_context: {`+goodSDS+`}}`)),
			want: `test.yaml: cluster "backend": transport_socket.typed_config.sni: not supported on the HBONE context (its certificate is SDS "default")`,
		},
		{
			name: "admin profile_path",
			yaml: doc("admin: {address: {socket_address: {address: 127.0.0.1, port_value: 15000}}, profile_path: /tmp/p}", main(tcpChain("a", "backend", "")), []string{backendCluster}),
			want: `test.yaml: admin.profile_path: not supported yet`,
		},
		{
			name: "static secrets",
			yaml: doc("", main(tcpChain("a", "backend", "")), []string{backendCluster}) + "  secrets: [{name: default}]\n",
			want: `test.yaml: static_resources.secrets: not supported yet`,
		},
		{
			name: "unknown top-level field",
			yaml: "statik_resources: {}\n",
			want: `test.yaml: proto:...unknown field "statik_resources"...`,
		},
		{
			name: "not YAML",
			yaml: "static_resources: [\n",
			want: `test.yaml: yaml: ...`,
		},
		{
			name: "empty",
			yaml: "",
			want: `test.yaml: bootstrap is empty`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBootstrap([]byte(tc.yaml), "test.yaml")
			if err == nil {
				t.Fatalf("ParseBootstrap succeeded, want error %q\n%s", tc.want, tc.yaml)
			}
			if !errorMatches(err.Error(), tc.want) {
				t.Errorf("ParseBootstrap error:\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

// errorMatches compares an error text with a pattern whose "..." stand for
// any text.
func errorMatches(got, pattern string) bool {
	parts := strings.Split(pattern, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

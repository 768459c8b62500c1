package xds

import (
	"errors"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resources built directly as protos, the way ADS delivers them: typed
// configs stay packed, so types the binary does not know still decode far
// enough to be named in an error.

func tcpProxyAny(t *testing.T, cluster string) *anypb.Any {
	t.Helper()
	a, err := anypb.New(&tcpproxyv3.TcpProxy{StatPrefix: "s", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func internalListener(name string, filters ...*listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:              name,
		ListenerSpecifier: &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		FilterChains:      []*listenerv3.FilterChain{{Name: "c", Filters: filters}},
	}
}

func edsCluster(name, service string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			ServiceName: service,
			EdsConfig: &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
				ResourceApiVersion:    corev3.ApiVersion_V3,
			},
		},
	}
}

func cla(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, a := range addrs {
		p := ap(a)
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: p.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p.Port())},
			}}},
		}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}}
}

func TestBuildEDS(t *testing.T) {
	l := internalListener("main", &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcpProxyAny(t, "by-service")}})
	clusters := []*clusterv3.Cluster{
		edsCluster("by-service", "svc"),
		edsCluster("by-name", ""),
		edsCluster("also-svc", "svc"),
		edsCluster("missing", ""),
	}
	endpoints := []*endpointv3.ClusterLoadAssignment{
		cla("svc", "10.0.0.1:80", "10.0.0.2:80"),
		cla("by-name", "10.0.0.3:81"),
		cla("unreferenced", "10.0.0.4:82"),
	}
	s, err := Build("v7", []*listenerv3.Listener{l}, clusters, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	svc := []Endpoint{{Address: ap("10.0.0.1:80"), Weight: 1}, {Address: ap("10.0.0.2:80"), Weight: 1}}
	want := map[string][]Endpoint{
		"by-service": svc,
		"also-svc":   svc,
		"by-name":    {{Address: ap("10.0.0.3:81"), Weight: 1}},
		"missing":    nil,
	}
	got := map[string][]Endpoint{}
	for name, c := range s.Clusters {
		got[name] = c.Endpoints
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	if s.Version != "v7" || s.Cluster("by-name").ConnectTimeout != 5*time.Second || s.Listener("main") == nil {
		t.Errorf("snapshot: version %q, cluster %+v, listener %v", s.Version, s.Cluster("by-name"), s.Listener("main"))
	}
}

func TestBuildErrors(t *testing.T) {
	withUnknown := func(a *anypb.Any) *anypb.Any {
		a = proto.Clone(a).(*anypb.Any)
		a.Value = protowire.AppendVarint(protowire.AppendTag(a.Value, 999, protowire.VarintType), 1)
		return a
	}
	filter := func(name string, a *anypb.Any) *listenerv3.Filter {
		return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
	}
	good := func() []*clusterv3.Cluster { return []*clusterv3.Cluster{edsCluster("backend", "")} }

	tests := []struct {
		name      string
		listeners []*listenerv3.Listener
		clusters  []*clusterv3.Cluster
		endpoints []*endpointv3.ClusterLoadAssignment
		want      string
		kind      string // of the *ResourceError, "" if none
	}{
		{
			name: "filter type this binary does not know",
			listeners: []*listenerv3.Listener{internalListener("main_internal", filter("envoy.filters.network.redis_proxy",
				&anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"}))},
			clusters: good(),
			want:     `listener "main_internal": filter_chains[0].filters[0]: unsupported network filter "envoy.filters.network.redis_proxy" (type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy)`,
			kind:     kindListener,
		},
		{
			name:      "unknown field inside a typed config",
			listeners: []*listenerv3.Listener{internalListener("main", filter(tcpProxyFilterName, withUnknown(tcpProxyAny(t, "backend"))))},
			clusters:  good(),
			want:      `listener "main": filter_chains[0].filters[0].typed_config: unknown field number 999 in envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy (from a newer API?)`,
			kind:      kindListener,
		},
		{
			name:      "nil listener",
			listeners: []*listenerv3.Listener{nil},
			clusters:  good(),
			want:      `listeners[0]: nil Listener`,
		},
		{
			name:      "unnamed listener",
			listeners: []*listenerv3.Listener{internalListener("", filter(tcpProxyFilterName, tcpProxyAny(t, "backend")))},
			clusters:  good(),
			want:      `listener "": name: required`,
			kind:      kindListener,
		},
		{
			name:      "duplicate cluster_load_assignment",
			listeners: []*listenerv3.Listener{internalListener("main", filter(tcpProxyFilterName, tcpProxyAny(t, "backend")))},
			clusters:  good(),
			endpoints: []*endpointv3.ClusterLoadAssignment{cla("backend", "10.0.0.1:1"), cla("backend", "10.0.0.2:1")},
			want:      `cluster_load_assignment "backend": duplicate cluster_name`,
			kind:      kindEndpoints,
		},
		{
			name:      "bad cluster_load_assignment",
			listeners: []*listenerv3.Listener{internalListener("main", filter(tcpProxyFilterName, tcpProxyAny(t, "backend")))},
			clusters:  good(),
			endpoints: []*endpointv3.ClusterLoadAssignment{cla("backend", "10.0.0.1:0")},
			want:      `cluster_load_assignment "backend": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: must be > 0`,
			kind:      kindEndpoints,
		},
		{
			name:      "EDS cluster without an EDS config",
			listeners: []*listenerv3.Listener{internalListener("main", filter(tcpProxyFilterName, tcpProxyAny(t, "backend")))},
			clusters:  []*clusterv3.Cluster{{Name: "backend", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}},
			want:      `cluster "backend": eds_cluster_config.eds_config: required (ads: {})`,
			kind:      kindCluster,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build("v1", tc.listeners, tc.clusters, tc.endpoints)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Build error:\n got: %v\nwant: %s", err, tc.want)
			}
			var re *ResourceError
			if got := errors.As(err, &re); got != (tc.kind != "") || (got && re.Kind != tc.kind) {
				t.Errorf("ResourceError: %v %+v, want kind %q", got, re, tc.kind)
			}
		})
	}
}

func TestBuildKeepsInputsUnchanged(t *testing.T) {
	l := internalListener("main", &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcpProxyAny(t, "backend")}})
	c := edsCluster("backend", "")
	e := cla("backend", "10.0.0.1:80")
	before := []proto.Message{proto.Clone(l), proto.Clone(c), proto.Clone(e)}
	s, err := Build("v1", []*listenerv3.Listener{l}, []*clusterv3.Cluster{c}, []*endpointv3.ClusterLoadAssignment{e})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range []proto.Message{l, c, e} {
		if !proto.Equal(before[i], m) {
			t.Errorf("Build modified %T", m)
		}
	}
	if s.Listener("main").Raw != l || s.Cluster("backend").Raw != c {
		t.Error("snapshot does not keep the raw resources")
	}
}

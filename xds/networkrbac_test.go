package xds

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/filters"
)

func rbacFilter(t *testing.T, pb *netrbacv3.RBAC) *listenerv3.Filter {
	t.Helper()
	a, err := anypb.New(pb)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

func TestNetworkRBACInChain(t *testing.T) {
	denyPort := &netrbacv3.RBAC{StatPrefix: "tcp.", Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"no-9300": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9300}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}},
	}}}
	tcp := &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcpProxyAny(t, "backend")}}
	clusters := []*clusterv3.Cluster{edsCluster("backend", "")}

	s, err := Build("v1", []*listenerv3.Listener{internalListener("main", rbacFilter(t, denyPort), tcp)}, clusters, nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := s.Listener("main").FilterChains[0]
	if len(fc.RBAC) != 1 || fc.TCPProxy == nil {
		t.Fatalf("chain: %d RBAC filters, tcp_proxy %v", len(fc.RBAC), fc.TCPProxy)
	}
	for port, want := range map[uint16]bool{9300: false, 9301: true} {
		ok, details := fc.AllowConnection(&filters.Downstream{Destination: netip.AddrPortFrom(netip.MustParseAddr("127.10.0.10"), port)})
		if ok != want || (!ok && details != "rbac_access_denied_matched_policy[no-9300]") {
			t.Errorf("port %d: %v %q, want %v", port, ok, details, want)
		}
	}

	for name, c := range map[string]struct {
		fs   []*listenerv3.Filter
		want string
	}{
		"after the terminal filter": {[]*listenerv3.Filter{tcp, rbacFilter(t, denyPort)}, "filters[0]: envoy.filters.network.tcp_proxy is a terminal filter"},
		"alone":                     {[]*listenerv3.Filter{rbacFilter(t, denyPort)}, "filters[0]: envoy.filters.network.rbac must come before a terminal filter"},
		"no stat_prefix":            {[]*listenerv3.Filter{rbacFilter(t, &netrbacv3.RBAC{}), tcp}, "filters[0].typed_config: invalid RBAC.StatPrefix"},
		"unsupported field": {[]*listenerv3.Filter{rbacFilter(t, &netrbacv3.RBAC{StatPrefix: "x", Rules: &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{
			"p": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
				Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}, CheckedCondition: nil,
				Condition: nil, CelConfig: nil},
		}, AuditLoggingOptions: &rbacv3.RBAC_AuditLoggingOptions{}}}), tcp}, `filters[0].typed_config.rules.audit_logging_options`},
	} {
		_, err := Build("v1", []*listenerv3.Listener{internalListener("main", c.fs...)}, clusters, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

// TestNetworkExtAuthzInChain: istiod's CUSTOM TCP chain (shadow RBAC, then
// ext_authz selecting by its metadata) is taken; a connection the shadow
// rules do not match is not checked, one they match is checked through
// the Upstream given (here none answers: the check fails and the
// connection is refused); ext_authz before RBAC is refused.
func TestNetworkExtAuthzInChain(t *testing.T) {
	shadow := &netrbacv3.RBAC{StatPrefix: "tcp.", ShadowRulesStatPrefix: "istio_ext_authz_", ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"istio-ext-authz-p": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9300}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}},
	}}}
	ea, err := anypb.New(&netextauthzv3.ExtAuthz{StatPrefix: "tcp.", TransportApiVersion: corev3.ApiVersion_V3,
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "authz"}}},
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{Filter: "envoy.filters.network.rbac",
			Path:  []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "istio_ext_authz_shadow_effective_policy_id"}}},
			Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "istio-ext-authz"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	extAuthz := &listenerv3.Filter{Name: "envoy.filters.network.ext_authz", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: ea}}
	tcp := &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcpProxyAny(t, "backend")}}
	clusters := []*clusterv3.Cluster{edsCluster("backend", "")}
	s, err := Build("v1", []*listenerv3.Listener{internalListener("main", rbacFilter(t, shadow), extAuthz, tcp)}, clusters, nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := s.Listener("main").FilterChains[0]
	calls := 0
	up := func() filters.Upstream { calls++; return nil }
	for port, want := range map[uint16]bool{9300: false, 9301: true} {
		ok, _ := fc.AdmitConnection(context.Background(), &filters.Downstream{Destination: netip.AddrPortFrom(netip.MustParseAddr("127.10.0.10"), port)}, up)
		if ok != want {
			t.Errorf("port %d: %v, want %v", port, ok, want)
		}
	}
	if calls != 1 {
		t.Errorf("%d checks, want 1 (port 9300's)", calls)
	}
	if _, err := Build("v1", []*listenerv3.Listener{internalListener("main", extAuthz, rbacFilter(t, shadow), tcp)}, clusters, nil); err == nil ||
		!strings.Contains(err.Error(), "after envoy.filters.network.ext_authz is not supported") {
		t.Errorf("ext_authz before RBAC: %v", err)
	}
}

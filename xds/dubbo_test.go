package xds

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// dubboChain is a filter chain whose network filter is a DubboProxy with
// the given fields.
func dubboChain(fields string) string {
	return `{name: dubbo, filters: [{name: envoy.filters.network.dubbo_proxy, typed_config: {` +
		`"@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy, stat_prefix: dubbo, ` + fields + `}}]}`
}

const (
	dubboRoutes = `route_config: [{name: greeter, interface: com.example.Greeter, routes: [{match: {method: {name: {exact: hello}}}, route: {cluster: backend}}]}]`
	dubboRouter = `{name: envoy.filters.dubbo.router, config: {"@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.router.v3.Router}}`
	dubboFault  = `{name: envoy.filters.http.fault, config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: {header_abort: {}, percentage: {numerator: 100}}}}`
)

func TestDubboDecode(t *testing.T) {
	cases := []struct {
		name   string
		fields string
		names  []string
	}{
		{"the router by default", dubboRoutes, []string{"envoy.filters.dubbo.router"}},
		{"fault then router", dubboRoutes + `, dubbo_filters: [` + dubboFault + `, ` + dubboRouter + `]`,
			[]string{"envoy.filters.http.fault", "envoy.filters.dubbo.router"}},
		{"multiple_route_config", `multiple_route_config: {name: all, ` + dubboRoutes + `}`, []string{"envoy.filters.dubbo.router"}},
		{"the enums' only values", dubboRoutes + `, protocol_type: Dubbo, serialization_type: Hessian2`, []string{"envoy.filters.dubbo.router"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", dubboChain(c.fields))}, []string{backendCluster}))
			fc := b.Snapshot.Listener("l").FilterChains[0]
			d := fc.Dubbo
			if d == nil || fc.HTTP != nil || fc.TCPProxy != nil {
				t.Fatalf("chain %+v", fc)
			}
			if diff := cmp.Diff(c.names, d.FilterNames); diff != "" {
				t.Fatalf("filters (-want +got):\n%s", diff)
			}
			req := &l7.Request{Proto: l7.Dubbo, Method: "hello", Path: []byte("/com.example.Greeter/hello")}
			if r := d.Routes.Match(req, noArgs{}); r == nil || r.Cluster(0) != "backend" {
				t.Fatalf("route %v", r)
			}
		})
	}
}

type noArgs struct{}

func (noArgs) Arg(int) ([]byte, bool) { return nil, false }

func TestDubboDecodeErrors(t *testing.T) {
	const prefix = `test.yaml: listener "l": filter_chains[0].filters[0].typed_config.`
	cases := []struct{ name, fields, want string }{
		{"no routes", `stat_prefix: x`, `route_config: at least one route configuration is required (drds is not supported yet)`},
		{"route discovery", `drds: {route_config_name: x}`, `drds: not supported yet`},
		{"both route forms", dubboRoutes + `, multiple_route_config: {` + dubboRoutes + `}`, `multiple_route_config: must not be set together with route_config`},
		{"an unknown cluster", `route_config: [{interface: "*", routes: [{match: {}, route: {cluster: nope}}]}]`,
			`route_config[0].routes[0].route.cluster: unknown cluster "nope"`},
		{"the HTTP router last", dubboRoutes + `, dubbo_filters: [{name: envoy.filters.http.router, config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]`,
			`dubbo_filters[0]: the last Dubbo filter must be the Dubbo router (envoy.filters.dubbo.router), not "envoy.filters.http.router"`},
		{"the router not last", dubboRoutes + `, dubbo_filters: [` + dubboRouter + `, ` + dubboFault + `]`,
			`dubbo_filters[0]: "envoy.filters.dubbo.router" is terminal and must be the last filter`},
		{"an unknown filter", dubboRoutes + `, dubbo_filters: [{name: envoy.filters.dubbo.nope}]`,
			`dubbo_filters[0]: unsupported HTTP filter "envoy.filters.dubbo.nope"`},
		{"a bad filter config", dubboRoutes + `, dubbo_filters: [{name: envoy.filters.http.fault, config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, upstream_cluster: x}}, ` + dubboRouter + `]`,
			`dubbo_filters[0].config.upstream_cluster: not supported yet`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseBootstrap([]byte(doc("", []string{listenerOn("l", 18000, "", dubboChain(c.fields))}, []string{backendCluster})), "test.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), prefix+c.want) {
				t.Fatalf("error\n %v\nwant\n %s", err, prefix+c.want)
			}
		})
	}
}

func TestDubboRouterRefusedByHCM(t *testing.T) {
	_, err := ParseBootstrap([]byte(doc("", []string{listenerOn("l", 18000, "", hcmChain(`{name: envoy.filters.dubbo.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.router.v3.Router}}`, simpleRoutes, ""))}, []string{backendCluster})), "test.yaml")
	if err == nil || !strings.Contains(err.Error(), `http_filters[0]: "envoy.filters.dubbo.router" is a Dubbo filter`) {
		t.Fatalf("error %v", err)
	}
}

// dubboRBAC is an HTTP RBAC filter in dubbo_filters: a DENY of the calls
// to /com.example.Admin/*.
const dubboRBAC = `{name: envoy.filters.http.rbac, config: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, ` +
	`rules: {action: DENY, policies: {deny-admin: {permissions: [{url_path: {path: {prefix: /com.example.Admin/}}}], principals: [{any: true}]}}}}}`

func TestDubboRBACFilter(t *testing.T) {
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", dubboChain(dubboRoutes+`, dubbo_filters: [`+dubboRBAC+`, `+dubboRouter+`]`))}, []string{backendCluster}))
	d := b.Snapshot.Listener("l").FilterChains[0].Dubbo
	if diff := cmp.Diff([]string{"envoy.filters.http.rbac", "envoy.filters.dubbo.router"}, d.FilterNames); diff != "" {
		t.Fatalf("filters (-want +got):\n%s", diff)
	}
	_, err := ParseBootstrap([]byte(doc("", []string{listenerOn("l", 18000, "", dubboChain(dubboRoutes+`, dubbo_filters: [`+
		`{name: envoy.filters.http.rbac, config: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: {policies: {p: {permissions: [{url_path: {path: {safe_regex: {regex: "("}}}}], principals: [{any: true}]}}}}}, `+
		dubboRouter+`]`))}, []string{backendCluster})), "test.yaml")
	const want = `test.yaml: listener "l": filter_chains[0].filters[0].typed_config.dubbo_filters[0].config.rules.policies["p"].permissions[0].url_path`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error\n %v\nwant the prefix\n %s", err, want)
	}
}

func TestDubboListenerAccessLog(t *testing.T) {
	const accessLog = `access_log: [{name: envoy.access_loggers.stdout, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}}]`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, accessLog, tcpChain("tcp", "backend", `filter_chain_match: {destination_port: 9}`), dubboChain(dubboRoutes))}, []string{backendCluster}))
	l := b.Snapshot.Listener("l")
	if d := l.FilterChains[1].Dubbo; len(d.AccessLog) != 1 || d.AccessLog[0].Path != "/dev/stdout" {
		t.Fatalf("the Dubbo chain's access logs: %+v", d.AccessLog)
	}
	for _, c := range []struct{ name, listener, want string }{
		{"no Dubbo chain", listenerOn("l", 18000, accessLog, tcpChain("tcp", "backend", "")),
			`test.yaml: listener "l": access_log: the listener has no envoy.filters.network.dubbo_proxy chain`},
		{"a bad logger", listenerOn("l", 18000, `access_log: [{name: x, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog}}]`, dubboChain(dubboRoutes)),
			`test.yaml: listener "l": access_log[0].typed_config.path: required`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseBootstrap([]byte(doc("", []string{c.listener}, []string{backendCluster})), "test.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error\n %v\nwant the prefix\n %s", err, c.want)
			}
		})
	}
}

// TestDubboOnTCP checks the DubboProxy made up for a tcp_proxy chain: any
// call goes to the tcp_proxy's cluster, a call whose body is not decoded
// too, through the Dubbo router alone, logged by the tcp_proxy's access
// logs.
func TestDubboOnTCP(t *testing.T) {
	chain := `{name: t, filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {` + tcpProxyType +
		`, stat_prefix: s, cluster: backend, access_log: [{name: envoy.access_loggers.stdout, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}}]}}]}`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", chain)}, []string{backendCluster}))
	tp := b.Snapshot.Listener("l").FilterChains[0].TCPProxy
	d := tp.Dubbo
	if d == nil {
		t.Fatal("no DubboProxy made up for the tcp_proxy")
	}
	if diff := cmp.Diff([]string{"envoy.filters.dubbo.router"}, d.FilterNames); diff != "" {
		t.Errorf("filters (-want +got):\n%s", diff)
	}
	if len(d.AccessLog) != 1 || d.AccessLog[0] != tp.AccessLog[0] {
		t.Errorf("access logs %v, want the tcp_proxy's %v", d.AccessLog, tp.AccessLog)
	}
	for _, req := range []*l7.Request{
		{Proto: l7.Dubbo, Method: "hello", Path: []byte("/com.example.Greeter/hello")},
		{Proto: l7.Dubbo, Method: "anything", Path: []byte("/org.other.Service/anything")},
	} {
		if r := d.Routes.Match(req, noArgs{}); r == nil || r.Cluster(0) != "backend" || r.Refusal() != "" {
			t.Errorf("call %s: route %v, want cluster backend", req.Path, r)
		}
	}
	if r := d.Routes.Match(&l7.Request{Proto: l7.Dubbo}, nil); r == nil || r.Cluster(0) != "backend" || r.Refusal() != "" {
		t.Errorf("undecoded call: route %v, want cluster backend", r)
	}
}

// TestDubboMetadata checks the cluster's dubbo_on_tcp switch and the
// endpoints' Dubbo version and group.
func TestDubboMetadata(t *testing.T) {
	cluster := func(clusterMD, endpointMD string) string {
		return `{name: backend, metadata: {filter_metadata: ` + clusterMD + `}, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [` +
			`{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 8080}}}, metadata: {filter_metadata: ` + endpointMD + `}}]}]}}`
	}
	for _, tc := range []struct {
		name                string
		clusterMD, endpoint string
		noDubbo             bool
		version, group      string
		wantErr             string
	}{
		{name: "nothing said", clusterMD: `{}`, endpoint: `{}`},
		{name: "dubbo_on_tcp false", clusterMD: `{waypoint: {dubbo_on_tcp: false}}`, endpoint: `{}`, noDubbo: true},
		{name: "dubbo_on_tcp true", clusterMD: `{waypoint: {dubbo_on_tcp: true}}`, endpoint: `{}`},
		{name: "dubbo_on_tcp not a bool", clusterMD: `{waypoint: {dubbo_on_tcp: "no"}}`, endpoint: `{}`,
			wantErr: `metadata.filter_metadata["waypoint"].dubbo_on_tcp: want true or false`},
		{name: "istiod's canonical revision", clusterMD: `{}`, endpoint: `{istio: {workload: "prov-b;default;prov;v2;Kubernetes"}}`, version: "v2"},
		{name: "the waypoint's keys win", clusterMD: `{}`,
			endpoint: `{istio: {workload: "prov-b;default;prov;v2;Kubernetes"}, waypoint: {dubbo_version: "1.0.0", dubbo_group: g1}}`,
			version:  "1.0.0", group: "g1"},
		{name: "an empty group", clusterMD: `{}`, endpoint: `{waypoint: {dubbo_group: ""}}`,
			wantErr: `metadata.filter_metadata["waypoint"].dubbo_group: want a non-empty string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := doc("", []string{listenerOn("l", 18000, "", tcpChain("t", "backend", ""))}, []string{cluster(tc.clusterMD, tc.endpoint)})
			if tc.wantErr != "" {
				_, err := ParseBootstrap([]byte(yaml), "test.yaml")
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			cl := mustParse(t, yaml).Snapshot.Cluster("backend")
			if cl.NoDubboOnTCP != tc.noDubbo {
				t.Errorf("NoDubboOnTCP = %v, want %v", cl.NoDubboOnTCP, tc.noDubbo)
			}
			v, g := cl.Endpoints[0].DubboLabels()
			if v != tc.version || g != tc.group {
				t.Errorf("DubboLabels = %q, %q; want %q, %q", v, g, tc.version, tc.group)
			}
		})
	}
}

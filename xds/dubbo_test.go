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

package xds

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"

	_ "github.com/gowaypoint/waypoint/filters/all"
	_ "github.com/gowaypoint/waypoint/filters/example/greeting"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// hcmChain is an HTTP filter chain whose HCM has the given http_filters,
// route config and extra fields.
func hcmChain(httpFilters, routeConfig, extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return `{name: web, filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {` +
		`"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, ` +
		`stat_prefix: web, http_filters: [` + httpFilters + `], route_config: ` + routeConfig + extra + `}}]}`
}

const (
	routerFilter = `{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}`
	faultFilter  = `{name: envoy.filters.http.fault, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}}`
	simpleRoutes = `{name: r, virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]}`
)

func TestHCMDecode(t *testing.T) {
	istioLike := `stream_idle_timeout: 0s, use_remote_address: false, proxy_100_continue: true, normalize_path: true,
		server_name: istio-envoy, path_with_escaped_slashes_action: KEEP_UNCHANGED, upgrade_configs: [{upgrade_type: websocket}],
		request_id_extension: {typed_config: {"@type": type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig, use_request_id_for_trace_sampling: true}},
		http2_protocol_options: {max_concurrent_streams: 50}`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(faultFilter+", "+routerFilter, simpleRoutes, istioLike))}, []string{backendCluster}))
	h := b.Snapshot.Listener("l").FilterChains[0].HTTP
	if h == nil {
		t.Fatal("no HTTP connection manager decoded")
	}
	got := struct {
		Names            []string
		Server           string
		Idle, StreamIdle time.Duration
		Normalize, P100  bool
		Upgrades         map[string]bool
		H2               DownstreamHTTP2
		GenerateID       bool
	}{h.FilterNames, h.ServerName, h.IdleTimeout, h.StreamIdleTimeout, h.NormalizePath, h.Proxy100Continue, h.Upgrades, h.HTTP2, h.GenerateRequestID}
	want := got
	want.Names = []string{"envoy.filters.http.fault", "envoy.filters.http.router"}
	want.Server, want.Idle, want.StreamIdle = "istio-envoy", time.Hour, 0
	want.Normalize, want.P100, want.Upgrades, want.GenerateID = true, true, map[string]bool{"websocket": true}, true
	want.H2 = DownstreamHTTP2{MaxConcurrentStreams: 50, InitialStreamWindowSize: 64 << 10, InitialConnectionWindowSize: 1 << 20}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded HCM (-want +got):\n%s", diff)
	}
	req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/x")}
	if r := h.Routes.Match(req); r == nil || r.Cluster() != "backend" {
		t.Errorf("route table does not route /x to backend")
	}
}

// TestHCMTimeoutsDecode: the connection manager's timeouts, with Envoy's
// defaults when absent.
func TestHCMTimeoutsDecode(t *testing.T) {
	type timeouts struct {
		StreamIdle, Request, Headers, Idle, MaxConn, MaxStream, Drain time.Duration
	}
	cases := []struct {
		name, extra string
		want        timeouts
	}{
		{"defaults", "", timeouts{StreamIdle: 5 * time.Minute, Idle: time.Hour, Drain: 5 * time.Second}},
		{"all set", `stream_idle_timeout: 7s, request_timeout: 3s, request_headers_timeout: 2s, drain_timeout: 1s,
			common_http_protocol_options: {idle_timeout: 9s, max_connection_duration: 60s, max_stream_duration: 30s}`,
			timeouts{7 * time.Second, 3 * time.Second, 2 * time.Second, 9 * time.Second, time.Minute, 30 * time.Second, time.Second}},
		{"zero disables", "stream_idle_timeout: 0s, common_http_protocol_options: {idle_timeout: 0s}", timeouts{Drain: 5 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(routerFilter, simpleRoutes, c.extra))}, []string{backendCluster}))
			h := b.Snapshot.Listener("l").FilterChains[0].HTTP
			got := timeouts{h.StreamIdleTimeout, h.RequestTimeout, h.RequestHeadersTimeout, h.IdleTimeout,
				h.MaxConnectionDuration, h.MaxStreamDuration, h.DrainTimeout}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("timeouts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHCMTypedStructFilter(t *testing.T) {
	greeting := `{name: example.greeting, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/example.greeting.v1.Config, value: {header: x-caller}}}`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(greeting+", "+routerFilter, simpleRoutes, ""))}, []string{backendCluster}))
	if names := b.Snapshot.Listener("l").FilterChains[0].HTTP.FilterNames; len(names) != 2 || names[0] != "example.greeting" {
		t.Fatalf("filters %v", names)
	}
}

func TestHCMErrors(t *testing.T) {
	cases := []struct {
		name, filters, routes, extra, want string
	}{
		{"HTTP filter type not linked in", `{name: envoy.filters.http.lua, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}, ` + routerFilter, simpleRoutes, "",
			`unable to resolve "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"`},
		{"unknown HTTP filter", `{name: custom, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/some.Unknown}}, ` + routerFilter, simpleRoutes, "",
			`http_filters[0]: unsupported HTTP filter "custom" (type.googleapis.com/some.Unknown)`},
		{"route to a missing cluster", routerFilter, `{virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: nowhere}}]}]}`, "",
			`route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster "nowhere"`},
		{"invalid regex", routerFilter, `{virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {safe_regex: {regex: "(unclosed"}}, route: {cluster: backend}}]}]}`, "",
			`route_config.virtual_hosts[0].routes[0].match.safe_regex`},
		{"router not last", routerFilter + ", " + faultFilter, simpleRoutes, "", `must be terminal (the router)`},
		{"no route config", routerFilter, `null`, "", "route_config: required"},
		{"unsupported HCM field", routerFilter, simpleRoutes, "add_user_agent: true", "add_user_agent: not supported yet"},
		{"unknown field in a TypedStruct", `{name: example.greeting, typed_config: {"@type": type.googleapis.com/udpa.type.v1.TypedStruct, ` +
			`type_url: type.googleapis.com/example.greeting.v1.Config, value: {header: x-caller, dney: [intruder]}}}, ` + routerFilter, simpleRoutes, "",
			`http_filters[0].typed_config: example.greeting: unknown field "dney" (known: deny, header)`},
		{"bad fault config", `{name: envoy.filters.http.fault, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: {http_status: 99, percentage: {numerator: 1}}}}, ` + routerFilter,
			simpleRoutes, "", "http_filters[0].typed_config.abort.http_status: 99 is not in [200, 600)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := doc("", []string{listenerOn("l", 18000, "", hcmChain(c.filters, c.routes, c.extra))}, []string{backendCluster})
			_, err := ParseBootstrap([]byte(y), "test.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), `listener "l"`) && !strings.Contains(err.Error(), `listeners[0] "l"`) {
				t.Errorf("err = %v, does not name the listener", err)
			}
		})
	}
}

func TestHCMOptionalUnknownFilterIsSkipped(t *testing.T) {
	opt := `{name: envoy.filters.http.lua, is_optional: true, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/some.Unknown}}`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(opt+", "+routerFilter, simpleRoutes, ""))}, []string{backendCluster}))
	if names := b.Snapshot.Listener("l").FilterChains[0].HTTP.FilterNames; len(names) != 1 {
		t.Fatalf("filters %v, want the router only", names)
	}
}

// istiod's connection managers differ only in their route_config: a build
// decodes the rest once and shares it, and what it makes is what decoding
// each whole makes: its own routes, its own filter instances, the same
// settings; a connection manager that fails so fails with the error
// decoding it whole gives.
func TestHCMSharedButRoutes(t *testing.T) {
	istioLike := `server_name: istio-envoy, normalize_path: true, upgrade_configs: [{upgrade_type: websocket}], http2_protocol_options: {max_concurrent_streams: 50}`
	clusters := []string{backendCluster, strings.ReplaceAll(backendCluster, "backend", "other")}
	routes := func(name, cluster string) string {
		return `{name: ` + name + `, virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: ` + cluster + `}}]}]}`
	}
	chain := func(i int, routeConfig string) string {
		return strings.Replace(hcmChain(faultFilter+", "+routerFilter, routeConfig, istioLike), "{name: web,",
			fmt.Sprintf("{name: web%d, %s,", i, chainMatch(9000+i)), 1)
	}
	alone := func(i int, routeConfig string) *HTTPConnectionManager {
		return mustParse(t, doc("", []string{listenerOn("l", 18000, "", chain(i, routeConfig))}, clusters)).Snapshot.Listener("l").FilterChains[0].HTTP
	}
	rcs := []string{routes("r0", "backend"), routes("r1", "other"), routes("r2", "backend")}
	var chains []string
	for i, rc := range rcs {
		chains = append(chains, chain(i, rc))
	}
	snap := mustParse(t, doc("", []string{listenerOn("l", 18000, "", chains...)}, clusters)).Snapshot
	fcs := snap.Listener("l").FilterChains
	req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/x")}
	for i, fc := range fcs {
		h, want := fc.HTTP, alone(i, rcs[i])
		if diff := cmp.Diff(want, h, cmpopts.IgnoreFields(HTTPConnectionManager{}, "Chain", "Routes")); diff != "" {
			t.Errorf("chain %d shared (-whole +shared):\n%s", i, diff)
		}
		if h.Routes.Name() != want.Routes.Name() || h.Routes.Match(req).Cluster() != want.Routes.Match(req).Cluster() {
			t.Errorf("chain %d: routes %s to %s, want %s to %s", i, h.Routes.Name(), h.Routes.Match(req).Cluster(),
				want.Routes.Name(), want.Routes.Match(req).Cluster())
		}
		if i > 0 && (h.Chain == fcs[0].HTTP.Chain || h.Routes == fcs[0].HTTP.Routes) {
			t.Errorf("chain %d shares its filters or routes with chain 0", i)
		}
		if i > 0 && reflect.ValueOf(h.Upgrades).UnsafePointer() != reflect.ValueOf(fcs[0].HTTP.Upgrades).UnsafePointer() {
			t.Errorf("chain %d was decoded whole, not shared", i)
		}
	}

	// A route_config that fails after one that passed: the error of the
	// whole decode, naming the chain.
	for _, tc := range []struct{ name, routes, want string }{
		{"unknown cluster", routes("bad", "nowhere"), `route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster "nowhere"`},
		{"invalid regex", `{virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {safe_regex: {regex: "(unclosed"}}, route: {cluster: backend}}]}]}`,
			`route_config.virtual_hosts[0].routes[0].match.safe_regex`},
		{"no virtual host name", `{virtual_hosts: [{domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]}`, "VirtualHost.Name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, whole := ParseBootstrap([]byte(doc("", []string{listenerOn("l", 18000, "", chain(1, tc.routes))}, clusters)), "test.yaml")
			if whole == nil || !strings.Contains(whole.Error(), tc.want) {
				t.Fatalf("decoded whole: %v, want %q", whole, tc.want)
			}
			_, err := ParseBootstrap([]byte(doc("", []string{listenerOn("l", 18000, "", chain(0, rcs[0]), chain(1, tc.routes))}, clusters)), "test.yaml")
			if err == nil || !strings.Contains(err.Error(), "filter_chains[1]") ||
				!strings.HasSuffix(err.Error(), whole.Error()[strings.Index(whole.Error(), "filters[0]"):]) {
				t.Errorf("after a chain that passed: %v\nwant the error decoding it whole gives: %v", err, whole)
			}
		})
	}
}

// hcmSplit takes route_config apart from the rest, merging its
// occurrences as decoding does, and declines what it cannot share: no
// route_config, another route specifier of the oneof, bytes that do not
// parse.
func TestHCMSplit(t *testing.T) {
	wire := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rc := func(name string) *hcmv3.HttpConnectionManager {
		return &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: name}}}
	}
	base := wire(&hcmv3.HttpConnectionManager{StatPrefix: "p", ServerName: "s"})
	withRC := append(append([]byte(nil), base...), wire(rc("a"))...)
	twice := append(append([]byte(nil), withRC...), wire(&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
		RouteConfig: &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "vh"}}}}})...)
	rds := append(append([]byte(nil), withRC...), wire(&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{}}})...)
	for _, tc := range []struct {
		name  string
		in    []byte
		split bool
		rc    *routev3.RouteConfiguration
	}{
		{"route_config", withRC, true, &routev3.RouteConfiguration{Name: "a"}},
		{"route_config twice: merged", twice, true, &routev3.RouteConfiguration{Name: "a", VirtualHosts: []*routev3.VirtualHost{{Name: "vh"}}}},
		{"no route_config", base, false, nil},
		{"rds too", rds, false, nil},
		{"truncated", withRC[:len(withRC)-1], false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routeBytes, rest, split := hcmSplit(tc.in, nil)
			if split != tc.split {
				t.Fatalf("split %v, want %v", split, tc.split)
			}
			if !split {
				return
			}
			if !bytes.Equal(rest, base) {
				t.Errorf("rest %x, want %x", rest, base)
			}
			var got routev3.RouteConfiguration
			if err := proto.Unmarshal(routeBytes, &got); err != nil || !proto.Equal(&got, tc.rc) {
				t.Errorf("route_config %v (%v), want %v", &got, err, tc.rc)
			}
		})
	}
}

// A route configuration with validate_clusters false is taken with a route
// to a cluster the config does not have (yet), as Envoy takes it: istiod
// writes it so and may send a Service's listener before its cluster. The
// route names the cluster; the data path answers it 503 NC until the
// cluster comes. Unset or true, such a route is refused.
func TestHCMValidateClusters(t *testing.T) {
	routes := func(validate string) string {
		return `{name: r, ` + validate + ` virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: later}}]}]}`
	}
	for _, tc := range []struct {
		validate string
		taken    bool
	}{{"", false}, {"validate_clusters: true,", false}, {"validate_clusters: false,", true}} {
		y := doc("", []string{listenerOn("l", 18000, "", hcmChain(routerFilter, routes(tc.validate), ""))}, []string{backendCluster})
		b, err := ParseBootstrap([]byte(y), "test.yaml")
		if (err == nil) != tc.taken {
			t.Errorf("%q: %v, want taken %v", tc.validate, err, tc.taken)
			continue
		}
		if !tc.taken {
			if !strings.Contains(err.Error(), `unknown cluster "later"`) {
				t.Errorf("%q: %v, want the unknown cluster named", tc.validate, err)
			}
			continue
		}
		req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/x")}
		if r := b.Snapshot.Listener("l").FilterChains[0].HTTP.Routes.Match(req); r == nil || r.Cluster() != "later" || b.Snapshot.Cluster("later") != nil {
			t.Errorf("%q: route %v", tc.validate, r)
		}
	}
}

package admin

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// do sends method path to h and returns the status and body.
func do(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func sock(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func TestReadyAndState(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ready     bool
		state     func() adminv3.ServerInfo_State
		code      int
		body      string
		infoState string
	}{
		{name: "before config", code: 503, body: "INITIALIZING\n", infoState: "INITIALIZING"},
		{name: "pre-initializing", state: func() adminv3.ServerInfo_State { return adminv3.ServerInfo_PRE_INITIALIZING }, code: 503,
			body: "PRE_INITIALIZING\n", infoState: "PRE_INITIALIZING"},
		{name: "live", ready: true, code: 200, body: "LIVE\n", infoState: "LIVE"},
		{name: "draining", state: func() adminv3.ServerInfo_State { return adminv3.ServerInfo_DRAINING }, code: 503, body: "DRAINING\n",
			infoState: "DRAINING"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready := tc.ready
			h := Handler(Sources{Ready: func() bool { return ready }, State: tc.state, Version: "abc/1.0/Clean/RELEASE/GoTLS",
				Start: time.Now().Add(-90 * time.Second), Node: func() *corev3.Node { return &corev3.Node{Id: "waypoint~1.2.3.4~p.ns~ns.svc"} },
				CommandLine: &adminv3.CommandLineOptions{Concurrency: 2}})
			for _, path := range []string{"/ready", "/healthz/ready"} {
				if code, body := do(t, h, "GET", path); code != tc.code || body != tc.body {
					t.Errorf("%s: %d %q, want %d %q", path, code, body, tc.code, tc.body)
				}
			}
			code, body := do(t, h, "GET", "/server_info")
			var info map[string]any
			if err := json.Unmarshal([]byte(body), &info); err != nil || code != 200 {
				t.Fatalf("/server_info: %d %v %s", code, err, body)
			}
			if info["state"] != tc.infoState || info["version"] != "abc/1.0/Clean/RELEASE/GoTLS" || info["uptime_current_epoch"] != "90s" {
				t.Errorf("/server_info: %s", body)
			}
			if n, _ := info["node"].(map[string]any); n["id"] != "waypoint~1.2.3.4~p.ns~ns.svc" {
				t.Errorf("/server_info node: %v", info["node"])
			}
			if cl, _ := info["command_line_options"].(map[string]any); cl["concurrency"] != float64(2) {
				t.Errorf("/server_info command_line_options: %v", info["command_line_options"])
			}
		})
	}
}

func TestMutatingEndpointsArePOSTOnly(t *testing.T) {
	var quits, drains int
	var graceful, inbound bool
	h := Handler(Sources{
		Quit: func() { quits++ },
		DrainListeners: func(g, i bool) error {
			drains++
			graceful, inbound = g, i
			return nil
		},
	})
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/quitquitquit", 405},
		{"GET", "/drain_listeners", 405},
		{"PUT", "/clusters", 405},
		{"POST", "/drain_listeners?graceful&inboundonly", 200},
		{"POST", "/quitquitquit", 200},
	} {
		if code, body := do(t, h, tc.method, tc.path); code != tc.code {
			t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, code, body, tc.code)
		}
	}
	if quits != 1 || drains != 1 || !graceful || !inbound {
		t.Errorf("quits %d, drains %d (graceful %v, inboundonly %v), want one each, both flags", quits, drains, graceful, inbound)
	}
}

// dumpSections is a dump as the waypoint hands it over: the snapshot's
// sections (bootstrap, listeners, clusters, endpoints, routes) and the
// secrets in a second ConfigDump, out of Envoy's order.
func dumpSections(t *testing.T) []*adminv3.ConfigDump {
	t.Helper()
	pack := func(ms ...proto.Message) *adminv3.ConfigDump {
		d := &adminv3.ConfigDump{}
		for _, m := range ms {
			a, err := anypb.New(m)
			if err != nil {
				t.Fatal(err)
			}
			d.Configs = append(d.Configs, a)
		}
		return d
	}
	any := func(m proto.Message) *anypb.Any { a, _ := anypb.New(m); return a }
	cds := &adminv3.ClustersConfigDump{VersionInfo: "7"}
	for _, n := range []string{"inbound-vip|9080|http|reviews.ns.svc.cluster.local", "encap"} {
		cds.DynamicActiveClusters = append(cds.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: "7",
			Cluster: any(&clusterv3.Cluster{Name: n})})
	}
	eds := &adminv3.EndpointsConfigDump{DynamicEndpointConfigs: []*adminv3.EndpointsConfigDump_DynamicEndpointConfig{
		{EndpointConfig: any(&endpointv3.ClusterLoadAssignment{ClusterName: "inbound-vip|9080|http|reviews.ns.svc.cluster.local"})}}}
	return []*adminv3.ConfigDump{
		pack(&adminv3.BootstrapConfigDump{}, &adminv3.ListenersConfigDump{VersionInfo: "7"}, cds, eds, &adminv3.RoutesConfigDump{}),
		pack(&adminv3.SecretsConfigDump{DynamicActiveSecrets: []*adminv3.SecretsConfigDump_DynamicSecret{{Name: "default"}, {Name: "ROOTCA"}}}),
	}
}

func TestConfigDump(t *testing.T) {
	const (
		boot    = "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
		cds     = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
		eds     = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"
		lds     = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
		rds     = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
		sds     = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
		dynamic = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster"
		secret  = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret"
	)
	h := Handler(Sources{ConfigDump: func() ([]*adminv3.ConfigDump, error) { return dumpSections(t), nil }})
	for _, tc := range []struct {
		name  string
		query string
		code  int
		types []string // the configs' types, in order
		has   []string // in the body
		hasNo []string
		check func(*adminv3.ConfigDump) bool
	}{
		{name: "all, Envoy's order, no EDS", types: []string{boot, cds, lds, rds, sds}, has: []string{`"version_info": "7"`, `"name": "ROOTCA"`}},
		{name: "include_eds", query: "include_eds", types: []string{boot, cds, eds, lds, rds, sds}},
		{name: "mask (istioctl's clusters)", query: "mask=dynamic_active_clusters,dynamic_warming_clusters,static_clusters",
			types: []string{boot, cds, lds, rds, sds}, has: []string{"inbound-vip|9080"}, hasNo: []string{"ROOTCA"},
			check: func(d *adminv3.ConfigDump) bool {
				var c adminv3.ClustersConfigDump
				return d.GetConfigs()[1].UnmarshalTo(&c) == nil && c.GetVersionInfo() == "" && len(c.GetDynamicActiveClusters()) == 2
			}},
		{name: "mask (istioctl's secrets)", query: "mask=dynamic_active_secrets,dynamic_warming_secrets",
			types: []string{boot, cds, lds, rds, sds}, has: []string{"ROOTCA"}, hasNo: []string{"inbound-vip"}},
		{name: "resource", query: "resource=dynamic_active_clusters", types: []string{dynamic, dynamic}, has: []string{"inbound-vip|9080", `"name": "encap"`}},
		{name: "resource and mask", query: "resource=dynamic_active_clusters&mask=cluster", types: []string{dynamic, dynamic},
			has: []string{"encap"}, hasNo: []string{`"version_info"`}},
		{name: "resource and name_regex", query: "resource=dynamic_active_clusters&name_regex=^inbound", types: []string{dynamic},
			hasNo: []string{"encap"}},
		{name: "name_regex on sections", query: "name_regex=ROOT", types: []string{boot, cds, lds, rds, sds},
			has: []string{"ROOTCA"}, hasNo: []string{"inbound-vip", `"default"`}},
		{name: "secrets resource", query: "resource=dynamic_active_secrets", types: []string{secret, secret}},
		{name: "unknown resource", query: "resource=nothing_like_it", code: 404},
		{name: "resource not repeated", query: "resource=version_info", code: 400},
		{name: "mask not of the resource", query: "resource=dynamic_active_clusters&mask=nothing", code: 400},
		{name: "bad name_regex", query: "name_regex=(", code: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, "GET", "/config_dump?"+tc.query)
			if tc.code == 0 {
				tc.code = 200
			}
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
			if code != 200 {
				return
			}
			var d adminv3.ConfigDump
			if err := protojson.Unmarshal([]byte(body), &d); err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, c := range d.GetConfigs() {
				types = append(types, c.GetTypeUrl())
			}
			if strings.Join(types, " ") != strings.Join(tc.types, " ") {
				t.Errorf("types %v, want %v", types, tc.types)
			}
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in %s", s, body)
				}
			}
			for _, s := range tc.hasNo {
				if strings.Contains(body, s) {
					t.Errorf("%q in %s", s, body)
				}
			}
			if tc.check != nil && !tc.check(&d) {
				t.Errorf("check fails on %s", body)
			}
		})
	}
}

func testClusters() *adminv3.Clusters {
	return &adminv3.Clusters{ClusterStatuses: []*adminv3.ClusterStatus{{
		Name: "inbound-vip|9080|http|reviews.ns.svc.cluster.local", AddedViaApi: true,
		CircuitBreakers: Thresholds(1024, 1024, 1024, 3),
		HostStatuses: []*adminv3.HostStatus{
			{Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
				AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "connect_originate"}, EndpointId: "10.0.0.1:9080"}}},
				Stats:        []*adminv3.SimpleMetric{{Type: adminv3.SimpleMetric_COUNTER, Name: "rq_total", Value: 5}},
				HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY}, Weight: 1},
			{Address: sock("10.0.0.2", 9080), HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY, FailedOutlierCheck: true}, Weight: 2},
		},
	}}}
}

func TestClusters(t *testing.T) {
	h := Handler(Sources{Clusters: testClusters})
	const c = "inbound-vip|9080|http|reviews.ns.svc.cluster.local"
	for _, tc := range []struct {
		query string
		code  int
		has   []string
	}{
		{"", 200, []string{
			c + "::observability_name::" + c + "\n",
			c + "::default_priority::max_connections::1024\n",
			c + "::default_priority::max_retries::3\n",
			c + "::added_via_api::true\n",
			c + "::envoy://connect_originate/10.0.0.1:9080::rq_total::5\n",
			c + "::envoy://connect_originate/10.0.0.1:9080::health_flags::healthy\n",
			c + "::10.0.0.2:9080::health_flags::/failed_outlier_check\n",
			c + "::10.0.0.2:9080::weight::2\n",
			c + "::10.0.0.2:9080::success_rate::-1\n",
		}},
		{"format=json", 200, []string{`"cluster_statuses"`, `"eds_health_status": "HEALTHY"`, `"failed_outlier_check": true`,
			`"server_listener_name": "connect_originate"`, `"endpoint_id": "10.0.0.1:9080"`, `"added_via_api": true`}},
		{"format=yaml", 400, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := do(t, h, "GET", "/clusters?"+tc.query)
			if code != tc.code {
				t.Fatalf("%d %s", code, body)
			}
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in\n%s", s, body)
				}
			}
			if tc.query == "format=json" {
				var cs adminv3.Clusters
				if err := protojson.Unmarshal([]byte(body), &cs); err != nil || len(cs.GetClusterStatuses()[0].GetHostStatuses()) != 2 {
					t.Errorf("does not parse back as admin.v3.Clusters: %v", err)
				}
			}
		})
	}
}

func TestHealthFlags(t *testing.T) {
	for _, tc := range []struct {
		h    *adminv3.HostHealthStatus
		want string
	}{
		{nil, "healthy"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY}, "healthy"},
		{&adminv3.HostHealthStatus{FailedOutlierCheck: true}, "/failed_outlier_check"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_UNHEALTHY, FailedActiveHealthCheck: true}, "/failed_active_hc/failed_eds_health"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_DRAINING}, "/eds_status_draining"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_DEGRADED}, "/degraded_eds_health"},
	} {
		if got := HealthFlags(tc.h); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestListeners(t *testing.T) {
	h := Handler(Sources{Listeners: func() *adminv3.Listeners {
		return &adminv3.Listeners{ListenerStatuses: []*adminv3.ListenerStatus{
			{Name: "connect_terminate", LocalAddress: sock("10.0.0.5", 15008)},
			{Name: "main_internal", LocalAddress: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
				AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "main_internal"}}}}},
			{Name: "v6", LocalAddress: sock("::1", 80)},
		}}
	}})
	for _, tc := range []struct {
		query, want string
	}{
		{"", "connect_terminate::10.0.0.5:15008\nmain_internal::envoy://main_internal/\nv6::[::1]:80\n"},
		{"format=json", `"name": "connect_terminate"`},
	} {
		code, body := do(t, h, "GET", "/listeners?"+tc.query)
		if code != 200 || !strings.Contains(body, tc.want) {
			t.Errorf("%q: %d %q, want %q", tc.query, code, body, tc.want)
		}
	}
}

func TestStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	rq := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_total"}, []string{"cluster_name"})
	cx := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_cx_total"}, []string{"listener"})
	cds := prometheus.NewCounter(prometheus.CounterOpts{Name: "envoy_cluster_manager_cds_update_success"})
	lds := prometheus.NewCounter(prometheus.CounterOpts{Name: "envoy_listener_manager_lds_update_rejected"})
	istio := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total"}, []string{"reporter", "response_code"})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Buckets: []float64{10, 100}})
	empty := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "waypoint_empty", Buckets: []float64{1}})
	ssl := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_ssl_connection_error"}, []string{"listener"})
	flood := prometheus.NewCounter(prometheus.CounterOpts{Name: "envoy_http2_outbound_control_flood"})
	resets := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_rq_too_many_premature_resets"}, []string{"http_conn_manager_prefix"})
	reg.MustRegister(rq, cx, cds, lds, istio, hist, empty, ssl, flood, resets)
	ssl.WithLabelValues("connect_terminate").Add(5)
	flood.Add(6)
	resets.WithLabelValues("connect_terminate").Add(8)
	rq.WithLabelValues("inbound-vip|9080|http|r").Add(3)
	cx.WithLabelValues("main_internal").Add(2)
	cds.Add(4)
	istio.WithLabelValues("waypoint", "200").Add(7)
	for _, v := range []float64{5, 5, 50, 50} {
		hist.Observe(v)
	}
	h := Handler(Sources{Stats: reg})
	for _, tc := range []struct {
		name, query string
		code        int
		has, hasNo  []string
	}{
		{name: "text", code: 200, has: []string{
			"cluster.inbound-vip|9080|http|r.upstream_rq_total: 3\n",
			"listener.main_internal.downstream_cx_total: 2\n",
			"listener.connect_terminate.ssl.connection_error: 5\n",
			"http2.outbound_control_flood: 6\n",
			"http.connect_terminate.downstream_rq_too_many_premature_resets: 8\n",
			"cluster_manager.cds.update_success: 4\n",
			"listener_manager.lds.update_rejected: 0\n",
			"reporter=.=waypoint;.;response_code=.=200;.;istio_requests_total: 7\n",
			"istio_request_duration_milliseconds: P0(nan,0) P25(nan,5) P50(nan,10) P75(nan,55)",
			"waypoint_empty: No recorded values\n",
		}},
		{name: "filter", query: "filter=^cluster", code: 200, has: []string{"cluster_manager.cds.update_success: 4", "cluster.inbound-vip"},
			hasNo: []string{"listener", "istio_"}},
		{name: "usedonly", query: "usedonly", code: 200, has: []string{"cds.update_success"}, hasNo: []string{"lds.update_rejected", "waypoint_empty"}},
		{name: "json", query: "format=json&filter=cds|duration", code: 200, has: []string{`"name": "cluster_manager.cds.update_success"`, `"value": 4`,
			`"supported_quantiles"`, `"computed_quantiles"`, `"name": "istio_request_duration_milliseconds"`}},
		{name: "counters only", query: "type=Counters", code: 200, hasNo: []string{"istio_request_duration"}},
		{name: "bad regex", query: "filter=(", code: 400},
		{name: "bad format", query: "format=xml", code: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, "GET", "/stats?"+tc.query)
			if code != tc.code {
				t.Fatalf("%d %s", code, body)
			}
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in\n%s", s, body)
				}
			}
			for _, s := range tc.hasNo {
				if strings.Contains(body, s) {
					t.Errorf("%q in\n%s", s, body)
				}
			}
			if tc.query == "format=json&filter=cds|duration" && !json.Valid([]byte(body)) {
				t.Errorf("not JSON: %s", body)
			}
		})
	}
}

func TestLogging(t *testing.T) {
	for _, tc := range []struct {
		name, method, query string
		code                int
		want                string // the waypoint logger's level after
	}{
		{name: "list", method: "GET", code: 200, want: "info"},
		{name: "POST lists too", method: "POST", code: 200, want: "info"},
		{name: "all", method: "POST", query: "level=debug", code: 200, want: "debug"},
		{name: "one", method: "POST", query: "waypoint=warning", code: 200, want: "warning"},
		{name: "warn alias", method: "POST", query: "level=warn", code: 200, want: "warning"},
		{name: "paths", method: "POST", query: "paths=waypoint:trace", code: 200, want: "trace"},
		{name: "off", method: "POST", query: "level=off", code: 200, want: "off"},
		{name: "GET does not change", method: "GET", query: "level=debug", code: 405, want: "info"},
		{name: "unknown logger", method: "POST", query: "nope=debug", code: 400, want: "info"},
		{name: "unknown level", method: "POST", query: "level=loud", code: 400, want: "info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lv := new(slog.LevelVar)
			h := Handler(Sources{Loggers: NewLoggers(map[string]*slog.LevelVar{"waypoint": lv})})
			code, body := do(t, h, tc.method, "/logging?"+tc.query)
			if code != tc.code {
				t.Fatalf("%d %q, want %d", code, body, tc.code)
			}
			if got := LevelName(lv.Level()); got != tc.want {
				t.Errorf("level %s, want %s", got, tc.want)
			}
			if code == 200 && body != "active loggers:\n  waypoint: "+tc.want+"\n" {
				t.Errorf("body %q", body)
			}
		})
	}
}

func TestCertificateDetails(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u, _ := url.Parse("spiffe://cluster.local/ns/ns/sa/waypoint")
	c := &x509.Certificate{SerialNumber: big.NewInt(0x1f2e), URIs: []*url.URL{u}, DNSNames: []string{"w.example"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(36 * time.Hour)}
	d := CertificateDetails(c, "", now)
	if d.GetPath() != "<inline>" || d.GetSerialNumber() != "1f2e" || d.GetDaysUntilExpiration() != 1 ||
		d.GetSubjectAltNames()[0].GetUri() != u.String() || d.GetSubjectAltNames()[1].GetDns() != "w.example" ||
		!d.GetExpirationTime().AsTime().Equal(c.NotAfter) || !d.GetValidFrom().AsTime().Equal(c.NotBefore) {
		t.Errorf("%v", d)
	}
	if d := CertificateDetails(c, "/etc/certs/cert-chain.pem", now.Add(48*time.Hour)); d.GetDaysUntilExpiration() != 0 || d.GetPath() != "/etc/certs/cert-chain.pem" {
		t.Errorf("expired: %v", d)
	}
	h := Handler(Sources{Certs: func() *adminv3.Certificates {
		return &adminv3.Certificates{Certificates: []*adminv3.Certificate{{CertChain: []*adminv3.CertificateDetails{d}}}}
	}})
	if code, body := do(t, h, "GET", "/certs"); code != 200 || !strings.Contains(body, `"days_until_expiration": "1"`) ||
		!strings.Contains(body, `"uri": "spiffe://cluster.local/ns/ns/sa/waypoint"`) {
		t.Errorf("/certs: %d %s", code, body)
	}
}

func TestMemory(t *testing.T) {
	m := Memory(&runtime.MemStats{HeapAlloc: 10, HeapSys: 100, HeapIdle: 60, HeapReleased: 20, MCacheInuse: 3, Sys: 200})
	if m.Allocated != 10 || m.HeapSize != 100 || m.PageheapUnmapped != 20 || m.PageheapFree != 40 || m.TotalThreadCache != 3 || m.TotalPhysicalBytes != 180 {
		t.Errorf("%v", m)
	}
	code, body := do(t, Handler(Sources{}), "GET", "/memory")
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 {
		t.Fatalf("%d %v", code, err)
	}
	for _, k := range []string{"allocated", "heap_size", "pageheap_unmapped", "pageheap_free", "total_thread_cache", "total_physical_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %s in %s", k, body)
		}
	}
}

func TestHelpAndMissingSources(t *testing.T) {
	h := Handler(Sources{})
	for _, path := range []string{"/help", "/"} {
		code, body := do(t, h, "GET", path)
		if code != 200 || !strings.Contains(body, "/config_dump: dump current Envoy configs") || !strings.Contains(body, "/quitquitquit: exit the server (POST)") {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	for _, path := range []string{"/config_dump", "/clusters", "/listeners", "/stats", "/certs", "/logging"} {
		if code, _ := do(t, h, "GET", path); code != 404 {
			t.Errorf("%s without a source: %d, want 404", path, code)
		}
	}
	if code, _ := do(t, h, "GET", "/nothing"); code != 404 {
		t.Errorf("/nothing: %d", code)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// The reviews mesh of istiod's fixture (../shared/istiod/reviews), on
// 127.0.N.0/24 with N in 60-64 (this file's tests' range):
//
//	127.0.N.5:15008   the waypoint (admin :15000, metrics :15020)
//	127.0.N.10        the reviews VIP, ports 9080 (HTTP), 9090 (gRPC), 9300 (TCP), with Dubbo (reviewsOptions.Dubbo)
//	                  20880 (Dubbo, the HTTP chain's RBAC filters in dubbo_filters) and 20881 (Dubbo behind the
//	                  TCP chain's network RBAC): only ever an HBONE :authority
//	127.0.N.11        reviews-v1: HTTP :9080, gRPC :9090, TCP echo :9300, a Dubbo provider :20880 (with Dubbo);
//	                  hbone serve :15008 as default/reviews
//	127.0.N.12        reviews-v2: the same
//	127.0.N.13        an endpoint nobody serves (connect failure)
//	127.0.N.20:4317   the OTLP collector the test starts (plaintext gRPC)
//	127.0.N.1:2IPPP   hbone connect sources: identity I (1 productpage, 2 ratings, 3 monitoring/prometheus)
//	                  to port 9PPP of the VIP, each with its workload's baggage
//
// The waypoint's config is written by hand in istiod's layout (loading
// istiod's whole xDS is another issue), with the fixture's RBAC filters
// copied in verbatim from its listeners.json, and the istio metadata of
// its clusters and endpoints.
type reviewsEnv struct {
	env
	opts    reviewsOptions
	pods    map[string]*reviewsPod
	sources map[string]string // "identity/port" -> listen address
}

// reviewsOptions choose what the config turns on.
type reviewsOptions struct {
	// AccessLogDir, when set, gets access.log (Istio's text format) and,
	// unless TextLogOnly, access.json (a JSON format).
	AccessLogDir string
	TextLogOnly  bool
	// Tracing is the random sampling percentage; 0 writes no tracing.
	Tracing float64
	// NoRBAC leaves the RBAC filters out (the router alone); NoTCPRBAC
	// only the TCP chain's (istiod's refuse every connection).
	NoRBAC, NoTCPRBAC bool
	// Dubbo adds the Dubbo ports, providers and cluster, and with
	// AccessLogDir main_internal's access_log (dubbo.json: a line per
	// Dubbo call); the ALLOW filter of every chain then has one more
	// policy, DubboPolicy.
	Dubbo bool
	// Sources are the "identity/port" sources to start.
	Sources []string
	// WaypointArgs are extra flags for the waypoint.
	WaypointArgs []string
}

// identities of the mesh, with the baggage their ztunnel sends.
var reviewsIdentities = []struct {
	name, ns, sa, baggage string
}{
	{"productpage", "default", "productpage", "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1"},
	{"ratings", "default", "ratings", "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=ratings-v1,service.name=ratings,service.version=v1"},
	{"prometheus", "monitoring", "prometheus", "k8s.cluster.name=Kubernetes,k8s.namespace.name=monitoring,k8s.deployment.name=prometheus,service.name=prometheus,service.version=v2"},
}

func reviewsID(ns, sa string) spiffe.ID {
	return spiffe.ID{TrustDomain: trustDomain, Namespace: ns, ServiceAccount: sa}
}

func (e *reviewsEnv) source(identity string, port int) string {
	addr, ok := e.sources[fmt.Sprintf("%s/%d", identity, port)]
	if !ok {
		e.t.Fatalf("no source %s/%d", identity, port)
	}
	return addr
}

func (e *reviewsEnv) metricsURL() string { return "http://" + e.ip(5) + ":15020/stats/prometheus" }

func newReviewsEnv(t *testing.T, netN int, opts reviewsOptions) *reviewsEnv {
	t.Helper()
	e := &reviewsEnv{env: env{t: t, net: netN, dir: t.TempDir()}, opts: opts, pods: map[string]*reviewsPod{}, sources: map[string]string{}}
	ids := []spiffe.ID{sa("waypoint"), sa("reviews")}
	for _, id := range reviewsIdentities {
		ids = append(ids, reviewsID(id.ns, id.sa))
	}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, TrustDomain: trustDomain, IDs: ids}); err != nil {
		t.Fatal(err)
	}
	e.config = filepath.Join(e.dir, "waypoint.yaml")
	if err := os.WriteFile(e.config, []byte(e.bootstrap()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		host int
		name string
	}{{11, "reviews-v1"}, {12, "reviews-v2"}} {
		e.pods[p.name] = startReviewsPod(t, e.ip(p.host), p.name)
		if opts.Dubbo {
			prov, err := dubbotest.StartProvider(e.ip(p.host)+":20880", p.name, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(prov.Kill)
			e.pods[p.name].dubbo = prov
		}
		e.startHBONEServe(p.host, "reviews")
	}
	e.waypoint = startProc(t, "waypoint", bins.waypoint, append([]string{"run", "--config", e.config, "--cert-dir", e.certDir("waypoint"),
		"--hbone-addr", e.hboneAddr(), "--admin-addr", e.ip(5) + ":15000", "--metrics-addr", e.ip(5) + ":15020"}, opts.WaypointArgs...)...)
	waitHTTP200(t, e.adminURL()+"/healthz/ready")
	t.Cleanup(e.checkWaypointLeaks)
	for _, s := range opts.Sources {
		name, portS, _ := strings.Cut(s, "/")
		var port int
		fmt.Sscan(portS, &port)
		for i, id := range reviewsIdentities {
			if id.name != name {
				continue
			}
			listen := fmt.Sprintf("%s:%d", e.ip(1), 20000+(i+1)*1000+port%1000)
			startProc(t, "hbone-connect-"+s, bins.hbone, "connect", "--listen", listen, "--via", e.hboneAddr(),
				"--authority", fmt.Sprintf("%s:%d", e.ip(10), port), "--cert-dir", certs.IdentityDir(e.dir, reviewsID(id.ns, id.sa)),
				"--peer-identity", sa("waypoint").String(), "--baggage", id.baggage)
			waitTCP(t, listen)
			e.sources[s] = listen
		}
		if e.sources[s] == "" {
			t.Fatalf("unknown source %s", s)
		}
	}
	return e
}

// fixtureRBAC returns, as JSON, the typed_config of each filter named name
// in the fixture's chains whose name starts with chain, in order.
func fixtureRBAC(t *testing.T, chain, name string) []string {
	t.Helper()
	raw, err := os.ReadFile("../xds/testdata/istiod/reviews/listeners.json")
	if err != nil {
		t.Fatal(err)
	}
	type filter struct {
		Name        string          `json:"name"`
		TypedConfig json.RawMessage `json:"typedConfig"`
	}
	var doc struct {
		Resources []struct {
			FilterChains []struct {
				Name    string   `json:"name"`
				Filters []filter `json:"filters"`
			} `json:"filterChains"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range doc.Resources {
		for _, fc := range r.FilterChains {
			if !strings.HasPrefix(fc.Name, chain) {
				continue
			}
			for _, f := range fc.Filters {
				if f.Name == name {
					out = append(out, string(f.TypedConfig))
				}
				var hcm struct {
					HTTPFilters []filter `json:"httpFilters"`
				}
				json.Unmarshal(f.TypedConfig, &hcm)
				for _, hf := range hcm.HTTPFilters {
					if hf.Name == name {
						out = append(out, string(hf.TypedConfig))
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s in the fixture's %s chain", name, chain)
	}
	return out
}

// DubboPolicy is the policy reviewsOptions.Dubbo adds to the ALLOW filter
// of every chain, as istiod writes an AuthorizationPolicy allowing
// default/productpage the paths /reviews.ReviewService/* (any method): a
// Dubbo interface's calls, and the same paths over HTTP and gRPC.
const DubboPolicy = "ns[default]-policy[reviews-dubbo]-rule[0]"

const dubboPolicyJSON = `{"permissions": [{"andRules": {"rules": [{"orRules": {"rules": [{"urlPath": {"path": {"prefix": "/reviews.ReviewService/"}}}]}}]}}],` +
	`"principals": [{"andIds": {"ids": [{"orIds": {"ids": [{"filterState": {"key": "io.istio.peer_principal", "stringMatch": {"exact": "spiffe://cluster.local/ns/default/sa/productpage"}}}]}}]}}]}`

// rbacFilters returns the fixture's RBAC filters of a chain, with
// DubboPolicy in the ALLOW one when the options ask for Dubbo.
func (e *reviewsEnv) rbacFilters(chain string) []string {
	js := fixtureRBAC(e.t, chain, "envoy.filters.http.rbac")
	if !e.opts.Dubbo {
		return js
	}
	for i, f := range js {
		var cfg map[string]any
		if err := json.Unmarshal([]byte(f), &cfg); err != nil {
			e.t.Fatal(err)
		}
		rules := cfg["rules"].(map[string]any)
		if rules["action"] != nil && rules["action"] != "ALLOW" {
			continue
		}
		var pol any
		json.Unmarshal([]byte(dubboPolicyJSON), &pol)
		rules["policies"].(map[string]any)[DubboPolicy] = pol
		out, _ := json.Marshal(cfg)
		js[i] = string(out)
	}
	return js
}

// bootstrap writes the waypoint's config.
func (e *reviewsEnv) bootstrap() string {
	t := e.t
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	hcmFilters := func(chain string) {
		w("          http_filters:")
		if !e.opts.NoRBAC {
			for _, js := range e.rbacFilters(chain) {
				w("          - name: envoy.filters.http.rbac")
				w("            typed_config: %s", js)
			}
		}
		w(`          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}`)
	}
	telemetry := func() {
		if d := e.opts.AccessLogDir; d != "" {
			w("          access_log:")
			w("          - name: envoy.access_loggers.file")
			w(`            typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: %q, log_format: {text_format_source: {inline_string: %q}}}`,
				filepath.Join(d, "access.log"), accesslog.IstioFormat)
		}
		if d := e.opts.AccessLogDir; d != "" && !e.opts.TextLogOnly {
			w("          - name: envoy.access_loggers.file")
			w(`            typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: %q,`, filepath.Join(d, "access.json"))
			w(`              log_format: {json_format: {code: "%%RESPONSE_CODE%%", flags: "%%RESPONSE_FLAGS%%", path: "%%REQ(:PATH)%%", details: "%%RESPONSE_CODE_DETAILS%%",`)
			w(`                peer: "%%DOWNSTREAM_PEER_URI_SAN%%", upstream: "%%UPSTREAM_HOST%%", cluster: "%%UPSTREAM_CLUSTER%%", id: "%%REQ(X-REQUEST-ID)%%", route: "%%ROUTE_NAME%%"}}}`)
		}
		if p := e.opts.Tracing; p > 0 {
			w("          tracing:")
			w("            random_sampling: {value: %v}", p)
			w("            custom_tags:")
			w(`            - {tag: istio.canonical_service, literal: {value: reviews}}`)
			w(`            - {tag: istio.destination_app, value: "%%FILTER_STATE(upstream_peer_obj:FIELD:app)%%"}`)
			w("            provider:")
			w("              name: envoy.tracers.opentelemetry")
			w(`              typed_config: {"@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, grpc_service: {envoy_grpc: {cluster_name: "outbound|4317||otel-collector.istio-system.svc.cluster.local"}}, service_name: waypoint.default}`)
		}
	}
	vip := e.ip(10)
	w("static_resources:")
	w("  listeners:")
	w("  - name: main_internal")
	w("    internal_listener: {}")
	if d := e.opts.AccessLogDir; d != "" && e.opts.Dubbo {
		w("    access_log:")
		w("    - name: envoy.access_loggers.file")
		w(`      typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: %q,`, filepath.Join(d, "dubbo.json"))
		w(`        log_format: {json_format: {code: "%%RESPONSE_CODE%%", dubbo_status: "%%RESP(:DUBBO-STATUS)%%", flags: "%%RESPONSE_FLAGS%%", details: "%%RESPONSE_CODE_DETAILS%%",`)
		w(`          method: "%%REQ(:METHOD)%%", path: "%%REQ(:PATH)%%", protocol: "%%PROTOCOL%%", peer: "%%DOWNSTREAM_PEER_URI_SAN%%", upstream: "%%UPSTREAM_HOST%%",`)
		w(`          cluster: "%%UPSTREAM_CLUSTER%%", route: "%%ROUTE_NAME%%", call: "%%REQ(CALL-ID)%%", destination: "%%FILTER_STATE(upstream_peer_obj:FIELD:workload)%%"}}}`)
	}
	w("    filter_chains:")
	// HTTP.
	w("    - name: inbound-vip|9080|http|reviews.mesh.local")
	w("      filter_chain_match: {prefix_ranges: [{address_prefix: %s, prefix_len: 32}], destination_port: 9080}", vip)
	w("      filters:")
	w("      - name: envoy.filters.network.http_connection_manager")
	w("        typed_config:")
	w(`          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`)
	w("          stat_prefix: inbound_0.0.0.0_9080")
	w("          normalize_path: true")
	w("          server_name: istio-envoy")
	telemetry()
	hcmFilters("inbound-vip|9080|http")
	w("          route_config:")
	w("            name: \"9080\"")
	w("            virtual_hosts:")
	w("            - name: reviews.mesh.local:9080")
	w(`              domains: ["*"]`)
	w("              routes:")
	w("              - {name: slow, match: {prefix: /reviews/slow}, route: {cluster: reviews, timeout: 0.3s, prefix_rewrite: /slow}}")
	w("              - {name: hang, match: {prefix: /reviews/hang}, route: {cluster: reviews, timeout: 0s, prefix_rewrite: /hang}}")
	w("              - {name: dead, match: {prefix: /reviews/dead}, route: {cluster: dead}}")
	w("              - {name: empty, match: {prefix: /reviews/empty}, route: {cluster: empty}}")
	w("              - {name: default, match: {prefix: /, headers: [{name: x-no-route, present_match: true, invert_match: true}]}, route: {cluster: reviews}}")
	// gRPC.
	w("    - name: inbound-vip|9090|http|reviews.mesh.local")
	w("      filter_chain_match: {prefix_ranges: [{address_prefix: %s, prefix_len: 32}], destination_port: 9090}", vip)
	w("      filters:")
	w("      - name: envoy.filters.network.http_connection_manager")
	w("        typed_config:")
	w(`          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`)
	w("          stat_prefix: inbound_0.0.0.0_9090")
	w("          normalize_path: true")
	hcmFilters("inbound-vip|9090|http")
	w("          route_config: {name: \"9090\", virtual_hosts: [{name: reviews.mesh.local:9090, domains: [\"*\"], routes: [{match: {prefix: /}, route: {cluster: reviews-grpc}}]}]}")
	// TCP.
	w("    - name: inbound-vip|9300|tcp|reviews.mesh.local")
	w("      filter_chain_match: {prefix_ranges: [{address_prefix: %s, prefix_len: 32}], destination_port: 9300}", vip)
	w("      filters:")
	if !e.opts.NoRBAC && !e.opts.NoTCPRBAC {
		for _, js := range fixtureRBAC(t, "inbound-vip|9300|tcp", "envoy.filters.network.rbac") {
			w("      - name: envoy.filters.network.rbac")
			w("        typed_config: %s", js)
		}
	}
	w("      - name: envoy.filters.network.tcp_proxy")
	w("        typed_config:")
	w(`          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`)
	w("          stat_prefix: inbound-vip|9300|tcp|reviews.mesh.local")
	w("          cluster: reviews-tcp")
	if d := e.opts.AccessLogDir; d != "" {
		w("          access_log:")
		w(`          - {name: envoy.access_loggers.file, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: %q}}`, filepath.Join(d, "tcp.log"))
	}
	if e.opts.Dubbo {
		e.dubboChains(w, vip)
	}
	w("  clusters:")
	services := `{istio: {services: [{host: reviews.mesh.local, name: reviews.mesh.local, namespace: default}]}}`
	endpoints := func(port int) {
		w("    load_assignment:")
		w("      cluster_name: x")
		w("      endpoints:")
		w("      - lb_endpoints:")
		for i, v := range []string{"v1", "v2"} {
			w("        - endpoint: {address: {socket_address: {address: %s, port_value: %d}}}", e.ip(11+i), port)
			w(`          metadata: {filter_metadata: {istio: {workload: "reviews-%s;default;reviews;%s;Kubernetes"}, waypoint: {identity: %q}}}`, v, v, sa("reviews").String())
		}
	}
	for _, c := range []struct {
		name string
		port int
		h2   bool
	}{{"reviews", 9080, false}, {"reviews-grpc", 9090, true}, {"reviews-tcp", 9300, false}, {"reviews-dubbo", 20880, false}} {
		if c.name == "reviews-dubbo" && !e.opts.Dubbo {
			continue
		}
		w("  - name: %s", c.name)
		w("    connect_timeout: 2s")
		w("    metadata: {filter_metadata: %s}", services)
		if c.h2 {
			w("    typed_extension_protocol_options:")
			w("      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:")
			w(`        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions`)
			w("        explicit_http_config: {http2_protocol_options: {}}")
		}
		endpoints(c.port)
	}
	w("  - name: dead")
	w("    connect_timeout: 1s")
	w("    load_assignment: {cluster_name: dead, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: 9080}}}}]}]}", e.ip(13))
	w("  - name: empty")
	w("    load_assignment: {cluster_name: empty, endpoints: []}")
	w(`  - name: "outbound|4317||otel-collector.istio-system.svc.cluster.local"`)
	w("    connect_timeout: 2s")
	w(`    transport_socket: {name: raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}`)
	w("    typed_extension_protocol_options:")
	w("      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:")
	w(`        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions`)
	w("        explicit_http_config: {http2_protocol_options: {}}")
	w("    load_assignment: {cluster_name: otel, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: 4317}}}}]}]}", e.ip(20))
	return b.String()
}

// reviewsPod is one reviews pod's apps: HTTP on :9080 (HTTP/1.1 and h2c),
// gRPC on :9090, a TCP echo on :9300, and with reviewsOptions.Dubbo a Dubbo
// provider on :20880 answering "<pod>: <method>(<args>)".
type reviewsPod struct {
	name     string
	dubbo    *dubbotest.Provider
	requests atomic.Int64 // HTTP requests seen
	tcpBytes atomic.Int64 // bytes the TCP echo received
	mu       sync.Mutex
	lastTP   map[string]string // traceparent seen, by x-request-id
}

// ServeHTTP answers "<pod> <path>" and names itself and the trace context
// it received in response headers. /slow and /hang answer after 1 s and 3 s.
func (p *reviewsPod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	io.Copy(io.Discard, r.Body)
	tp := r.Header.Get("traceparent")
	p.mu.Lock()
	p.lastTP[r.Header.Get("x-request-id")] = tp
	p.mu.Unlock()
	w.Header().Set("x-pod", p.name)
	w.Header().Set("x-seen-traceparent", tp)
	w.Header().Set("x-seen-b3", r.Header.Get("x-b3-traceid"))
	delay := time.Duration(0)
	switch {
	case strings.HasPrefix(r.URL.Path, "/slow"):
		delay = time.Second
	case strings.HasPrefix(r.URL.Path, "/hang"):
		delay = 3 * time.Second
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	fmt.Fprintf(w, "%s %s", p.name, r.URL.Path)
}

type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (testService) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func startReviewsPod(t *testing.T, ip, name string) *reviewsPod {
	t.Helper()
	p := &reviewsPod{name: name, lastTP: map[string]string{}}
	listen := func(port int) net.Listener {
		ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	var wg sync.WaitGroup
	hs := &http.Server{Handler: h2c.NewHandler(p, &http2.Server{}), ReadHeaderTimeout: 10 * time.Second}
	hln := listen(9080)
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, testService{})
	gln := listen(9090)
	tln := listen(9300)
	wg.Add(3)
	go func() { defer wg.Done(); hs.Serve(hln) }()
	go func() { defer wg.Done(); gs.Serve(gln) }()
	go func() {
		defer wg.Done()
		var cwg sync.WaitGroup
		defer cwg.Wait()
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				defer c.Close()
				n, _ := io.Copy(c, c)
				p.tcpBytes.Add(n)
			}()
		}
	}()
	t.Cleanup(func() {
		hs.Close()
		gs.Stop()
		tln.Close()
		wg.Wait()
	})
	return p
}

// dubboChains writes the Dubbo chains of reviewsOptions.Dubbo: VIP:20880
// with the 9080 chain's RBAC filters (DENY, then ALLOW) in dubbo_filters,
// and VIP:20881 behind the 9300 chain's network RBAC (istiod's, which
// refuses every connection).
func (e *reviewsEnv) dubboChains(w func(string, ...any), vip string) {
	proxy := func(port int, filters []string) {
		w("      - name: envoy.filters.network.dubbo_proxy")
		w("        typed_config:")
		w(`          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy`)
		w("          stat_prefix: inbound-vip|%d|dubbo|reviews.mesh.local", port)
		w(`          route_config: [{name: reviews-dubbo, interface: "*", routes: [{match: {}, route: {cluster: reviews-dubbo}}]}]`)
		if len(filters) == 0 {
			return
		}
		w("          dubbo_filters:")
		for _, js := range filters {
			w("          - name: envoy.filters.http.rbac")
			w("            config: %s", js)
		}
		w("          - name: envoy.filters.dubbo.router")
	}
	w("    - name: inbound-vip|20880|dubbo|reviews.mesh.local")
	w("      filter_chain_match: {prefix_ranges: [{address_prefix: %s, prefix_len: 32}], destination_port: 20880}", vip)
	w("      filters:")
	var rbac []string
	if !e.opts.NoRBAC {
		rbac = e.rbacFilters("inbound-vip|9080|http")
	}
	proxy(20880, rbac)
	w("    - name: inbound-vip|20881|dubbo|reviews.mesh.local")
	w("      filter_chain_match: {prefix_ranges: [{address_prefix: %s, prefix_len: 32}], destination_port: 20881}", vip)
	w("      filters:")
	if !e.opts.NoRBAC && !e.opts.NoTCPRBAC {
		for _, js := range fixtureRBAC(e.t, "inbound-vip|9300|tcp", "envoy.filters.network.rbac") {
			w("      - name: envoy.filters.network.rbac")
			w("        typed_config: %s", js)
		}
	}
	proxy(20881, nil)
}

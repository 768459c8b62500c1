package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// An L7 mesh on 127.0.N.0/24: the waypoint serves HTTP services through
// HttpConnectionManagers.
//
//	127.0.N.11:8080   pod a's HTTP backend (HTTP/1.1 and h2c), 127.0.N.11:15008 its ztunnel
//	127.0.N.12:8080   pod b's, the same
//	127.0.N.11:GRPC   grpc-go's interop server (GRPC = 10000+N), pod a's
//	127.10.N.1:80     service "web": routes below; clusters pod-a (HTTP/1.1 upstream),
//	                  pod-b (HTTP/2 upstream), both, flaky-a
//	127.10.N.2:GRPC   service "grpc": gRPC to the interop server over HTTP/2
//	127.10.N.3:80     service "h2only": HTTP/2 downstream only, routed to pod a (h2spec)
//	127.0.N.1:1800x   hbone connect sources: 18001 -> web, 18002 -> grpc, 18003 -> h2only
type l7env struct {
	env
	pods map[string]*backend
}

func (e *l7env) grpcPort() int { return 10000 + e.net }

// web, grpcSvc and h2only are the source listeners of the three services.
func (e *l7env) web() string     { return e.source(1001) }
func (e *l7env) grpcSvc() string { return e.source(1002) }
func (e *l7env) h2only() string  { return e.source(1003) }

func newL7Env(t *testing.T, netN int, waypointArgs ...string) *l7env {
	t.Helper()
	e := &l7env{env: env{t: t, net: netN, dir: t.TempDir()}, pods: map[string]*backend{}}
	ids := []spiffe.ID{sa("waypoint"), sa("client"), sa("pod-a"), sa("pod-b")}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, TrustDomain: trustDomain, IDs: ids}); err != nil {
		t.Fatal(err)
	}
	e.config = filepath.Join(e.dir, "waypoint.yaml")
	e.writeL7Config("v1")
	for _, pod := range []struct {
		host int
		name string
	}{{11, "pod-a"}, {12, "pod-b"}} {
		e.pods[pod.name] = startHTTPBackend(t, e.ip(pod.host)+":8080", pod.name)
		e.startHBONEServe(pod.host, pod.name)
	}
	startProc(t, "interop-server", tool(t, "interop-server"), "--port", strconv.Itoa(e.grpcPort()))
	waitTCP(t, fmt.Sprintf("%s:%d", e.ip(11), e.grpcPort()))

	args := append([]string{"run", "--config", e.config, "--cert-dir", e.certDir("waypoint"),
		"--hbone-addr", e.hboneAddr(), "--admin-addr", e.ip(5) + ":15000",
		"--metrics-addr", e.ip(5) + ":15020"}, waypointArgs...)
	e.waypoint = startProc(t, "waypoint", bins.waypoint, args...)
	e.sources = map[int]*proc{}
	waitHTTP200(t, e.adminURL()+"/healthz/ready")
	t.Cleanup(e.checkWaypointLeaks)
	for n, authority := range map[int]string{
		1001: e.vip(1) + ":80",
		1002: fmt.Sprintf("%s:%d", e.vip(2), e.grpcPort()),
		1003: e.vip(3) + ":80",
	} {
		e.sources[n] = startProc(t, "hbone-connect-"+authority, bins.hbone, "connect", "--listen", e.source(n),
			"--via", e.hboneAddr(), "--authority", authority, "--cert-dir", e.certDir("client"),
			"--peer-identity", sa("waypoint").String())
		waitTCP(t, e.source(n))
	}
	return e
}

// writeL7Config writes the waypoint's config; version shows in the
// x-config-version response header, so reloads can be seen.
func (e *l7env) writeL7Config(version string) {
	e.writeConfigFrom(strings.ReplaceAll(l7Template, "CONFIG_VERSION", version), e)
}

// GRPCPort is the gRPC service's port, for the template.
func (e *l7env) GRPCPort() int { return e.grpcPort() }

const l7Template = `
static_resources:
  listeners:
  - name: main_internal
    internal_listener: {}
    filter_chains:
    - name: web
      filter_chain_match: {prefix_ranges: [{address_prefix: {{.VIP1}}, prefix_len: 32}], destination_port: 80}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          http_filters:
          - {name: envoy.filters.http.fault, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}}
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            response_headers_to_add: [{header: {key: x-config-version, value: CONFIG_VERSION}}]
            virtual_hosts:
            - name: web
              domains: ["*"]
              routes:
              - match: {prefix: /, headers: [{name: x-forbid, string_match: {exact: "yes"}}]}
                direct_response: {status: 403, body: {inline_string: forbidden here}}
              - match: {prefix: /, headers: [{name: x-pod, string_match: {exact: b}}]}
                route: {cluster: pod-b}
              - match: {prefix: /b/}
                route: {cluster: pod-b, prefix_rewrite: /}
              - match: {prefix: /split/}
                route: {weighted_clusters: {clusters: [{name: pod-a, weight: 80}, {name: pod-b, weight: 20}]}}
              - match: {prefix: /flaky/}
                route: {cluster: flaky-a, retry_policy: {retry_on: 5xx, num_retries: 3}}
              - match: {prefix: /upload/}
                route: {cluster: flaky-a, retry_policy: {retry_on: 5xx, num_retries: 3}}
              - match: {prefix: /per-try/}
                route: {cluster: pod-a, timeout: 5s, retry_policy: {retry_on: 5xx, num_retries: 1, per_try_timeout: 0.3s}}
              - match: {prefix: /slow/}
                route: {cluster: pod-a, timeout: 0.3s}
              - match: {path: /teapot}
                route: {cluster: pod-a}
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    abort: {http_status: 418, percentage: {numerator: 100}}
              - match: {prefix: /}
                route: {cluster: pod-a}
    - name: grpc
      filter_chain_match: {prefix_ranges: [{address_prefix: {{.VIP2}}, prefix_len: 32}], destination_port: {{.GRPCPort}}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: grpc
          http_filters:
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            virtual_hosts:
            - name: grpc
              domains: ["*"]
              routes:
              - match: {prefix: /, headers: [{name: x-forbid, string_match: {exact: "yes"}}]}
                direct_response: {status: 403, body: {inline_string: forbidden here}}
              - match: {prefix: /}
                route: {cluster: grpc, timeout: 0s, max_stream_duration: {grpc_timeout_header_max: 0s}}
    - name: h2only
      filter_chain_match: {prefix_ranges: [{address_prefix: {{.VIP3}}, prefix_len: 32}], destination_port: 80}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h2only
          codec_type: HTTP2
          http_filters:
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: pod-a}}]}
  clusters:
  - name: pod-a
    connect_timeout: 2s
    load_assignment:
      cluster_name: pod-a
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{.PodA}}, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDA}}"}}}}]}]
  - name: flaky-a
    connect_timeout: 2s
    # Envoy allows 3 retries in flight per cluster by default; istiod lifts it.
    circuit_breakers: {thresholds: [{max_retries: 4294967295}]}
    load_assignment:
      cluster_name: flaky-a
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{.PodA}}, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDA}}"}}}}]}]
  - name: pod-b
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: pod-b
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{.PodB}}, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDB}}"}}}}]}]
  - name: grpc
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: grpc
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{.PodA}}, port_value: {{.GRPCPort}}}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDA}}"}}}}]}]
`

// Template fields.
func (e *l7env) VIP1() string { return e.vip(1) }
func (e *l7env) VIP2() string { return e.vip(2) }
func (e *l7env) VIP3() string { return e.vip(3) }
func (e *l7env) PodA() string { return e.ip(11) }
func (e *l7env) PodB() string { return e.ip(12) }
func (e *l7env) IDA() string  { return sa("pod-a").String() }
func (e *l7env) IDB() string  { return sa("pod-b").String() }

// backend is a pod's HTTP app (HTTP/1.1 and h2c). It names itself in the
// x-pod response header and counts requests per path. Paths:
//
//	/flaky/...               503 the first time it sees a request (by x-request-id),
//	                         so half of what it answers is 503 and a retry of
//	                         the same request succeeds
//	/upload/...              always 503
//	/per-try/..., /slow/...  answer after a second
//	POST anything else       echo the body
//	GET anything else        200 "hello from <pod> <path>"
type backend struct {
	name  string
	mu    sync.Mutex
	count map[string]int
	seen  map[string]bool // x-request-ids of /flaky/ requests
	srv   *http.Server
}

func (b *backend) requests(prefix string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for p, c := range b.count {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.count[r.URL.Path]++
	b.mu.Unlock()
	w.Header().Set("x-pod", b.name)
	w.Header().Set("x-seen-proto", r.Proto)
	w.Header().Set("x-seen-path", r.URL.RequestURI())
	body, _ := io.ReadAll(r.Body)
	switch {
	case strings.HasPrefix(r.URL.Path, "/upload/"):
		w.WriteHeader(503)
	case strings.HasPrefix(r.URL.Path, "/flaky/"):
		id := r.Header.Get("x-request-id")
		b.mu.Lock()
		first := !b.seen[id]
		b.seen[id] = true
		b.mu.Unlock()
		if id == "" || first {
			w.WriteHeader(503)
			return
		}
		fmt.Fprintf(w, "hello from %s %s", b.name, r.URL.Path)
	case strings.HasPrefix(r.URL.Path, "/per-try/"), strings.HasPrefix(r.URL.Path, "/slow/"):
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "late answer from %s", b.name)
	case r.Method == http.MethodPost:
		w.Write(body)
	default:
		fmt.Fprintf(w, "hello from %s %s", b.name, r.URL.Path)
	}
}

func startHTTPBackend(t *testing.T, addr, name string) *backend {
	t.Helper()
	b := &backend{name: name, count: map[string]int{}, seen: map[string]bool{}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b.srv = &http.Server{Handler: h2c.NewHandler(b, &http2.Server{}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		b.srv.Close()
		<-done
	})
	return b
}

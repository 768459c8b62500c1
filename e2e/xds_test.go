package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// A mesh configured over xDS, as istiod configures a waypoint, on
// 127.0.N.0/24 (N = 72 or 74):
//
//	127.0.N.2:15012   `waypoint xds serve`: ADS and istiod's CA over TLS (a certificate for
//	                  istiod.istio-system.svc from the dev mesh CA), calls refused without
//	                  the waypoint's service account token
//	127.0.N.5:15008   the waypoint, from a bootstrap with dynamic_resources (admin :15000),
//	                  its certificate from the CA (--ca-addr)
//	127.0.N.11:8080   pod a's HTTP app, 127.0.N.11:15008 its ztunnel (hbone serve); .12 pod b
//	127.0.N.250:80    service "web" (a VIP: never bound)
//	127.0.N.1:18080   hbone connect to web
type xdsEnv struct {
	env
	xdsDir  string
	xdsArgs []string
	xds     *proc
	version int
}

func (e *xdsEnv) xdsAddr() string { return e.ip(2) + ":15012" }
func (e *xdsEnv) webVIP() string  { return e.ip(250) }
func (e *xdsEnv) web() string     { return e.ip(1) + ":18080" }

const xdsToken = "e2e-waypoint-token"

func newXDSEnv(t *testing.T, netN int, delta bool) *xdsEnv {
	t.Helper()
	e := &xdsEnv{env: env{t: t, net: netN, dir: t.TempDir()}}
	ids := []spiffe.ID{sa("client"), sa("pod-a"), sa("pod-b")}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, TrustDomain: trustDomain, IDs: ids,
		ServerNames: []string{"istiod.istio-system.svc"}}); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(e.dir, "tokens")
	token := filepath.Join(e.dir, "istio-token")
	for f, data := range map[string]string{tokens: xdsToken + " default/waypoint\n", token: xdsToken + "\n"} {
		if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(e.dir, "xds")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.xdsDir = dir
	e.push(pushSpec{Version: "v1", Pods: []string{"a", "b"}})
	e.xdsArgs = []string{"xds", "serve", "--dir", dir, "--addr", e.xdsAddr(), "--poll", "20ms",
		"--tls-cert-dir", certs.ServerDir(e.dir, "istiod.istio-system.svc"), "--tokens", tokens, "--ca-dir", e.dir}
	e.startXDS()

	for _, pod := range []struct {
		host int
		name string
	}{{11, "pod-a"}, {12, "pod-b"}} {
		startHTTPBackend(t, e.ip(pod.host)+":8080", pod.name)
		e.startHBONEServe(pod.host, pod.name)
	}
	e.config = filepath.Join(e.dir, "bootstrap.yaml")
	apiType := "GRPC"
	if delta {
		apiType = "DELTA_GRPC"
	}
	e.writeConfigFrom(dynamicBootstrap, map[string]string{"XDS": e.ip(2), "API": apiType,
		"Root": filepath.Join(e.dir, certs.RootCertFile), "Node": e.ip(5)})
	e.waypoint = startProc(t, "waypoint", bins.waypoint, "run", "--config", e.config,
		"--ca-addr", e.xdsAddr(), "--xds-root-cert", filepath.Join(e.dir, certs.RootCertFile), "--xds-token-file", token,
		"--node-namespace", "default", "--node-service-account", "waypoint",
		"--hbone-addr", e.hboneAddr(), "--admin-addr", e.ip(5)+":15000", "--metrics-addr", e.ip(5)+":15020")
	waitHTTP200(t, e.adminURL()+"/healthz/ready")
	t.Cleanup(e.checkWaypointLeaks)
	e.sources = map[int]*proc{1: startProc(t, "hbone-connect-web", bins.hbone, "connect", "--listen", e.web(),
		"--via", e.hboneAddr(), "--authority", e.webVIP()+":80", "--cert-dir", e.certDir("client"),
		"--peer-identity", sa("waypoint").String())}
	waitTCP(t, e.web())
	return e
}

func (e *xdsEnv) startXDS() {
	e.xds = startProc(e.t, "xds-server", bins.waypoint, e.xdsArgs...)
	waitTCP(e.t, e.xdsAddr())
}

// The waypoint's bootstrap: everything comes over ADS from the xds-grpc
// cluster, over TLS checked against the mesh root for istiod's name,
// presenting the waypoint's certificate.
const dynamicBootstrap = `
node: {id: "waypoint~{{.Node}}~waypoint-e2e.default~default.svc.cluster.local", cluster: Kubernetes}
dynamic_resources:
  lds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 10s}
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 10s}
  ads_config: {api_type: {{.API}}, transport_api_version: V3, set_node_on_first_message_only: true, grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    load_assignment: {cluster_name: xds-grpc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{.XDS}}, port_value: 15012}}}}]}]}
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
          tls_certificate_sds_secret_configs: [{name: default}]
          validation_context: {trusted_ca: {filename: "{{.Root}}"}}
`

// pushSpec is one config the xDS server serves: the route's version (in
// the x-config-version response header), the pods of web's endpoints, and
// optionally a listener that does not validate.
type pushSpec struct {
	Version string
	Pods    []string // "a", "b"
	Bad     bool
	VIP     string
	Net     int
}

// push writes the resource files; the server serves them within its poll.
func (e *xdsEnv) push(p pushSpec) {
	e.t.Helper()
	p.VIP, p.Net = e.webVIP(), e.net
	for name, tmpl := range map[string]string{"listeners.json": xdsListeners, "routes.json": xdsRoutes,
		"clusters.json": xdsClusters, "endpoints.json": xdsEndpoints} {
		var b bytes.Buffer
		if err := template.Must(template.New(name).Parse(tmpl)).Execute(&b, p); err != nil {
			e.t.Fatal(err)
		}
		tmp := filepath.Join(e.xdsDir, "."+name)
		if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
			e.t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(e.xdsDir, name)); err != nil {
			e.t.Fatal(err)
		}
	}
}

const xdsListeners = `{"resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
 "name": "main_internal", "internalListener": {},
 "filterChains": [{"name": "web",
  "filterChainMatch": {"prefixRanges": [{"addressPrefix": "{{.VIP}}", "prefixLen": 32}], "destinationPort": 80},
  "filters": [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {
   "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
   "statPrefix": "web",
   {{- if .Bad}} "localReplyConfig": {"mappers": [{"filter": {"notHealthCheckFilter": {}}, "statusCode": 404}]},{{end}}
   "rds": {"routeConfigName": "web", "configSource": {"ads": {}, "resourceApiVersion": "V3"}},
   "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}]}
`

const xdsRoutes = `{"resources": [{"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
 "name": "web",
 "responseHeadersToAdd": [{"header": {"key": "x-config-version", "value": "{{.Version}}"}}],
 "virtualHosts": [{"name": "web", "domains": ["*"], "routes": [
  {"match": {"prefix": "/"}, "route": {"cluster": "web", "retryPolicy": {"retryOn": "connect-failure,refused-stream,reset", "numRetries": 2}}}]}]}]}
`

const xdsClusters = `{"resources": [{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
 "name": "web", "type": "EDS", "connectTimeout": "2s", "lbPolicy": "LEAST_REQUEST",
 "edsClusterConfig": {"serviceName": "web", "edsConfig": {"ads": {}, "resourceApiVersion": "V3"}}}]}
`

const xdsEndpoints = `{"resources": [{"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
 "clusterName": "web", "endpoints": [{"lbEndpoints": [
 {{- range $i, $p := .Pods}}{{if $i}},{{end}}
  {"endpoint": {"address": {"socketAddress": {"address": "127.0.{{$.Net}}.{{if eq $p "a"}}11{{else}}12{{end}}", "portValue": 8080}}},
   "metadata": {"filterMetadata": {"waypoint": {"identity": "spiffe://cluster.local/ns/default/sa/pod-{{$p}}"}}}}
 {{- end}}]}]}]}
`

// fortioUntilStopped runs fortio load (at most 2 minutes) until stop is
// called, which interrupts it (fortio then reports what it did) and
// returns its result.
func fortioUntilStopped(t *testing.T, args ...string) (stop func() fortioResult) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "result.json")
	cmd := exec.Command(tool(t, "fortio"), append([]string{"load", "-quiet", "-json", out, "-t", "120s"}, args...)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() fortioResult {
		t.Helper()
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("fortio %v: %v\n%s", args, err, log.String())
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var r fortioResult
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// waitVersion probes web until the answer carries version and, when pod
// is set, comes from that pod.
func (e *xdsEnv) waitVersion(c *http.Client, version, pod string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := c.Get("http://" + e.web() + "/probe")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("x-config-version") == version && (pod == "" || resp.Header.Get("x-pod") == "pod-"+pod) {
				return
			}
		}
		if time.Now().After(deadline) {
			got := "error " + fmt.Sprint(err)
			if err == nil {
				got = resp.Header.Get("x-config-version") + " from " + resp.Header.Get("x-pod")
			}
			e.t.Fatalf("config %s (pod %q) not in force within %v: last answer %s", version, pod, within, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Acceptance 2 of issue 7: 100 pushes changing routes and endpoints under
// fortio load, no request failing; then a push that does not validate is
// NACKed naming the resource and field while traffic flows on the old
// config.
func TestXDSPushesUnderLoad(t *testing.T) {
	t.Parallel()
	e := newXDSEnv(t, 72, false)
	c := httpClient()
	e.waitVersion(c, "v1", "", 10*time.Second)
	waitLog(t, e.waypoint, "istioca: workload certificate issued", "spiffe://cluster.local/ns/default/sa/waypoint")

	stopLoad := fortioUntilStopped(t, "-qps", "200", "-c", "4", "http://"+e.web()+"/load")
	loadStart := time.Now()
	time.Sleep(time.Second)
	start := time.Now()
	sets := [][]string{{"a"}, {"b"}, {"a", "b"}}
	for i := 1; i <= 100; i++ {
		v := fmt.Sprintf("v%d", i+1)
		pods := sets[i%3]
		e.push(pushSpec{Version: v, Pods: pods})
		want := ""
		if len(pods) == 1 {
			want = pods[0]
		}
		e.waitVersion(c, v, want, 10*time.Second)
		time.Sleep(50 * time.Millisecond) // some requests on each config
	}
	t.Logf("100 pushes taken in %v", time.Since(start).Round(time.Millisecond))

	// A listener that does not validate (routes and endpoints as they
	// were): NACKed, the old listener serves.
	e.push(pushSpec{Version: "v101", Pods: sets[100%3], Bad: true})
	waitLog(t, e.waypoint, "config refused (NACK)", `listener \"main_internal\"`, "local_reply_config: not supported yet")
	waitLog(t, e.xds, "xds server: NACK", "local_reply_config: not supported yet")
	// The refusal is counted where Istio's dashboards look, under Envoy's
	// names, on the metrics port.
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrape(t, "http://"+e.ip(5)+":15020/stats/prometheus")
		lds := sumMetric(fams, "envoy_listener_manager_lds_update_rejected", nil)
		if lds == 1 {
			if n := sumMetric(fams, "envoy_listener_manager_lds_update_success", nil); n < 101 {
				t.Errorf("envoy_listener_manager_lds_update_success %v after 101 good pushes", n)
			}
			if n := sumMetric(fams, "envoy_cluster_manager_cds_update_rejected", nil); n != 0 {
				t.Errorf("envoy_cluster_manager_cds_update_rejected %v, want 0", n)
			}
			if n := sumMetric(fams, "waypoint_xds_update_rejected_total", map[string]string{"type_url": "type.googleapis.com/envoy.config.listener.v3.Listener"}); n != 1 {
				t.Errorf("waypoint_xds_update_rejected_total of listeners %v, want 1", n)
			}
			if n := sumMetric(fams, "envoy_control_plane_connected_state", nil); n != 1 {
				t.Errorf("envoy_control_plane_connected_state %v, want 1", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("envoy_listener_manager_lds_update_rejected %v, want 1", lds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 20 {
		resp, _ := getResp(t, c, "http://"+e.web()+"/probe")
		if resp.StatusCode != 200 || resp.Header.Get("x-config-version") != "v101" {
			t.Fatalf("after the NACK: %d from version %q, want 200 from v101", resp.StatusCode, resp.Header.Get("x-config-version"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The next good push is taken.
	e.push(pushSpec{Version: "v102", Pods: []string{"b"}})
	e.waitVersion(c, "v102", "b", 10*time.Second)

	time.Sleep(time.Second)
	// At least 6 s of load, so that the count checked below (1,000 at 200
	// a second) does not depend on how fast the pushes were taken.
	time.Sleep(6*time.Second - time.Since(loadStart))
	r := stopLoad()
	t.Logf("fortio under 100 pushes and a NACK: %d requests at %.0f qps, codes %v", r.DurationHistogram.Count, r.ActualQPS, r.RetCodes)
	if r.errors() != 0 || r.RetCodes["200"] < 1000 {
		t.Errorf("codes %v, want only 200s (200 a second)", r.RetCodes)
	}
}

// Acceptance 3 of issue 7 (in delta xDS): the xDS server killed while
// requests flow; the waypoint keeps serving on the config it has,
// reconnects when the server is back, and takes its next push.
func TestXDSServerRestartUnderLoad(t *testing.T) {
	t.Parallel()
	e := newXDSEnv(t, 74, true)
	c := httpClient()
	e.waitVersion(c, "v1", "", 10*time.Second)

	stopLoad := fortioUntilStopped(t, "-qps", "200", "-c", "4", "http://"+e.web()+"/load")
	loadStart := time.Now()
	time.Sleep(time.Second)
	e.xds.cmd.Process.Kill()
	<-e.xds.done
	waitLog(t, e.waypoint, "xds: stream lost; the last good config keeps serving")
	// While the server is down a push is written; nothing can take it.
	e.push(pushSpec{Version: "v2", Pods: []string{"b"}})
	for range 40 {
		resp, _ := getResp(t, c, "http://"+e.web()+"/probe")
		if resp.StatusCode != 200 || resp.Header.Get("x-config-version") != "v1" {
			t.Fatalf("with the xDS server down: %d from %q, want 200 from v1", resp.StatusCode, resp.Header.Get("x-config-version"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.startXDS()
	e.waitVersion(c, "v2", "b", 45*time.Second) // the back-off has grown while the server was down
	e.push(pushSpec{Version: "v3", Pods: []string{"a"}})
	e.waitVersion(c, "v3", "a", 10*time.Second)

	time.Sleep(time.Second)
	// At least 6 s of load, so that the count checked below (1,000 at 200
	// a second) does not depend on how fast the pushes were taken.
	time.Sleep(6*time.Second - time.Since(loadStart))
	r := stopLoad()
	t.Logf("fortio across an xDS server restart: %d requests at %.0f qps, codes %v", r.DurationHistogram.Count, r.ActualQPS, r.RetCodes)
	if r.errors() != 0 || r.RetCodes["200"] < 1000 {
		t.Errorf("codes %v, want only 200s (200 a second)", r.RetCodes)
	}
	if !strings.Contains(e.waypoint.out.String(), "config applied") {
		t.Errorf("no config applied after the restart")
	}
}

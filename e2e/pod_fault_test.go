package e2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// Fault tests (issue 16): a destination pod killed mid-stream, its
// ztunnel resetting the HBONE connection. They run the L7 mesh of
// l7env_test.go with a third pod, c (127.0.N.13), whose app and ztunnel
// (hbone serve) the test owns, and the config faultTemplate: web's routes
//
//	/c/...        cluster pod-c
//	/c-retry/...  cluster pod-c, retry_on connect-failure, one retry
//	/cb/...       cluster cb (pods c and b), retry_on connect-failure and reset
//	/b/...        cluster pod-b
//
// with a JSON access log (code, flags, upstream) in the test's directory.
// Assertions are on statuses and Envoy's response flags only.

const faultTemplate = `
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
          access_log:
          - name: envoy.access_loggers.file
            typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: "{{.AccessLog}}",
              log_format: {json_format: {code: "%RESPONSE_CODE%", flags: "%RESPONSE_FLAGS%", id: "%REQ(X-REQUEST-ID)%", upstream: "%UPSTREAM_HOST%", details: "%RESPONSE_CODE_DETAILS%"}}}
          http_filters:
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            response_headers_to_add: [{header: {key: x-config-version, value: fault}}]
            virtual_hosts:
            - name: web
              domains: ["*"]
              routes:
              - {match: {prefix: /c/}, route: {cluster: pod-c}}
              - {match: {prefix: /c-retry/}, route: {cluster: pod-c, retry_policy: {retry_on: connect-failure, num_retries: 1}}}
              - {match: {prefix: /cb/}, route: {cluster: cb, retry_policy: {retry_on: "connect-failure,reset", num_retries: 3}}}
              - {match: {prefix: /b/}, route: {cluster: pod-b}}
              - {match: {prefix: /}, route: {cluster: pod-b}}
  clusters:
  - name: pod-b
    connect_timeout: 2s
    load_assignment:
      cluster_name: pod-b
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{.PodB}}, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDB}}"}}}}]}]
  - name: pod-c
    connect_timeout: 2s
    load_assignment:
      cluster_name: pod-c
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: {{.PodC}}, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDC}}"}}}}]}]
  - name: cb
    connect_timeout: 2s
    load_assignment:
      cluster_name: cb
      endpoints: [{lb_endpoints: [
        {endpoint: {address: {socket_address: {address: {{.PodC}}, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDC}}"}}}},
        {endpoint: {address: {socket_address: {address: {{.PodB}}, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "{{.IDB}}"}}}}]}]
`

// faultEnv is an l7env with pod c.
type faultEnv struct {
	*l7env
	AccessLog string
	appC      *hangApp
	ztunnelC  *proc
}

func (e *faultEnv) PodC() string { return e.ip(13) }
func (e *faultEnv) IDC() string  { return sa("pod-c").String() }

func newFaultEnv(t *testing.T, netN int) *faultEnv {
	t.Helper()
	e := &faultEnv{l7env: newL7Env(t, netN)}
	e.AccessLog = filepath.Join(e.dir, "access.json")
	if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, TrustDomain: trustDomain, IDs: []spiffe.ID{sa("pod-c")}}); err != nil {
		t.Fatal(err)
	}
	e.appC = startHangApp(t, e.PodC()+":8080")
	e.startZtunnelC()
	e.writeConfigFrom(faultTemplate, e)
	e.waypoint.cmd.Process.Signal(sighup)
	c := httpClient()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := getResp(t, c, "http://"+e.web()+"/b/probe")
		if resp.Header.Get("x-config-version") == "fault" {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatal("the fault config never took effect")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startZtunnelC starts pod c's ztunnel (hbone serve).
func (e *faultEnv) startZtunnelC() {
	addr := e.PodC() + ":15008"
	e.ztunnelC = startProc(e.t, "hbone-serve-"+addr, bins.hbone, "serve", "--listen", addr, "--cert-dir", e.certDir("pod-c"))
	waitTCP(e.t, addr)
}

// request sends GET path with x-request-id id and returns the status (0
// when the connection failed).
func (e *faultEnv) request(t *testing.T, c *http.Client, path, id string) int {
	t.Helper()
	return e.send(t, c, "GET", path, id)
}

// send is request with method.
func (e *faultEnv) send(t *testing.T, c *http.Client, method, path, id string) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+e.web()+path, nil)
	req.Header.Set("x-request-id", id)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// entry returns the access log line of request id.
func (e *faultEnv) entry(t *testing.T, id string) map[string]any {
	t.Helper()
	lines := waitLogLines(t, e.AccessLog, 1, func(l string) bool { return strings.Contains(l, `"`+id+`"`) })
	if len(lines) != 1 {
		t.Fatalf("%d access log lines for %s", len(lines), id)
	}
	return lines[0]
}

// expect checks a request's status and access log flags; a connection
// termination (UC) is also checked for Envoy's response code details.
func (e *faultEnv) expect(t *testing.T, id string, status, gotStatus int, flags ...string) {
	t.Helper()
	l := e.entry(t, id)
	ok := false
	for _, f := range flags {
		ok = ok || l["flags"] == f || (f == "-" && l["flags"] == nil) // JSON logs "-" as null
	}
	if l["flags"] == "UC" && l["details"] != "upstream_reset_before_response_started{connection_termination}" {
		ok = false
	}
	if gotStatus != status || !ok {
		t.Errorf("%s: status %d, logged %v, want %d with flags %q", id, gotStatus, l, status, flags)
	}
}

// hangApp is pod c's app: requests for .../hang/...  wait until they are
// cancelled (each announced on arrived); others get 200.
type hangApp struct {
	addr    string
	arrived chan string
	mu      sync.Mutex
	srv     *http.Server
	done    chan struct{}
}

func startHangApp(t *testing.T, addr string) *hangApp {
	a := &hangApp{addr: addr, arrived: make(chan string, 16)}
	a.start(t)
	t.Cleanup(a.stop)
	return a
}

func (a *hangApp) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-pod", "pod-c")
		if strings.Contains(r.URL.Path, "/hang/") {
			a.arrived <- r.URL.Path
			<-r.Context().Done()
			return
		}
		fmt.Fprintf(w, "hello from pod-c %s", r.URL.Path)
	}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	a.mu.Lock()
	a.srv, a.done = srv, done
	a.mu.Unlock()
}

// stop kills the app: its listener and every connection close at once.
func (a *hangApp) stop() {
	a.mu.Lock()
	srv, done := a.srv, a.done
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		srv.Close()
		<-done
	}
}

// hang sends method /c/hang/<id> in the background; its status comes on
// the returned channel once the request is at the app.
func (e *faultEnv) hang(t *testing.T, c *http.Client, method, id string) <-chan int {
	t.Helper()
	ch := make(chan int, 1)
	go func() { ch <- e.send(t, c, method, "/c/hang/"+id, id) }()
	select {
	case <-e.appC.arrived:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s never reached pod c", id)
	}
	return ch
}

func TestFaultPodKilledMidStream(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 57)
	c := httpClient()
	if s := e.request(t, c, "/c/warm", "pk-warm"); s != 200 {
		t.Fatalf("pod c before the fault: %d", s)
	}

	// The app dies with a request in flight: its HTTP/1.1 connection ends
	// under it, a connection termination (503 UC), as Envoy says. The
	// request is a POST, which is never sent twice: a GET on a connection
	// that served before could be the app's close of an idle connection
	// and would be resent, as net/http does, and fail to connect (UF).
	inflight := e.hang(t, c, "POST", "pk-inflight")
	e.appC.stop()
	e.expect(t, "pk-inflight", 503, <-inflight, "UC")

	// Pod c's ztunnel refuses new streams (its app is gone): connect
	// failure, and with retries on connect failure, retries exhausted.
	e.expect(t, "pk-next", 503, e.request(t, c, "/c/next", "pk-next"), "UF")
	e.expect(t, "pk-retry", 503, e.request(t, c, "/c-retry/next", "pk-retry"), "UF,URX")
	// The waypoint is fine: the other pod answers, directly and through
	// the cluster of both (the retry goes to pod b).
	e.expect(t, "pk-b", 200, e.request(t, c, "/b/next", "pk-b"), "-")
	for i := range 4 {
		id := fmt.Sprintf("pk-cb-%d", i)
		if s := e.request(t, c, "/cb/next", id); s != 200 {
			t.Errorf("%s: %d through the cluster of both pods, want 200 (retried to pod b)", id, s)
		}
	}

	// The app comes back: pod c answers again through the same ztunnel.
	e.appC.start(t)
	e.expect(t, "pk-back", 200, e.request(t, c, "/c/back", "pk-back"), "-")
}

func TestFaultZtunnelResetsConnection(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 58)
	c := httpClient()
	if s := e.request(t, c, "/c/warm", "zr-warm"); s != 200 {
		t.Fatalf("pod c before the fault: %d", s)
	}

	// Two requests in flight on the waypoint's HBONE connection to pod c's
	// ztunnel, which is killed: the connection is reset under both, a
	// connection termination each (503 UC), as Envoy says. Neither is
	// resent, GETs though they are: the end of the HBONE connection is not
	// the app's close of an idle connection.
	first := e.hang(t, c, "GET", "zr-1")
	second := e.hang(t, c, "GET", "zr-2")
	e.ztunnelC.cmd.Process.Kill()
	<-e.ztunnelC.done
	e.expect(t, "zr-1", 503, <-first, "UC")
	e.expect(t, "zr-2", 503, <-second, "UC")

	// No ztunnel: connect failure; the other pod is unaffected.
	e.expect(t, "zr-down", 503, e.request(t, c, "/c/down", "zr-down"), "UF")
	e.expect(t, "zr-b", 200, e.request(t, c, "/b/down", "zr-b"), "-")

	// The ztunnel is back: the pool opens a new connection.
	e.startZtunnelC()
	e.expect(t, "zr-back", 200, e.request(t, c, "/c/back", "zr-back"), "-")
}

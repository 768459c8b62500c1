package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// The binaries under test, built once by TestMain.
var bins struct{ waypoint, hbone string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "waypoint-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/gowaypoint/waypoint/cmd/waypoint", "github.com/gowaypoint/waypoint/cmd/hbone")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	bins.waypoint = filepath.Join(dir, "waypoint")
	bins.hbone = filepath.Join(dir, "hbone")
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		code = checkTestProcessLeaks()
	}
	os.Exit(code)
}

// A mesh of real processes on 127.0.<net>.0/24, as in a cluster:
//
//	127.0.N.5:15008   the waypoint (admin on 127.0.N.5:15000)
//	127.0.N.11        pod a: backends on :7000 (echo) and :7001 (sink), hbone serve on :15008
//	127.0.N.12        pod b: the same
//	127.0.N.13        an endpoint nobody serves (connect failure)
//	127.0.N.14        an impostor: hbone serve presenting identity "impostor" where pod-c is expected
//	127.10.N.1        service a's VIP (ports 7000, 7001); 127.10.N.2 service b's;
//	127.10.N.3:7000   service "dead" (endpoint .13); 127.10.N.4:7000 service "impostor" (endpoint .14)
//	127.0.N.1:1700x   hbone connect sources: 17001 -> a:7000, 17002 -> a:7001, 17003 -> b:7000, 17004 -> b:7001
type env struct {
	t        *testing.T
	net      int
	dir      string // certificates and config
	waypoint *proc
	sources  map[int]*proc // hbone connect processes by source number
	config   string
}

func (e *env) ip(host int) string  { return fmt.Sprintf("127.0.%d.%d", e.net, host) }
func (e *env) vip(host int) string { return fmt.Sprintf("127.10.%d.%d", e.net, host) }
func (e *env) hboneAddr() string   { return e.ip(5) + ":15008" }
func (e *env) adminURL() string    { return "http://" + e.ip(5) + ":15000" }
func (e *env) source(n int) string { return fmt.Sprintf("%s:%d", e.ip(1), 17000+n) }

const trustDomain = "cluster.local"

func sa(name string) spiffe.ID {
	return spiffe.ID{TrustDomain: trustDomain, Namespace: "default", ServiceAccount: name}
}

// newEnv writes certificates and config and starts every process.
// waypointArgs are extra flags for the waypoint.
func newEnv(t *testing.T, netN int, waypointArgs ...string) *env {
	t.Helper()
	e := &env{t: t, net: netN, dir: t.TempDir()}
	ids := []spiffe.ID{sa("waypoint"), sa("client"), sa("pod-a"), sa("pod-b"), sa("pod-c"), sa("impostor")}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, TrustDomain: trustDomain, IDs: ids}); err != nil {
		t.Fatal(err)
	}
	e.config = filepath.Join(e.dir, "waypoint.yaml")
	e.writeConfig(bootstrapTemplate)

	for _, pod := range []struct {
		host int
		name string
	}{{11, "pod-a"}, {12, "pod-b"}} {
		startBackends(t, e.ip(pod.host), pod.name)
		e.startHBONEServe(pod.host, pod.name)
	}
	e.startHBONEServe(14, "impostor")
	args := append([]string{"run", "--config", e.config, "--cert-dir", e.certDir("waypoint"),
		"--hbone-addr", e.hboneAddr(), "--admin-addr", e.ip(5) + ":15000",
		"--metrics-addr", e.ip(5) + ":15020"}, waypointArgs...)
	e.waypoint = startProc(t, "waypoint", bins.waypoint, args...)
	e.sources = map[int]*proc{}
	waitHTTP200(t, e.adminURL()+"/healthz/ready")
	t.Cleanup(e.checkWaypointLeaks)
	for n, authority := range map[int]string{1: e.vip(1) + ":7000", 2: e.vip(1) + ":7001", 3: e.vip(2) + ":7000", 4: e.vip(2) + ":7001"} {
		e.sources[n] = startProc(t, "hbone-connect-"+authority, bins.hbone, "connect", "--listen", e.source(n),
			"--via", e.hboneAddr(), "--authority", authority, "--cert-dir", e.certDir("client"),
			"--peer-identity", sa("waypoint").String())
		waitTCP(t, e.source(n))
	}
	return e
}

func (e *env) certDir(name string) string { return certs.IdentityDir(e.dir, sa(name)) }

func (e *env) startHBONEServe(host int, identity string) {
	addr := e.ip(host) + ":15008"
	startProc(e.t, "hbone-serve-"+addr, bins.hbone, "serve", "--listen", addr, "--cert-dir", e.certDir(identity))
	waitTCP(e.t, addr)
}

func (e *env) writeConfig(tmpl string) { e.writeConfigFrom(tmpl, e) }

// writeConfigFrom renders the config template with data's fields.
func (e *env) writeConfigFrom(tmpl string, data any) {
	e.t.Helper()
	var b bytes.Buffer
	if err := template.Must(template.New("bootstrap").Parse(tmpl)).Execute(&b, data); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.config, b.Bytes(), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// The waypoint's config: main_internal picks a chain by the classic
// filter_chain_match on destination IP and port.
const bootstrapTemplate = `
static_resources:
  listeners:
  - name: main_internal
    internal_listener: {}
    filter_chains:
{{- range $c := .Chains}}
    - name: {{$c.Name}}
      filter_chain_match:
        prefix_ranges: [{address_prefix: {{$c.VIP}}, prefix_len: 32}]
        destination_port: {{$c.Port}}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {{$c.Name}}
          cluster: {{$c.Name}}
{{- end}}
  clusters:
{{- range $c := .Chains}}
  - name: {{$c.Name}}
    connect_timeout: 2s
    load_assignment:
      cluster_name: {{$c.Name}}
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{$c.PodIP}}, port_value: {{$c.Port}}}}}
          metadata: {filter_metadata: {waypoint: {identity: "{{$c.Identity}}"}}}
{{- end}}
`

type chain struct {
	Name, VIP, PodIP, Identity string
	Port                       int
}

// Chains of the config: service a and b on two ports each, and the two
// failing services.
func (e *env) Chains() []chain {
	return []chain{
		{"a-echo", e.vip(1), e.ip(11), sa("pod-a").String(), 7000},
		{"a-sink", e.vip(1), e.ip(11), sa("pod-a").String(), 7001},
		{"b-echo", e.vip(2), e.ip(12), sa("pod-b").String(), 7000},
		{"b-sink", e.vip(2), e.ip(12), sa("pod-b").String(), 7001},
		{"dead", e.vip(3), e.ip(13), sa("pod-c").String(), 7000},
		{"impostor", e.vip(4), e.ip(14), sa("pod-c").String(), 7000},
	}
}

// startBackends runs a pod's two apps: an echo server on :7000 and, on
// :7001, a sink that reads to EOF, then answers "<pod> <sha256> <bytes>".
func startBackends(t *testing.T, ip, pod string) {
	t.Helper()
	serve := func(port string, handle func(c *net.TCPConn)) {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { ln.Close(); wg.Wait() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					handle(c.(*net.TCPConn))
				}()
			}
		}()
	}
	serve("7000", func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
	serve("7001", func(c *net.TCPConn) {
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%s %s %d\n", pod, hex.EncodeToString(h.Sum(nil)), n)
	})
}

// proc is a process under test; its output is kept and shown when the
// test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits, then kills.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitHTTP200(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leakMarkers are functions that belong to a stream; once every client
// connection is closed, no goroutine of the waypoint may be in them.
var leakMarkers = regexp.MustCompile(`proxy/relay\.|proxy/tcpproxy\.|proxy/inbound\.|proxy/hbone\.\(\*Server\)\.serveStream`)

// checkWaypointLeaks reads the waypoint's goroutines from its pprof
// endpoint after a test and fails if a stream's goroutine outlived it.
func (e *env) checkWaypointLeaks() {
	select {
	case <-e.waypoint.done:
		return // the test stopped it
	default:
	}
	deadline := time.Now().Add(10 * time.Second)
	var leaked []string
	for {
		leaked = leaked[:0]
		resp, err := http.Get(e.adminURL() + "/debug/pprof/goroutine?debug=2")
		if err != nil {
			e.t.Errorf("leak check: %v", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, g := range strings.Split(string(body), "\n\n") {
			if leakMarkers.MatchString(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Errorf("waypoint goroutine leak: %d stream goroutines left after the test; first:\n%s", len(leaked), leaked[0])
			if os.Getenv("WAYPOINT_E2E_DUMP") != "" {
				e.t.Logf("all goroutines:\n%s", body)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countEstablished counts the established TCP connections that process p
// opened to addr: the lines of /proc/net/tcp whose remote end is addr and
// whose socket is one of p's file descriptors.
func countEstablished(t *testing.T, p *proc, addr string) int {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := ap.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	inodes := map[string]bool{}
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[2] == want && fields[3] == "01" && inodes[fields[9]] {
			n++
		}
	}
	return n
}

// checkTestProcessLeaks fails the run if the test process itself left
// goroutines behind.
func checkTestProcessLeaks() int {
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goroutine leak in the test process:", err)
		return 1
	}
	return 0
}

var sighup = syscall.SIGHUP

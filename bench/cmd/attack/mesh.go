package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// The harness's loopback plan, apart from the load harness's 127.0.40.0/24:
//
//	127.0.43.11  the pod: `hbone serve` :15008 and the harness's backend :8080
//	127.0.43.20  the waypoint: HBONE :15008, admin :15000, metrics :15020
//	127.0.43.30  the legitimate client's source address
//	127.0.43.100 the HTTP service's VIP (only ever an HBONE :authority)
//	127.0.44.1-127.0.47.254 the attackers' source addresses (spread to keep
//	             clear of ephemeral port exhaustion)
const (
	ipPod      = "127.0.43.11"
	ipWaypoint = "127.0.43.20"
	ipLegit    = "127.0.43.30"
	ipVIP      = "127.0.43.100"

	portHBONE   = 15008
	portAdmin   = 15000
	portMetrics = 15020
	portHTTP    = 8080

	trustDomain = "cluster.local"
	namespace   = "bench"
	saWaypoint  = "waypoint"
	saClient    = "client"
	saPod       = "pod"
	saAttacker  = "attacker"
	saAttacker2 = "attacker2"
	saForeign   = "intruder" // issued by another CA
)

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

func spiffeID(sa string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, namespace, sa)
}

// attackerAddr is the i-th attacker source address, cycling over
// 127.0.44.1 to 127.0.47.254.
func attackerAddr(i int) *net.TCPAddr {
	i %= 4 * 254
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(44+i/254), byte(1+i%254))}
}

// dialFrom connects to addr from the i-th attacker address.
func dialFrom(ctx context.Context, i int, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: attackerAddr(i), Timeout: 5 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// closeHard closes c with a reset: no TIME_WAIT on the attacker's side.
func closeHard(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// writeCerts makes the mesh's CA and identities, and a second CA's
// identity for the bad-certificate attack, with `waypoint certs`.
func writeCerts(waypoint, dir string) error {
	args := []string{"certs", "--out", dir}
	for _, sa := range []string{saWaypoint, saClient, saPod, saAttacker, saAttacker2} {
		args = append(args, namespace+"/"+sa)
	}
	if b, err := exec.Command(waypoint, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("waypoint certs: %v\n%s", err, b)
	}
	if b, err := exec.Command(waypoint, "certs", "--out", filepath.Join(dir, "foreign"), namespace+"/"+saForeign).CombinedOutput(); err != nil {
		return fmt.Errorf("waypoint certs (foreign CA): %v\n%s", err, b)
	}
	return nil
}

func certDir(certs, sa string) string { return filepath.Join(certs, namespace, sa) }

// clientTLS is the HBONE client configuration of a mesh identity,
// expecting the waypoint's.
func clientTLS(dir, sa string) (*tls.Config, func(), error) {
	src, err := certs.NewSource(certDir(dir, sa), certs.SourceOptions{})
	if err != nil {
		return nil, nil, err
	}
	id, err := spiffe.Parse(spiffeID(saWaypoint))
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	return src.ClientTLSConfig(certs.PeerExpectation{ID: id}), func() { src.Close() }, nil
}

// foreignTLS presents the other CA's certificate and, as an attacker
// would, does not verify the waypoint's.
func foreignTLS(dir string) (*tls.Config, error) {
	d := certDir(filepath.Join(dir, "foreign"), saForeign)
	cert, err := tls.LoadX509KeyPair(filepath.Join(d, "cert-chain.pem"), filepath.Join(d, "key.pem"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13,
	}, nil
}

// waypointConfig is the waypoint's bootstrap: main_internal's HTTP chain
// for the VIP, routed to the pod over HBONE.
const waypointConfig = `static_resources:
  listeners:
  - name: main_internal
    internal_listener: {}
    filter_chains:
    - name: http
      filter_chain_match: {prefix_ranges: [{address_prefix: ` + ipVIP + `, prefix_len: 32}], destination_port: 80}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: hbone-http
          http_filters:
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            virtual_hosts:
            - {name: pod, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: pod-http}}]}
  clusters:
  - name: pod-http
    connect_timeout: 2s
    circuit_breakers: {thresholds: [{max_connections: 4294967295, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295}]}
    load_assignment:
      cluster_name: pod-http
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: ` + ipPod + `, port_value: 8080}}}, metadata: {filter_metadata: {waypoint: {identity: "SPIFFE_POD"}}}}]}]
`

// process is a started child: its own process group, killed with the
// harness (parent-death signal), output to a file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func start(name, logPath string, env []string, path string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the group, SIGKILL after 3 s, and waits.
func (p *process) stop() {
	syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// logLines counts the lines of the process's output so far.
func (p *process) logLines() int {
	b, _ := os.ReadFile(p.logPath)
	return bytes.Count(b, []byte{'\n'})
}

// mesh is one attack's world: the pod (backend and hbone serve) and the
// waypoint, fresh for each attack.
type mesh struct {
	waypoint, pod *process
	backend       *http.Server
	dir           string
}

func startMesh(ctx context.Context, o *options, dir string) (*mesh, error) {
	m := &mesh{dir: dir}
	ln, err := net.Listen("tcp", hostPort(ipPod, portHTTP))
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	m.backend = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})}
	go m.backend.Serve(ln)
	conf := filepath.Join(dir, "waypoint.yaml")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(waypointConfig, "SPIFFE_POD", spiffeID(saPod))), 0o644); err != nil {
		m.stop()
		return nil, err
	}
	if m.pod, err = start("hbone-serve", filepath.Join(dir, "pod.log"), nil, o.hbone, "serve",
		"--listen", hostPort(ipPod, portHBONE), "--cert-dir", certDir(o.certs, saPod), "--log-level", "warn"); err != nil {
		m.stop()
		return nil, err
	}
	if err := waitTCP(ctx, hostPort(ipPod, portHBONE), m.pod); err != nil {
		m.stop()
		return nil, err
	}
	args := []string{"run", "--config", conf, "--cert-dir", certDir(o.certs, saWaypoint),
		"--hbone-addr", hostPort(ipWaypoint, portHBONE), "--admin-addr", hostPort(ipWaypoint, portAdmin),
		"--metrics-addr", hostPort(ipWaypoint, portMetrics), "--drain-timeout", "1s",
		"--max-heap-bytes", strconv.FormatUint(o.maxHeap, 10)}
	if m.waypoint, err = start("waypoint", filepath.Join(dir, "waypoint.log"), o.waypointEnv, o.waypointBin, args...); err != nil {
		m.stop()
		return nil, err
	}
	if err := waitTCP(ctx, hostPort(ipWaypoint, portHBONE), m.waypoint); err != nil {
		m.stop()
		return nil, err
	}
	if err := waitTCP(ctx, hostPort(ipWaypoint, portAdmin), m.waypoint); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

func (m *mesh) stop() {
	if m.waypoint != nil {
		m.waypoint.stop()
	}
	if m.pod != nil {
		m.pod.stop()
	}
	if m.backend != nil {
		m.backend.Close()
	}
}

func waitTCP(ctx context.Context, addr string, p *process) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			b, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.name, addr, b)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not listening on %s after 20 s", p.name, addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rssBytes is a process's resident set (VmRSS).
func rssBytes(pid int) int64 { return procMem(pid).rss }

// memSample is a process's resident set from /proc/PID/status: the whole
// (VmRSS) and its anonymous (RssAnon: heap, stacks, runtime structures)
// and file-backed (RssFile: the binary's code and data pages, clean, that
// the kernel may drop at any time) parts.
type memSample struct{ rss, anon, file int64 }

func procMem(pid int) memSample {
	var m memSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.rss
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			*dst = kb << 10
		}
	}
	return m
}

// rssPoller samples a process's RSS every 100 ms and keeps the peak. Its
// goroutine ends with stop.
type rssPoller struct {
	mu   sync.Mutex
	peak int64
	quit chan struct{}
	done chan struct{}
}

func pollRSS(pid int) *rssPoller {
	r := &rssPoller{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			v := rssBytes(pid)
			r.mu.Lock()
			r.peak = max(r.peak, v)
			r.mu.Unlock()
			select {
			case <-r.quit:
				return
			case <-t.C:
			}
		}
	}()
	return r
}

func (r *rssPoller) stop() int64 {
	close(r.quit)
	<-r.done
	return r.peak
}

// settledRSS is the median of five samples 200 ms apart.
func settledRSS(pid int) memSample {
	var v [5]memSample
	for i := range v {
		v[i] = procMem(pid)
		time.Sleep(200 * time.Millisecond)
	}
	sort.Slice(v[:], func(i, j int) bool { return v[i].rss < v[j].rss })
	return v[2]
}

// scrape reads the waypoint's Prometheus series (admin /stats/prometheus),
// keyed by name and labels.
func scrape(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+hostPort(ipWaypoint, portAdmin)+"/stats/prometheus", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] += v
	}
	return out, sc.Err()
}

// saveProfile writes one of the waypoint's profiles (admin /debug/pprof/),
// e.g. "heap?gc=1" (after a GC, so that what the attack holds is in it)
// or "goroutine?debug=1".
func saveProfile(ctx context.Context, profile, path string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+hostPort(ipWaypoint, portAdmin)+"/debug/pprof/"+profile, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// saveProc copies the process's /proc/PID/smaps (each mapping's resident
// pages, anonymous and file-backed) and status (threads) to path, for
// -keep; errors are ignored (the figures are for reading).
func saveProc(pid int, path string) {
	var b []byte
	for _, f := range []string{"status", "smaps"} {
		p, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		b = append(b, p...)
	}
	os.WriteFile(path, b, 0o644)
}

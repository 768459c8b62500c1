package live

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// world is one namespace of the live cluster with its waypoint: a Gateway of class
// istio-waypoint that istiod deploys (ServiceAccount, Deployment, Service), the waypoint
// binary standing in for that Deployment's pod, and workloads whose ztunnels are `hbone serve`
// stand-ins. Each world has its own /24 of loopback addresses.
type world struct {
	t       *testing.T
	ns      string
	net     string // "127.30.K"
	dir     string
	gateway string // the Gateway's name (and its ServiceAccount's)

	waypointIP string
	admin      string // the waypoint's admin, http://IP:15000
	pod        string // the waypoint's pod name (its node id has POD.NS)

	waypointPs *exec.Cmd // the waypoint's process, once started

	// waypointLabels are added to the waypoint pod's labels (the downward API file), e.g.
	// its locality.
	waypointLabels map[string]string
	// waypointEnv is added to the waypoint process's environment (NAME=VALUE).
	waypointEnv []string

	dnsSrv *dnsServer // the name server of --dns-resolver, once a case starts it (w.dns)

	mu      sync.Mutex
	nextIP  int
	sources map[string]*source
}

// newWorld makes namespace ns (ambient) with a waypoint Gateway, waits until istiod has
// deployed it and marked it Programmed, and starts the waypoint binary for it with
// waypointLabels added to its pod's labels and waypointEnv to its environment.
func newWorld(t *testing.T, k int, ns string, waypointLabels map[string]string, waypointEnv ...string) *world {
	t.Helper()
	w := newWorldNoWaypoint(t, k, ns, waypointLabels, waypointEnv...)
	w.startWaypoint()
	return w
}

// newWorldNoWaypoint is newWorld but for starting the waypoint binary.
func newWorldNoWaypoint(t *testing.T, k int, ns string, waypointLabels map[string]string, waypointEnv ...string) *world {
	t.Helper()
	w := &world{t: t, ns: ns, net: fmt.Sprintf("%s.%d", liveNet, k), dir: t.TempDir(), gateway: "waypoint",
		nextIP: 11, sources: map[string]*source{}, pod: "waypoint-" + strconv.Itoa(k), waypointLabels: waypointLabels,
		waypointEnv: waypointEnv}
	w.waypointIP = w.net + ".5"
	w.apply(`
apiVersion: v1
kind: Namespace
metadata:
  name: {{NS}}
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: {{NS}}
  labels:
    istio.io/waypoint-for: service
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
`)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		env.cluster.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	// With no kubelet, the Service istiod made for the Gateway has no endpoints; the
	// Gateway is Programmed once it has one on 15008 (an address no test dials).
	w.eventually(time.Minute, "istiod deploys the waypoint's Service", func() error {
		_, err := env.cluster.Client.CoreV1().Services(ns).Get(context.Background(), w.gateway, metav1.GetOptions{})
		return err
	})
	w.apply(`
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: waypoint-0
  namespace: {{NS}}
  labels:
    kubernetes.io/service-name: waypoint
addressType: IPv4
ports:
- name: mesh
  port: 15008
  protocol: TCP
endpoints:
- addresses: ["10.244.0.5"]
  conditions: {ready: true}
`)
	w.eventually(time.Minute, "the Gateway is Programmed", func() error {
		gw, err := env.cluster.Get(context.Background(), "gateway.networking.k8s.io/v1", "Gateway", ns, w.gateway)
		if err != nil {
			return err
		}
		if !conditionTrue(gw, "Programmed") {
			return fmt.Errorf("status %v", gw.Object["status"])
		}
		return nil
	})
	return w
}

// expand replaces {{NS}}, {{NET}} (the world's /24, e.g. "127.30.4") and {{DIR}} (the
// world's directory, which the waypoint reads too) in a text.
func (w *world) expand(s string) string {
	return strings.NewReplacer("{{NS}}", w.ns, "{{NET}}", w.net, "{{DIR}}", w.dir).Replace(s)
}

// apply applies YAML through the API server (server-side apply), {{NS}} expanded.
func (w *world) apply(text string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.cluster.Apply(ctx, w.expand(text)); err != nil {
		w.t.Fatal(err)
	}
}

// remove deletes the objects of a YAML text.
func (w *world) remove(text string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.cluster.Delete(ctx, w.expand(text)); err != nil {
		w.t.Fatal(err)
	}
}

// startWaypoint runs the waypoint binary as the Gateway's pod would: its ServiceAccount's
// token from the TokenRequest API (audience istio-ca), its certificate from istiod's CA, its
// config from istiod over TLS, the Gateway's name in its pod labels.
func (w *world) startWaypoint() {
	w.t.Helper()
	var tok string
	w.eventually(time.Minute, "a token for the waypoint's ServiceAccount", func() (err error) {
		tok, err = env.cluster.ServiceAccountToken(context.Background(), w.ns, w.gateway, "istio-ca")
		return err
	})
	tokenFile := filepath.Join(w.dir, "istio-token")
	if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
		w.t.Fatal(err)
	}
	podInfo := filepath.Join(w.dir, "podinfo")
	os.MkdirAll(podInfo, 0o755)
	labels := fmt.Sprintf("gateway.istio.io/managed=%q\ngateway.networking.k8s.io/gateway-class-name=%q\ngateway.networking.k8s.io/gateway-name=%q\nistio.io/dataplane-mode=%q\n",
		"istio.io-mesh-controller", "istio-waypoint", w.gateway, "none")
	for k, v := range w.waypointLabels {
		labels += fmt.Sprintf("%s=%q\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(podInfo, "labels"), []byte(labels), 0o644); err != nil {
		w.t.Fatal(err)
	}
	w.admin = "http://" + net.JoinHostPort(w.waypointIP, "15000")
	xdsAddr := env.cluster.IstiodXDS()
	hboneAddr, podIPs := w.waypointAddrs() // catalogue_dualstack_test.go
	w.waypointPs = w.start("waypoint", append([]string{
		"POD_NAME=" + w.pod, "POD_NAMESPACE=" + w.ns, "INSTANCE_IP=" + w.waypointIP, "SERVICE_ACCOUNT=" + w.gateway,
		"ISTIO_META_CLUSTER_ID=Kubernetes", "ISTIO_META_MESH_ID=cluster.local", "ISTIO_META_WORKLOAD_NAME=" + w.gateway,
		"ISTIO_META_OWNER=kubernetes://apis/apps/v1/namespaces/" + w.ns + "/deployments/" + w.gateway,
		"TRUST_DOMAIN=cluster.local", "INSTANCE_IPS=" + podIPs,
	}, w.waypointEnv...), env.waypoint, "run",
		"--xds", xdsAddr, "--xds-root-cert", env.cluster.IstiodRootCert(), "--xds-token-file", tokenFile,
		"--ca-addr", xdsAddr,
		"--pod-info-dir", podInfo,
		"--hbone-addr", hboneAddr,
		"--admin-addr", net.JoinHostPort(w.waypointIP, "15000"),
		"--metrics-addr", net.JoinHostPort(w.waypointIP, "15020"),
		"--dns-resolver", w.dnsAddr(),
		"--drain-timeout", "1s", "--log-level", logLevel())
	w.eventually(time.Minute, "the waypoint is ready", func() error {
		_, err := w.get(w.admin + "/healthz/ready")
		return err
	})
}

// logLevel is the waypoint's log level: LIVE_WAYPOINT_LOG, default info.
func logLevel() string {
	if l := os.Getenv("LIVE_WAYPOINT_LOG"); l != "" {
		return l
	}
	return "info"
}

// proxyID is the suffix of the waypoint's node id that istiod's debug pages name it by.
func (w *world) proxyID() string { return w.pod + "." + w.ns }

// synced waits until istiod has had every push to the waypoint ACKed, and fails on a NACK.
func (w *world) synced() {
	w.t.Helper()
	w.eventually(20*time.Second, "istiod's pushes to the waypoint ACKed", func() error {
		s, ok, err := env.cluster.ProxySync(context.Background(), w.proxyID())
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the waypoint %s is not connected to istiod", w.proxyID())
		}
		if ok, why := s.Synced(); !ok {
			if strings.Contains(why, "NACKed") {
				return permanent(fmt.Errorf("%s", why))
			}
			return fmt.Errorf("%s", why)
		}
		return nil
	})
}

// nonces are the nonces istiod last sent the waypoint, per type.
func (w *world) nonces() map[string]string {
	w.t.Helper()
	s, ok, err := env.cluster.ProxySync(context.Background(), w.proxyID())
	if err != nil || !ok {
		w.t.Fatalf("syncz: the waypoint connected %v, %v", ok, err)
	}
	out := map[string]string{}
	for t, r := range s.Resources {
		out[t] = r.Sent
	}
	return out
}

// applied applies text and waits until istiod has pushed the waypoint since (a nonce of some
// type changed: istiod pushes after its debounce, with what it knows then), until its pushes
// have been quiet for a second (resources of one apply can reach istiod's informers on either
// side of a debounce and come in two pushes: the first may lack a VirtualService its
// DestinationRule's subsets are routed by), and the waypoint has ACKed every push.
func (w *world) applied(text string) {
	w.t.Helper()
	before := w.nonces()
	w.apply(text)
	w.eventually(30*time.Second, "a push after the change", func() error {
		if maps.Equal(w.nonces(), before) {
			return fmt.Errorf("no push since %v", before)
		}
		return nil
	})
	last, quiet := w.nonces(), time.Now()
	for deadline := time.Now().Add(15 * time.Second); time.Since(quiet) < time.Second && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		if now := w.nonces(); !maps.Equal(now, last) {
			last, quiet = now, time.Now()
		}
	}
	w.synced()
}

// pod is a workload on the world's loopback range: a WorkloadEntry istiod puts in the
// waypoint's EDS, its ztunnel (`hbone serve` with the workload's identity on IP:15008) and
// echo servers on its ports. The WorkloadEntry is an ambient pod as istiod sees one: the
// annotation ambient.istio.io/redirection: enabled (what istio-cni writes on a captured pod),
// and security.istio.io/tlsMode: disabled, which is what a pod without a sidecar has (no such
// label); without it istiod takes a WorkloadEntry with a service account for a sidecar's, and
// reaches it from a waypoint's outbound clusters with Istio mTLS rather than HBONE.
type pod struct {
	name, ip, sa string
	hits         atomic.Int64 // requests its echo servers received

	mu       sync.Mutex
	received []received // the HTTP requests its echo server received, in order
}

// received is what a pod's HTTP echo server saw of one request.
type received struct {
	Method, Path, Host string
	Body               []byte
}

// requests returns the HTTP requests the pod received whose path starts with prefix.
func (p *pod) requests(prefix string) []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []received
	for _, r := range p.received {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// workload adds a workload named name with service account sa, labels and HTTP ports, at the
// world's next address.
func (w *world) workload(name, sa string, labels map[string]string, ports ...int) *pod {
	w.t.Helper()
	w.mu.Lock()
	ip := fmt.Sprintf("%s.%d", w.net, w.nextIP)
	w.nextIP++
	w.mu.Unlock()
	return w.workloadAt(name, sa, ip, labels, ports...)
}

// workloadAt adds a workload named name with service account sa, labels and HTTP ports at
// address ip (::1 for the IPv6 pod): its WorkloadEntry, its ztunnel stand-in on ip:15008 and an
// echo server on each port.
func (w *world) workloadAt(name, sa, ip string, labels map[string]string, ports ...int) *pod {
	w.t.Helper()
	p := &pod{name: name, ip: ip, sa: sa}
	var lb strings.Builder
	for k, v := range labels {
		fmt.Fprintf(&lb, "\n    %s: %q", k, v)
	}
	w.apply(fmt.Sprintf(`
apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[2]s
  namespace: {{NS}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %[1]s
  namespace: {{NS}}
  annotations:
    ambient.istio.io/redirection: enabled
spec:
  address: %[3]q
  serviceAccount: %[2]s
  labels:
    security.istio.io/tlsMode: disabled%[4]s
`, name, sa, ip, lb.String()))
	w.start("ztunnel-"+name, nil, env.hbone, "serve", "--listen", net.JoinHostPort(ip, "15008"), "--cert-dir", w.identity(sa))
	for _, port := range ports {
		w.echo(p, port)
	}
	return p
}

// identity makes (once) the certificate of ns/sa with the mesh CA and returns its directory.
func (w *world) identity(sa string) string {
	w.t.Helper()
	dir := filepath.Join(env.meshCA, w.ns, sa)
	if _, err := os.Stat(filepath.Join(dir, "key.pem")); err == nil {
		return dir
	}
	out, err := exec.Command(env.waypoint, "certs", "--out", env.meshCA, w.ns+"/"+sa).CombinedOutput()
	if err != nil {
		w.t.Fatalf("waypoint certs %s/%s: %v: %s", w.ns, sa, err, out)
	}
	return dir
}

// echoReply is what a workload's echo server answers.
type echoReply struct {
	Pod     string      `json:"pod"`
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Headers http.Header `json:"headers"`
}

// echo serves HTTP/1.1 on ip:port, answering who it is and what it got. A request may ask
// for a status (x-echo-status: 503) or a delay (x-echo-delay: 2s); a path starting with
// /fail-on-POD is answered 503 by pod POD only.
func (w *world) echo(p *pod, port int) {
	w.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(port)))
	if err != nil {
		w.t.Fatal(err)
	}
	w.serveEcho(p, ln)
}

// serveEcho serves echo's HTTP/1.1 on ln.
func (w *world) serveEcho(p *pod, ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		p.received = append(p.received, received{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Body: body})
		p.mu.Unlock()
		if d, err := time.ParseDuration(r.Header.Get("x-echo-delay")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		status := http.StatusOK
		if s, err := strconv.Atoi(r.Header.Get("x-echo-status")); err == nil {
			status = s
		}
		if strings.HasPrefix(r.URL.Path, "/fail-on-"+p.name) {
			status = http.StatusServiceUnavailable
		}
		if r.TLS != nil {
			r.Header.Set("X-Echo-Sni", r.TLS.ServerName)
		}
		rw.Header().Set("content-type", "application/json")
		rw.Header().Set("x-pod", p.name)
		rw.WriteHeader(status)
		json.NewEncoder(rw).Encode(echoReply{Pod: p.name, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: r.Header})
	})}
	go srv.Serve(ln)
	w.t.Cleanup(func() { srv.Close() })
}

// source is the test client of workload ns/sa: HBONE through the waypoint with sa's
// identity.
func (w *world) source(sa string) *source {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.sources[sa]; ok {
		return s
	}
	s, err := newSource(w.identity(sa), net.JoinHostPort(w.waypointIP, "15008"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.sources[sa] = s
	w.t.Cleanup(s.Close)
	return s
}

// serviceVIP is the ClusterIP the API server gave Service name.
func (w *world) serviceVIP(name string) string {
	w.t.Helper()
	svc, err := env.cluster.Client.CoreV1().Services(w.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// start runs a process of the world; its output goes to DIR/NAME.log, shown if the test
// fails; it is stopped (SIGTERM, then SIGKILL after 5 s) when the test ends. The test may
// signal the returned process before.
func (w *world) start(name string, extraEnv []string, bin string, args ...string) *exec.Cmd {
	w.t.Helper()
	logPath := filepath.Join(w.dir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	w.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if w.t.Failed() {
			w.t.Logf("--- %s (%s), last lines:\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return cmd
}

// get fetches url (the waypoint's admin) and returns its body; an answer other than 200 is
// an error.
func (w *world) get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// metric is the sum of the waypoint's Prometheus samples named name whose labels contain
// every one of match ("k=\"v\"" pieces).
func (w *world) metric(name string, match ...string) float64 {
	w.t.Helper()
	body, err := w.get(w.admin + "/stats/prometheus")
	if err != nil {
		w.t.Fatal(err)
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(line, m) {
				continue lines
			}
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// settledMetric is metric once two reads 300 ms apart agree: the streams that ended just
// before are counted (a request is counted when its stream ends, which may follow its response).
func (w *world) settledMetric(name string, match ...string) float64 {
	w.t.Helper()
	v := w.metric(name, match...)
	for range 50 {
		time.Sleep(300 * time.Millisecond)
		again := w.metric(name, match...)
		if again == v {
			return v
		}
		v = again
	}
	w.t.Fatalf("%s %v: still changing after 15 s", name, match)
	return v
}

// permanentError stops eventually at once.
type permanentError struct{ error }

func permanent(err error) error { return permanentError{err} }

// eventually retries f every 100 ms until it succeeds, fails permanently, or limit passes.
func (w *world) eventually(limit time.Duration, what string, f func() error) {
	w.t.Helper()
	eventually(w.t, limit, what, f)
}

func eventually(t testing.TB, limit time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if p, ok := err.(permanentError); ok {
			t.Fatalf("%s: %v", what, p.error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func conditionTrue(o *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// meshRoot is the mesh root certificate (istiod's CA).
func (w *world) meshRoot(t testing.TB) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(env.cluster.IstiodRootCert())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM in the mesh root")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

package live

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Dubbo on the chains istiod writes (issue 15): a Service whose port is named tcp-dubbo
// gets a tcp_proxy chain (inbound-vip|20880|tcp|HOST); the waypoint finds Dubbo on it and
// serves it per call. World numbers 80 and 81.

// dubboService is the Service of these tests: port tcp-dubbo 20880 (Dubbo providers),
// tcp-echo 7000 (a line echo), tcp-greet 7001 (a server that speaks first) and grpc-triple
// 50051 (Triple: gRPC, an HTTP chain), selecting
// the workloads labelled app: greeter; and Istio's text access log on the waypoint's stdout.
const dubboService = `
apiVersion: v1
kind: Service
metadata:
  name: greeter
  namespace: {{NS}}
  labels:
    istio.io/use-waypoint: waypoint
spec:
  selector: {app: greeter}
  ports:
  - {name: tcp-dubbo, port: 20880}
  - {name: tcp-echo, port: 7000}
  - {name: tcp-greet, port: 7001}
  - {name: grpc-triple, port: 50051}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  accessLogging:
  - providers: [{name: envoy}]
`

const greeting = "220 greeter ready\n"

// tripleRouting routes the Triple calls that name version v2 (tri-service-version, the header a
// Triple consumer sends) to the providers labelled version: v2, the others to any.
const tripleRouting = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter, namespace: "{{NS}}"}
spec:
  host: greeter
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: "{{NS}}"}
spec:
  hosts: [greeter]
  http:
  - match:
    - headers: {tri-service-version: {exact: v2}}
    route:
    - destination: {host: greeter, subset: v2}
  - route:
    - destination: {host: greeter}
`

// dubboProvider is a workload of the Service: a Dubbo provider process (dubbotool
// provide, answering "NAME: method(args)") on IP:20880, a line echo on IP:7000, a greeter
// on IP:7001 and a gRPC echo (any service and method, as a Triple provider's) on IP:50051.
type dubboProvider struct {
	*pod
	proc *exec.Cmd
}

// dubboProvider adds workload name with the label version: version.
func (w *world) dubboProvider(name, version string) *dubboProvider {
	w.t.Helper()
	p := &dubboProvider{pod: w.workload(name, "greeter", map[string]string{"app": "greeter", "version": version})}
	p.proc = w.start("provider-"+name, nil, env.dubbo, "provide", "--listen", net.JoinHostPort(p.ip, "20880"), "--name", name)
	w.grpcEcho(p.pod, 50051)
	w.serveTCP(net.JoinHostPort(p.ip, "7000"), func(c net.Conn) { io.Copy(c, c) })
	w.serveTCP(net.JoinHostPort(p.ip, "7001"), func(c net.Conn) {
		io.WriteString(c, greeting)
		io.Copy(c, c)
	})
	return p
}

// kill ends the provider's process at once (SIGKILL): its connections are reset.
func (p *dubboProvider) kill() {
	p.proc.Process.Kill()
}

// serveTCP runs handle for each connection to addr until the test ends.
func (w *world) serveTCP(addr string, handle func(net.Conn)) {
	w.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		w.t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	w.t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// hboneConnect starts `hbone connect` for workload sa: a plaintext listener on the world's
// .2 whose every connection is one HBONE CONNECT to authority through the waypoint, and
// returns its address.
func (w *world) hboneConnect(sa, authority string, port int) string {
	w.t.Helper()
	addr := net.JoinHostPort(w.net+".2", strconv.Itoa(port))
	w.start("hbone-connect-"+strconv.Itoa(port), nil, env.hbone, "connect", "--listen", addr,
		"--via", net.JoinHostPort(w.waypointIP, "15008"), "--authority", authority, "--cert-dir", w.identity(sa))
	w.eventually(10*time.Second, "hbone connect listening on "+addr, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	return addr
}

// dubboOutcome is one call of dubbotool consume.
type dubboOutcome struct {
	I      int    `json:"i"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Status int    `json:"status"`
	From   string `json:"from"`
	Error  string `json:"error"`
}

// consume runs dubbotool consume against addr (its calls on ONE connection) with args,
// calling each outcome's f as it comes (nil: none), and returns the outcomes.
func consume(t *testing.T, addr string, each func(dubboOutcome), args ...string) []dubboOutcome {
	t.Helper()
	cmd := exec.Command(env.dubbo, append([]string{"consume", "--addr", addr}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var outcomes []dubboOutcome
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var o dubboOutcome
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("dubbotool consume: %q: %v", sc.Text(), err)
		}
		outcomes = append(outcomes, o)
		if each != nil {
			each(o)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dubbotool consume %v: %v: %s", args, err, stderr.String())
	}
	return outcomes
}

// byProvider counts the answered calls (status 20) by the provider that answered, and
// the others by status ("status 80") or error.
func byProvider(outcomes []dubboOutcome) map[string]int {
	m := map[string]int{}
	for _, o := range outcomes {
		switch {
		case o.Status == 20:
			m[o.From]++
		case o.Status != 0:
			m["status "+strconv.Itoa(o.Status)]++
		default:
			m["error "+o.Error]++
		}
	}
	return m
}

// logLines counts the lines of the waypoint's stdout that contain s.
func (w *world) logLines(s string) int {
	out, _ := os.ReadFile(filepath.Join(w.dir, "waypoint.log"))
	return bytes.Count(out, []byte(s))
}

// dubboWorld is a world with the Service and its providers a (version v1) and b (v2),
// ready: istiod's pushes ACKed and calls answered by both providers (or, L4 only, by one).
func dubboWorld(t *testing.T, k int, ns string, waypointEnv ...string) (w *world, a, b *dubboProvider, vip string) {
	w = newWorld(t, k, ns, nil, waypointEnv...)
	a = w.dubboProvider("greeter-a", "v1")
	b = w.dubboProvider("greeter-b", "v2")
	w.applied(dubboService)
	vip = w.serviceVIP("greeter")
	probe := w.hboneConnect("consumer", vip+":20880", 19000)
	w.eventually(time.Minute, "the Service served through the waypoint", func() error {
		got := byProvider(consume(t, probe, nil, "--calls", "20", "--method", "probe", "--timeout", "2s"))
		if got["greeter-a"]+got["greeter-b"] != 20 {
			return fmt.Errorf("answers %v", got)
		}
		return nil
	})
	w.synced()
	return w, a, b, vip
}

// TestDubboOnTCPChains is issue 15's acceptance 1 to 5 under the live istiod.
func TestDubboOnTCPChains(t *testing.T) {
	w, a, b, vip := dubboWorld(t, 95, "dubbo-tcp")
	consumer := w.hboneConnect("consumer", vip+":20880", 19001)
	dubbo200 := []string{`request_protocol="dubbo"`, `response_code="200"`, `destination_service_name="greeter"`}

	t.Run("1000 calls of one connection spread over both providers, counted and logged per call", func(t *testing.T) {
		before := w.settledMetric("istio_requests_total", dubbo200...)
		got := byProvider(consume(t, consumer, nil, "--calls", "1000", "--in-flight", "4", "--method", "spread"))
		t.Logf("1000 calls on one connection, by provider: %v", got)
		if got["greeter-a"]+got["greeter-b"] != 1000 || got["greeter-a"] < 450 || got["greeter-b"] < 450 {
			t.Errorf("answers by provider %v, want 1000 within 50/50 ± 5", got)
		}
		if n := w.settledMetric("istio_requests_total", dubbo200...) - before; n != 1000 {
			t.Errorf(`istio_requests_total{request_protocol="dubbo",response_code="200"} grew by %v, want 1000`, n)
		}
		if n := w.metric("istio_requests_total", `request_protocol="dubbo"`, `destination_service_name="greeter"`) -
			w.metric("istio_requests_total", dubbo200...); n != 0 {
			t.Errorf("%v Dubbo calls counted with another response code, want none", n)
		}
		w.eventually(15*time.Second, "a log line per call", func() error {
			if n := w.logLines("/com.example.Greeter/spread"); n < 1000 {
				return fmt.Errorf("%d lines", n)
			}
			return nil
		})
		time.Sleep(1500 * time.Millisecond) // the sinks flush every second: nothing more comes
		if n := w.logLines("/com.example.Greeter/spread"); n != 1000 {
			t.Errorf("%d access log lines for the 1000 calls, want 1000", n)
		}
	})

	t.Run("calls with version v2 reach only the provider labelled version v2", func(t *testing.T) {
		got := byProvider(consume(t, consumer, nil, "--calls", "200", "--in-flight", "4", "--method", "versioned", "--version", "v2"))
		if got["greeter-b"] != 200 {
			t.Errorf("answers by provider %v, want all 200 from greeter-b", got)
		}
	})

	t.Run("a line echo on a port of the same kind passes byte for byte", func(t *testing.T) {
		c, err := net.Dial("tcp", w.hboneConnect("consumer", vip+":7000", 19002))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var sent bytes.Buffer
		for i := range 5000 {
			fmt.Fprintf(&sent, "line %d \xda\xbb\x00\xff\r\n", i)
		}
		go c.Write(sent.Bytes())
		got := make([]byte, sent.Len())
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, sent.Bytes()) {
			t.Errorf("the echo's %d bytes differ from those sent", len(got))
		}
	})

	t.Run("a server that speaks first is heard before the client says anything", func(t *testing.T) {
		c, err := net.Dial("tcp", w.hboneConnect("consumer", vip+":7001", 19003))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != greeting {
			t.Fatalf("greeting %q, %v; want %q", line, err, greeting)
		}
	})

	t.Run("Triple through the HTTP chain istiod writes for a grpc port, routed by tri-service-version", func(t *testing.T) {
		w.applied(tripleRouting)
		for i := range 10 {
			who, err := w.grpcCall("consumer", vip+":50051", "/com.example.Greeter/sayHello", "tri-service-version", "v2")
			if err != nil || who != "greeter-b" {
				t.Fatalf("Triple call %d with tri-service-version v2: answered by %q, %v; want greeter-b", i, who, err)
			}
		}
		seen := map[string]bool{}
		for range 20 {
			who, err := w.grpcCall("consumer", vip+":50051", "/com.example.Greeter/sayHello")
			if err != nil {
				t.Fatalf("Triple call: %v", err)
			}
			seen[who] = true
		}
		if !seen["greeter-a"] || !seen["greeter-b"] {
			t.Errorf("Triple calls without a version answered by %v, want both providers", seen)
		}
		if n := w.settledMetric("istio_requests_total", `request_protocol="grpc"`, `destination_service_name="greeter"`, `response_code="200"`); n < 30 {
			t.Errorf(`istio_requests_total{request_protocol="grpc"} is %v, want the 30 Triple calls`, n)
		}
	})

	t.Run("a provider killed mid-run: its calls in flight fail with 80, later ones go to the other, none hangs", func(t *testing.T) {
		var killed time.Time
		n := 0
		outcomes := consume(t, consumer, func(o dubboOutcome) {
			if n++; n == 300 {
				killed = time.Now()
				a.kill()
			}
		}, "--calls", "1000", "--in-flight", "8", "--interval", "2ms", "--method", "failover", "--timeout", "5s")
		if len(outcomes) != 1000 {
			t.Fatalf("%d outcomes of 1000 calls", len(outcomes))
		}
		var failed, late, lateOther int
		for _, o := range outcomes {
			if o.Status != 20 {
				failed++
				if o.Status != 80 {
					t.Errorf("call %d: status %d %q, want 20 or 80", o.I, o.Status, o.Error)
				}
			}
			if time.Unix(0, o.Start).After(killed.Add(time.Second)) {
				late++
				if o.Status != 20 || o.From != "greeter-b" {
					lateOther++
				}
			}
		}
		t.Logf("provider killed after 300 answers: %v; %d calls failed, %d started a second later", byProvider(outcomes), failed, late)
		if failed > 8 {
			t.Errorf("%d calls failed, want at most the 8 in flight", failed)
		}
		if late == 0 || lateOther != 0 {
			t.Errorf("%d of the %d calls started a second after the kill were not answered by greeter-b", lateOther, late)
		}
	})
	_ = b
	w.synced()
}

// TestDubboOnTCPChainsL4Only is the same Service under a waypoint whose Dubbo on tcp_proxy
// chains is turned off ($WAYPOINT_DUBBO_ON_TCP, the default of --dubbo-on-tcp): the
// connection is relayed to one provider, which answers all its calls.
func TestDubboOnTCPChainsL4Only(t *testing.T) {
	w, _, _, vip := dubboWorld(t, 96, "dubbo-l4", "WAYPOINT_DUBBO_ON_TCP=false")
	consumer := w.hboneConnect("consumer", vip+":20880", 19001)
	before := w.metric("istio_requests_total", `request_protocol="dubbo"`)
	got := byProvider(consume(t, consumer, nil, "--calls", "1000", "--in-flight", "4", "--method", "spread"))
	t.Logf("1000 calls on one connection, L4 only, by provider: %v", got)
	if len(got) != 1 || got["greeter-a"]+got["greeter-b"] != 1000 {
		t.Errorf("answers by provider %v, want all 1000 from one", got)
	}
	if n := w.metric("istio_requests_total", `request_protocol="dubbo"`) - before; n != 0 {
		t.Errorf("%v Dubbo calls counted, want none (the connection is TCP)", n)
	}
	w.synced()
}

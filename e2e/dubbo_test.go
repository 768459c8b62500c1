package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
)

// A Dubbo mesh on 127.0.51.0/24 (service VIPs on 127.0.52.0/24), real
// processes as in a cluster:
//
//	127.0.51.5:15008   the waypoint (admin on :15000)
//	127.0.51.11:20880  pod a: a Dubbo provider (dubbo-go-hessian2's codec), its ztunnel (hbone serve) on :15008
//	127.0.51.12:20880  pod b: the same
//	127.0.52.1:20880   service "greeter": the Dubbo chain below
//	127.0.52.2:50051   service "greeter-tri": Dubbo 3 (Triple, gRPC) through an HttpConnectionManager,
//	                   to pod a's and pod b's gRPC servers on :50051 (started by the Triple test)
//	127.0.52.3:20881   service "sniffed": a port whose protocol main_internal sniffs (http_inspector):
//	                   Dubbo to a Dubbo chain (every call to pod b), anything else relayed to pod a
//	127.0.51.1:19001   hbone connect: the consumer's ztunnel, to the service; :19002 to greeter-tri,
//	                   :19003 to sniffed
//
// The consumer encodes its calls with dubbo-go-hessian2 and sends them to
// its ztunnel; providers decode them with it.
type dubboEnv struct {
	env
	pods map[string]*dubbotest.Provider
}

const dubboNet = 51

func (e *dubboEnv) serviceVIP() string { return "127.0.52.1" }
func (e *dubboEnv) tripleVIP() string  { return "127.0.52.2" }
func (e *dubboEnv) tripleAddr() string { return e.ip(1) + ":19002" }
func (e *dubboEnv) consumerAddr() string {
	return e.ip(1) + ":19001"
}

func newDubboEnv(t *testing.T) *dubboEnv {
	t.Helper()
	e := &dubboEnv{env: env{t: t, net: dubboNet, dir: t.TempDir()}, pods: map[string]*dubbotest.Provider{}}
	ids := []spiffe.ID{sa("waypoint"), sa("client"), sa("pod-a"), sa("pod-b")}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, TrustDomain: trustDomain, IDs: ids}); err != nil {
		t.Fatal(err)
	}
	e.config = filepath.Join(e.dir, "waypoint.yaml")
	e.writeConfigFrom(dubboTemplate, e)
	for _, pod := range []struct {
		host int
		name string
	}{{11, "pod-a"}, {12, "pod-b"}} {
		e.startProvider(pod.host, pod.name, nil)
		e.startHBONEServe(pod.host, pod.name)
	}
	e.waypoint = startProc(t, "waypoint", bins.waypoint, "run", "--config", e.config, "--cert-dir", e.certDir("waypoint"),
		"--hbone-addr", e.hboneAddr(), "--admin-addr", e.ip(5)+":15000")
	waitHTTP200(t, e.adminURL()+"/healthz/ready")
	t.Cleanup(e.checkWaypointLeaks)
	e.sources = map[int]*proc{}
	for n, src := range map[int][2]string{1: {e.consumerAddr(), e.serviceVIP() + ":20880"}, 2: {e.tripleAddr(), e.tripleVIP() + ":50051"},
		3: {e.sniffAddr(), e.SniffVIP() + ":20881"}} {
		e.sources[n] = startProc(t, "hbone-connect-"+src[1], bins.hbone, "connect", "--listen", src[0],
			"--via", e.hboneAddr(), "--authority", src[1], "--cert-dir", e.certDir("client"),
			"--peer-identity", sa("waypoint").String())
		waitTCP(t, src[0])
	}
	return e
}

// startProvider starts pod host's provider; nil h answers
// "<pod>: <method>(<args>)".
func (e *dubboEnv) startProvider(host int, name string, h dubbotest.Handler) *dubbotest.Provider {
	e.t.Helper()
	p, err := dubbotest.StartProvider(e.ip(host)+":20880", name, h)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(p.Kill)
	e.pods[name] = p
	return p
}

// consumer connects a Dubbo consumer to its ztunnel.
func (e *dubboEnv) consumer() *dubbotest.Consumer {
	e.t.Helper()
	c, err := dubbotest.Dial(e.consumerAddr())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// PodA, PodB and VIP are for the template.
func (e *dubboEnv) PodA() string   { return e.ip(11) }
func (e *dubboEnv) PodB() string   { return e.ip(12) }
func (e *dubboEnv) VIP() string    { return e.serviceVIP() }
func (e *dubboEnv) TriVIP() string { return e.tripleVIP() }

// SniffVIP is the service whose protocol is sniffed, for the template.
func (e *dubboEnv) SniffVIP() string  { return "127.0.52.3" }
func (e *dubboEnv) sniffAddr() string { return e.ip(1) + ":19003" }

// TriPods are the pods of the Triple clusters, for the template.
func (e *dubboEnv) TriPods() []struct{ Name, IP, ID string } {
	return []struct{ Name, IP, ID string }{{"a", e.ip(11), sa("pod-a").String()}, {"b", e.ip(12), sa("pod-b").String()}}
}

// ID is the identity of a pod, for the template.
func (e *dubboEnv) ID(pod string) string { return sa(pod).String() }

// dubboTemplate: service greeter's chain. com.example.Greeter: version
// 2.0.0 to v2 (pod b); the method "toB" and the attachment "x-canary:
// true" to v2; "failover*" methods to both pods; everything else split
// 80/20 between v1 (pod a) and v2. Faults come from the
// x-envoy-fault-abort-request attachment. No route needs no body: a call
// in another serialization is refused.
const dubboTemplate = `
static_resources:
  listeners:
  - name: main_internal
    internal_listener: {}
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}
      filter_disabled: {or_match: {rules: [{destination_port_range: {start: 20880, end: 20881}}, {destination_port_range: {start: 50051, end: 50052}}]}}
    filter_chain_matcher:
      matcher_tree:
        input: {name: ip, typed_config: {"@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput}}
        custom_match:
          name: ip
          typed_config:
            "@type": type.googleapis.com/xds.type.matcher.v3.IPMatcher
            range_matchers:
            - ranges: [{address_prefix: {{.VIP}}, prefix_len: 32}]
              on_match: {action: {name: greeter, typed_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: greeter}}}
            - ranges: [{address_prefix: {{.TriVIP}}, prefix_len: 32}]
              on_match: {action: {name: greeter-tri, typed_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: greeter-tri}}}
            - ranges: [{address_prefix: {{.SniffVIP}}, prefix_len: 32}]
              on_match:
                matcher:
                  matcher_tree:
                    input: {name: application-protocol, typed_config: {"@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.ApplicationProtocolInput}}
                    exact_match_map:
                      map:
                        "'dubbo'": {action: {name: sniffed-dubbo, typed_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: sniffed-dubbo}}}
                  on_no_match: {action: {name: sniffed-tcp, typed_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: sniffed-tcp}}}
    filter_chains:
    - name: sniffed-dubbo
      filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: sniffed
          route_config:
          - {interface: "*", routes: [{match: {}, route: {cluster: greeter-v2}}]}
    - name: sniffed-tcp
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: sniffed-tcp, cluster: greeter-v1}
    - name: greeter
      filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: greeter
          multiple_route_config:
            name: greeter
            route_config:
            - name: greeter-v2
              interface: com.example.Greeter
              version: 2.0.0
              routes:
              - match: {method: {name: {safe_regex: {regex: ".*"}}}}
                route: {cluster: greeter-v2}
            - name: greeter
              interface: com.example.Greeter
              routes:
              - match: {method: {name: {exact: toB}}}
                route: {cluster: greeter-v2}
              - match: {method: {name: {safe_regex: {regex: ".*"}}}, headers: [{name: x-canary, string_match: {exact: "true"}}]}
                route: {cluster: greeter-v2}
              - match: {method: {name: {prefix: failover}}}
                route: {cluster: greeter-all}
              - match: {method: {name: {safe_regex: {regex: ".*"}}}}
                route: {weighted_clusters: {clusters: [{name: greeter-v1, weight: 80}, {name: greeter-v2, weight: 20}]}}
          dubbo_filters:
          - name: envoy.filters.http.fault
            config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: {header_abort: {}, percentage: {numerator: 100}}
          - name: envoy.filters.dubbo.router
            config: {"@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.router.v3.Router}
    - name: greeter-tri
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: greeter-tri
          http_filters:
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            virtual_hosts:
            - name: greeter-tri
              domains: ["*"]
              routes:
              - match: {prefix: /, headers: [{name: ":dubbo-service-version", string_match: {exact: 2.0.0}}]}
                route: {cluster: tri-b}
              - match: {prefix: /, headers: [{name: ":dubbo-group", string_match: {exact: canary}}]}
                route: {cluster: tri-b}
              - match: {prefix: /}
                route: {cluster: tri-a}
  clusters:
{{- range $pod := .TriPods}}
  - name: tri-{{$pod.Name}}
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: tri-{{$pod.Name}}
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{$pod.IP}}, port_value: 50051}}}
          metadata: {filter_metadata: {waypoint: {identity: "{{$pod.ID}}"}}}
{{- end}}
  - name: greeter-v1
    connect_timeout: 2s
    load_assignment:
      cluster_name: greeter-v1
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{.PodA}}, port_value: 20880}}}
          metadata: {filter_metadata: {waypoint: {identity: "{{.ID "pod-a"}}"}}}
  - name: greeter-v2
    connect_timeout: 2s
    load_assignment:
      cluster_name: greeter-v2
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{.PodB}}, port_value: 20880}}}
          metadata: {filter_metadata: {waypoint: {identity: "{{.ID "pod-b"}}"}}}
  - name: greeter-all
    connect_timeout: 2s
    load_assignment:
      cluster_name: greeter-all
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: {{.PodA}}, port_value: 20880}}}
          metadata: {filter_metadata: {waypoint: {identity: "{{.ID "pod-a"}}"}}}
        - endpoint: {address: {socket_address: {address: {{.PodB}}, port_value: 20880}}}
          metadata: {filter_metadata: {waypoint: {identity: "{{.ID "pod-b"}}"}}}
`

func greeterService(method, version string) hessian.Service {
	return hessian.Service{Path: "com.example.Greeter", Interface: "com.example.Greeter", Method: method, Version: version}
}

func dubboCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestDubboRouting is acceptance 1: answers, the 80/20 split, routes on
// version, method and attachment.
func TestDubboRouting(t *testing.T) {
	e := newDubboEnv(t)
	c := e.consumer()
	ctx := dubboCtx(t, 2*time.Minute)
	cases := []struct {
		name    string
		service hessian.Service
		args    []any
		atts    map[string]string
		want    string
	}{
		{"version 2.0.0", greeterService("hello", "2.0.0"), []any{"alice"}, nil, "pod-b: hello(alice)"},
		{"method toB", greeterService("toB", "1.0.0"), []any{"bob", int32(7)}, nil, "pod-b: toB(bob, 7)"},
		{"attachment x-canary", greeterService("hello", "1.0.0"), []any{"carol"}, map[string]string{"x-canary": "true"}, "pod-b: hello(carol)"},
	}
	for _, tc := range cases {
		r, err := c.Call(ctx, tc.service, tc.args, tc.atts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Status != 20 || r.Value != tc.want {
			t.Fatalf("%s: status %d, answer %v (%q), want %q", tc.name, r.Status, r.Value, r.ErrorMessage, tc.want)
		}
	}

	const calls = 10000
	var toA, toB atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < calls; i += 16 {
				r, err := c.Call(ctx, greeterService("hello", "1.0.0"), []any{int32(i)}, nil)
				if err != nil {
					errs <- err
					return
				}
				switch r.Value {
				case fmt.Sprintf("pod-a: hello(%d)", i):
					toA.Add(1)
				case fmt.Sprintf("pod-b: hello(%d)", i):
					toB.Add(1)
				default:
					errs <- fmt.Errorf("call %d: status %d, answer %v (%q)", i, r.Status, r.Value, r.ErrorMessage)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	share := float64(toA.Load()) * 100 / calls
	t.Logf("80/20 split over %d calls: v1 (pod a) %d = %.2f%%, v2 (pod b) %d", calls, toA.Load(), share, toB.Load())
	if share < 77 || share > 83 {
		t.Fatalf("v1 took %.2f%% of the calls, want 80 ± 3", share)
	}
	if c.Unmatched.Load() != 0 {
		t.Fatalf("%d answers matched no call", c.Unmatched.Load())
	}
}

// TestDubboMultiplexing is acceptance 2: 1,000 calls in flight on one
// connection, heartbeats on both legs, a one-way call.
func TestDubboMultiplexing(t *testing.T) {
	e := newDubboEnv(t)
	const n = 1000
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	oneWay := make(chan string, 1)
	h := func(name string) dubbotest.Handler {
		return func(c *dubbotest.Call) dubbotest.Reply {
			if !c.TwoWay {
				oneWay <- name + " " + c.Method
				return dubbotest.Reply{}
			}
			if c.Method != "hold" {
				return dubbotest.Reply{Value: name}
			}
			mu.Lock()
			if arrived++; arrived == n {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all: // every call is in flight before any is answered
			case <-time.After(time.Minute):
			}
			time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
			return dubbotest.Reply{Value: fmt.Sprintf("%s %v", name, c.Args[0])}
		}
	}
	e.pods["pod-a"].SetHandler(h("pod-a"))
	e.pods["pod-b"].SetHandler(h("pod-b"))
	c := e.consumer()
	ctx := dubboCtx(t, 2*time.Minute)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Call(ctx, greeterService("hold", "1.0.0"), []any{int32(i)}, nil)
			switch {
			case err != nil:
				errs <- err
			case r.Status != 20 || !strings.HasSuffix(fmt.Sprint(r.Value), fmt.Sprintf(" %d", i)):
				errs <- fmt.Errorf("call %d: status %d, answer %v (%q)", i, r.Status, r.Value, r.ErrorMessage)
			}
		}()
	}
	// While they are all held: heartbeats on both legs.
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("only %d calls reached the providers", arrived)
	}
	if r, err := c.Heartbeat(ctx); err != nil || !r.Event || r.Status != 20 {
		t.Fatalf("the consumer's heartbeat: %+v %v", r, err)
	}
	for _, p := range e.pods {
		if p.Heartbeats.Load() != 0 {
			t.Fatal("the consumer's heartbeat was forwarded")
		}
		if p.SendHeartbeats() == 0 {
			t.Fatalf("%s has no connection from the waypoint", p.Name)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, p := range e.pods {
		waitForE(t, p.Name+"'s heartbeat answered", func() bool { return p.HeartbeatAnswers.Load() > 0 })
	}
	if c.Unmatched.Load() != 0 || c.Heartbeats.Load() != 0 {
		t.Fatalf("%d unmatched answers, %d heartbeats reached the consumer", c.Unmatched.Load(), c.Heartbeats.Load())
	}

	// A one-way call: it reaches a provider, gets no answer, and the
	// next call is answered.
	frame, err := dubbotest.Request(c.NextID(), false, greeterService("toB", "1.0.0"), []any{"fire"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Send(frame)
	select {
	case got := <-oneWay:
		if got != "pod-b toB" {
			t.Fatalf("the one-way call reached %q", got)
		}
	case <-ctx.Done():
		t.Fatal("the one-way call never reached a provider")
	}
	if r, err := c.Call(ctx, greeterService("toB", "1.0.0"), nil, nil); err != nil || r.Value != "pod-b" {
		t.Fatalf("after the one-way call: %+v %v", r, err)
	}
	if c.Unmatched.Load() != 0 {
		t.Fatal("the one-way call was answered")
	}
}

// TestDubboRefusals is acceptance 3: each refusal answered (or the
// connection closed where no frame boundary is left), the connection
// going on where it can.
func TestDubboRefusals(t *testing.T) {
	e := newDubboEnv(t)
	ctx := dubboCtx(t, time.Minute)
	req := func(id int64, svc hessian.Service, args []any, atts map[string]string) []byte {
		f, err := dubbotest.Request(id, true, svc, args, atts)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	setBody := func(f, body []byte) []byte {
		out := append(append([]byte{}, f[:dubbotest.HeaderLen]...), body...)
		binary.BigEndian.PutUint32(out[12:], uint32(len(body)))
		return out
	}
	cases := []struct {
		name   string
		frame  func(id int64) []byte
		status byte
		msg    string
	}{
		{"a body over the 8 MiB limit", func(id int64) []byte {
			// The reference encoder refuses to write it: the body is
			// 9 MiB of a string's bytes, never read by the waypoint.
			f := req(id, greeterService("toB", "1.0.0"), []any{"x"}, nil)
			return setBody(f, []byte(strings.Repeat("x", 9<<20)))
		}, 40, "body over the size limit"},
		{"a truncated body", func(id int64) []byte {
			f := req(id, greeterService("toB", "1.0.0"), []any{"alice"}, nil)
			return setBody(f, f[dubbotest.HeaderLen:len(f)-8])
		}, 40, "request attachments"},
		{"a kryo body where routes read the method", func(id int64) []byte {
			f := req(id, greeterService("toB", "1.0.0"), []any{"alice"}, nil)
			f[2] = f[2]&^0x1f | 8
			return f
		}, 40, "only a Hessian2 body carries"},
		{"an unrouted service", func(id int64) []byte {
			return req(id, hessian.Service{Path: "com.example.Nobody", Method: "hello"}, nil, nil)
		}, 60, "no route for /com.example.Nobody/hello"},
		{"a fault abort, 503", func(id int64) []byte {
			return req(id, greeterService("toB", "1.0.0"), nil, map[string]string{"x-envoy-fault-abort-request": "503"})
		}, 80, "fault filter abort"},
		{"a fault abort, 429", func(id int64) []byte {
			return req(id, greeterService("toB", "1.0.0"), nil, map[string]string{"x-envoy-fault-abort-request": "429"})
		}, 100, "fault filter abort"},
	}
	c := e.consumer() // one connection for all: each refusal leaves it usable
	for _, tc := range cases {
		id := c.NextID()
		r, err := c.RoundTrip(ctx, id, tc.frame(id))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Status != tc.status || !strings.Contains(r.ErrorMessage, tc.msg) {
			t.Fatalf("%s: status %d %q, want %d and %q", tc.name, r.Status, r.ErrorMessage, tc.status, tc.msg)
		}
		t.Logf("%s: status %d %q", tc.name, r.Status, r.ErrorMessage)
		if r, err := c.Call(ctx, greeterService("toB", "1.0.0"), []any{"next"}, nil); err != nil || r.Value != "pod-b: toB(next)" {
			t.Fatalf("%s: the call after: %+v %v", tc.name, r, err)
		}
	}

	// A bad magic: no frame boundary is left, the connection is closed.
	bad := e.consumer()
	if r, err := bad.Call(ctx, greeterService("toB", "1.0.0"), nil, nil); err != nil || r.Status != 20 {
		t.Fatalf("before the bad magic: %+v %v", r, err)
	}
	bad.Send([]byte("GET / HTTP/1.1\r\nHost: greeter\r\n\r\n"))
	select {
	case <-bad.Done():
	case <-ctx.Done():
		t.Fatal("the connection stayed open after a bad magic")
	}
	// The other connection never noticed.
	if r, err := c.Call(ctx, greeterService("toB", "1.0.0"), []any{"last"}, nil); err != nil || r.Value != "pod-b: toB(last)" {
		t.Fatalf("the other connection: %+v %v", r, err)
	}
}

// TestDubboProviderKilled is acceptance 4: a provider dies mid-call; the
// caller gets a Dubbo error, not a hang, and later calls go to the other
// pod.
func TestDubboProviderKilled(t *testing.T) {
	e := newDubboEnv(t)
	ctx := dubboCtx(t, time.Minute)
	held := make(chan string, 2)
	for _, name := range []string{"pod-a", "pod-b"} {
		p := e.pods[name]
		p.SetHandler(func(c *dubbotest.Call) dubbotest.Reply {
			if c.Method == "failoverHold" {
				held <- p.Name
				<-p.Killed()
			}
			return dubbotest.Reply{Value: p.Name}
		})
	}
	c := e.consumer()
	type result struct {
		r   *dubbotest.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.Call(ctx, greeterService("failoverHold", "1.0.0"), nil, map[string]string{"timeout": "30000"})
		done <- result{r, err}
	}()
	var victim string
	select {
	case victim = <-held:
	case <-ctx.Done():
		t.Fatal("the held call never reached a provider")
	}
	e.pods[victim].Kill()
	killed := time.Now()
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight hung after its provider died")
	}
	if res.err != nil || res.r.Status != 80 {
		t.Fatalf("the call in flight: %+v %v, want status 80", res.r, res.err)
	}
	t.Logf("%s killed mid-call: answered %v later with status %d %q", victim, time.Since(killed), res.r.Status, res.r.ErrorMessage)
	other := "pod-a"
	if victim == "pod-a" {
		other = "pod-b"
	}
	for i := range 20 {
		r, err := c.Call(ctx, greeterService("failover", "1.0.0"), []any{int32(i)}, nil)
		if err != nil || r.Status != 20 || r.Value != other {
			t.Fatalf("call %d after the kill: %+v %v, want %s", i, r, err, other)
		}
	}
}

func waitForE(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDubboSniffed: on a port whose protocol the listener sniffs, Dubbo's
// magic selects the Dubbo chain (application protocol 'dubbo'); other
// bytes take the TCP chain.
func TestDubboSniffed(t *testing.T) {
	e := newDubboEnv(t)
	ctx := dubboCtx(t, 30*time.Second)
	c, err := dubbotest.Dial(e.sniffAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 10 {
		r, err := c.Call(ctx, greeterService("hello", "1.0.0"), []any{int32(i)}, nil)
		if err != nil || r.Status != 20 || r.Value != fmt.Sprintf("pod-b: hello(%d)", i) {
			t.Fatalf("call %d: %+v %v (the Dubbo chain sends every call to pod b)", i, r, err)
		}
	}
	before := e.pods["pod-a"].Calls.Load()
	// Not Dubbo: relayed as TCP to pod a, whose provider refuses the bytes
	// and closes; the client sees the end, not a Dubbo error.
	raw, err := net.Dial("tcp", e.sniffAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("PING not dubbo\r\n"))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := raw.Read(make([]byte, 64)); err == nil {
		t.Fatalf("%d bytes came back for bytes that are not Dubbo", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the non-Dubbo connection hung")
	}
	if e.pods["pod-a"].Calls.Load() != before {
		t.Fatal("pod a counted a call")
	}
}

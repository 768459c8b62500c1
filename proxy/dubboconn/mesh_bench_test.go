package dubboconn_test

// Addresses of this file's benchmarks: 127.0.53.0/24 (the waypoint on
// 127.0.53.5, the client's ztunnel on 127.0.53.1, the pod on 127.0.53.11,
// service VIPs 127.0.53.100 to .102).

import (
	"context"

	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
)

const (
	benchWaypoint = "127.0.53.5:15008"
	benchPod      = "127.0.53.11"
	benchDubboVIP = "127.0.53.100:20880"
	benchTCPVIP   = "127.0.53.101:20880"
	benchOnTCPVIP = "127.0.53.102:20880"
	benchClientIP = "127.0.53.1"
)

// benchConfig: the service's port served by the Dubbo connection manager
// (VIP .100), by the L4 relay (VIP .101: a tcp_proxy chain whose cluster
// keeps it L4) and by a tcp_proxy chain that finds Dubbo on it (VIP .102),
// all to the one pod.
const benchConfig = `
static_resources:
  listeners:
  - name: main_internal
    internal_listener: {}
    filter_chains:
    - name: dubbo
      filter_chain_match: {prefix_ranges: [{address_prefix: 127.0.53.100, prefix_len: 32}], destination_port: 20880}
      filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          multiple_route_config:
            route_config:
            - interface: com.example.OrderService
              routes:
              - match: {method: {name: {exact: placeOrder}}}
                route: {cluster: pod}
    - name: tcp
      filter_chain_match: {prefix_ranges: [{address_prefix: 127.0.53.101, prefix_len: 32}], destination_port: 20880}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp, cluster: pod-l4}
    - name: dubbo-on-tcp
      filter_chain_match: {prefix_ranges: [{address_prefix: 127.0.53.102, prefix_len: 32}], destination_port: 20880}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp, cluster: pod}
  clusters:
  - name: pod-l4
    connect_timeout: 2s
    metadata: {filter_metadata: {waypoint: {dubbo_on_tcp: false}}}
    load_assignment:
      cluster_name: pod-l4
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.53.11, port_value: 20880}}}
          metadata: {filter_metadata: {waypoint: {identity: spiffe://cluster.local/ns/default/sa/pod}}}
  - name: pod
    connect_timeout: 2s
    load_assignment:
      cluster_name: pod
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.53.11, port_value: 20880}}}
          metadata: {filter_metadata: {waypoint: {identity: spiffe://cluster.local/ns/default/sa/pod}}}
`

func benchID(sa string) spiffe.ID {
	return spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: sa}
}

// benchMesh is the whole in-process path: client ztunnel -> HBONE ->
// waypoint -> HBONE -> the pod's ztunnel -> a Dubbo provider.
type benchMesh struct {
	stops []func()
}

func (m *benchMesh) close() {
	for i := len(m.stops) - 1; i >= 0; i-- {
		m.stops[i]()
	}
}

func startBenchMesh(b *testing.B) *benchMesh {
	m := &benchMesh{}
	b.Cleanup(m.close)
	log := slog.New(slog.DiscardHandler)
	dir := b.TempDir()
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local",
		IDs: []spiffe.ID{benchID("waypoint"), benchID("client"), benchID("pod")}}); err != nil {
		b.Fatal(err)
	}
	// The pod: a provider answering every call with one prepared answer.
	pln, err := net.Listen("tcp", benchPod+":20880")
	if err != nil {
		b.Fatal(err)
	}
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		serveProvider(pln, &pwg)
	}()
	m.stops = append(m.stops, func() { pln.Close(); closeProviderConns(); pwg.Wait() })
	src, err := certs.NewSource(certs.IdentityDir(dir, benchID("pod")), certs.SourceOptions{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	m.stops = append(m.stops, func() { src.Close() })
	srv, err := hbone.NewServer(hbone.ServerConfig{TLS: src.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{LocalIPs: []netip.Addr{netip.MustParseAddr(benchPod)}, Log: log}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	zln, err := net.Listen("tcp", benchPod+":15008")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(zln)
	m.stops = append(m.stops, func() { srv.Shutdown(canceled()) })

	cfg := filepath.Join(dir, "waypoint.yaml")
	if err := os.WriteFile(cfg, []byte(benchConfig), 0o644); err != nil {
		b.Fatal(err)
	}
	w, err := waypoint.Start(waypoint.Options{ConfigFile: cfg, CertDir: certs.IdentityDir(dir, benchID("waypoint")),
		HBONEAddr: benchWaypoint, AdminAddr: "off", ConfigPollInterval: -1, DrainTimeout: time.Second, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	m.stops = append(m.stops, func() { w.Shutdown(canceled()) })

	csrc, err := certs.NewSource(certs.IdentityDir(dir, benchID("client")), certs.SourceOptions{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	m.stops = append(m.stops, func() { csrc.Close() })
	pool := hbone.NewPool(hbone.PoolConfig{Logger: log})
	m.stops = append(m.stops, pool.Close)
	expect := certs.PeerExpectation{ID: benchID("waypoint")}
	for port, authority := range map[string]string{"19001": benchDubboVIP, "19002": benchTCPVIP, "19003": benchOnTCPVIP} {
		ln, err := net.Listen("tcp", benchClientIP+":"+port)
		if err != nil {
			b.Fatal(err)
		}
		s := &ztunnel.Source{Pool: pool, Via: netip.MustParseAddrPort(benchWaypoint), Authority: authority,
			PeerKey: expect.ID.String(), TLS: csrc.ClientTLSConfig(expect), Log: log}
		go s.Serve(ln)
		m.stops = append(m.stops, func() { s.Shutdown(canceled()) })
	}
	return m
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

var (
	providerMu    sync.Mutex
	providerConns = map[net.Conn]bool{}
)

func closeProviderConns() {
	providerMu.Lock()
	for c := range providerConns {
		c.Close()
	}
	providerMu.Unlock()
}

// serveProvider answers every request with benchAnswer, its id set.
func serveProvider(ln net.Listener, wg *sync.WaitGroup) {
	answer := benchAnswer()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		providerMu.Lock()
		providerConns[c] = true
		providerMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			r := dubbo.NewReader(c, dubbo.ReaderConfig{})
			defer r.Close()
			out := append([]byte(nil), answer...)
			for {
				f, err := r.Next()
				if err != nil {
					return
				}
				h := f.Header
				f.Release()
				if !h.Request || !h.TwoWay {
					continue
				}
				if h.Event {
					c.Write(dubbo.AppendHeartbeatResponse(nil, h.ID))
					continue
				}
				dubbo.SetID(out, h.ID)
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}()
	}
}

// benchRequest is a typical call (a string, an int and a map for
// arguments, the attachments a Java consumer sends), ~400 bytes.
func benchRequest() []byte {
	args := hessian2.AppendString(nil, "customer-42")
	args = hessian2.AppendInt(args, 3)
	args = hessian2.AppendMapStart(args)
	for _, kv := range [][2]string{{"sku", "A-1"}, {"note", "leave at the door"}} {
		args = hessian2.AppendString(args, kv[0])
		args = hessian2.AppendString(args, kv[1])
	}
	args = hessian2.AppendEnd(args)
	var atts []dubbo.Attachment
	for _, kv := range [][2]string{{"path", "com.example.OrderService"}, {"interface", "com.example.OrderService"},
		{"version", "1.0.0"}, {"timeout", "3000"}, {"remote.application", "checkout"},
		{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}} {
		atts = append(atts, dubbo.Attachment{Key: []byte(kv[0]), Value: []byte(kv[1]), Kind: hessian2.String})
	}
	return dubbo.AppendRequest(nil, dubbo.Header{Request: true, TwoWay: true, ID: 1}, &dubbo.Call{
		DubboVersion: "2.0.2", Path: "com.example.OrderService", Version: "1.0.0", Method: "placeOrder",
		ParamDesc: "Ljava/lang/String;ILjava/util/Map;", Args: args, Attachments: atts})
}

// benchAnswer is the provider's answer: a value and attachments.
func benchAnswer() []byte {
	h := dubbo.AppendHeader(nil, dubbo.Header{Serialization: dubbo.Hessian2, Status: dubbo.StatusOK})
	body := hessian2.AppendInt(nil, int32(dubbo.FlagValueWithAttachments))
	body = hessian2.AppendString(body, "order-0001 placed")
	body = hessian2.AppendMapStart(body)
	body = hessian2.AppendString(body, "dubbo")
	body = hessian2.AppendString(body, "2.0.2")
	body = hessian2.AppendEnd(body)
	h = append(h, body...)
	h[12], h[13], h[14], h[15] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	return h
}

// benchClient makes calls, one at a time, on one connection to the
// client's ztunnel.
type benchClient struct {
	b   *testing.B
	c   net.Conn
	r   *dubbo.Reader
	req []byte
	id  uint64
}

func newBenchClient(b *testing.B, addr string) *benchClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	bc := &benchClient{b: b, c: c, r: dubbo.NewReader(c, dubbo.ReaderConfig{}), req: benchRequest()}
	b.Cleanup(func() { c.Close(); bc.r.Close() })
	for range 100 { // warm: connections, pools
		bc.call()
	}
	return bc
}

func (bc *benchClient) call() {
	bc.id++
	dubbo.SetID(bc.req, bc.id)
	if _, err := bc.c.Write(bc.req); err != nil {
		bc.b.Fatal(err)
	}
	f, err := bc.r.Next()
	if err != nil {
		bc.b.Fatal(err)
	}
	if f.Header.ID != bc.id || f.Header.Status != dubbo.StatusOK {
		bc.b.Fatalf("answer %+v to call %d", f.Header, bc.id)
	}
	f.Release()
}

// benchCalls runs b.N calls through the client's ztunnel at addr and
// reports the process's CPU time per call (user and system: client, both
// ztunnels, the waypoint and the provider).
func benchCalls(b *testing.B, addr string) {
	bc := newBenchClient(b, addr)
	b.ReportAllocs()
	b.SetBytes(int64(len(bc.req)))
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		bc.call()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDubboMeshCall is one Dubbo call through the whole in-process
// mesh: client -> its ztunnel -> HBONE -> the waypoint's Dubbo connection
// manager (decode, route, router, the shared upstream connection) ->
// HBONE -> the pod's ztunnel -> the provider, and the answer back.
func BenchmarkDubboMeshCall(b *testing.B) {
	startBenchMesh(b)
	benchCalls(b, benchClientIP+":19001")
}

// BenchmarkDubboMeshL4 is the same bytes through the same mesh with the
// service's port relayed as opaque TCP (tcp_proxy): the reference for
// BenchmarkDubboMeshCall.
func BenchmarkDubboMeshL4(b *testing.B) {
	startBenchMesh(b)
	benchCalls(b, benchClientIP+":19002")
}

// BenchmarkDubboMeshOnTCP is BenchmarkDubboMeshCall's call through a
// tcp_proxy chain (as istiod writes for a TCP port) on which the waypoint
// found Dubbo: served per call, by the same connection manager through the
// DubboProxy made up for the chain.
func BenchmarkDubboMeshOnTCP(b *testing.B) {
	startBenchMesh(b)
	benchCalls(b, benchClientIP+":19003")
}

// BenchmarkDubboMeshCompare runs both paths of one mesh in alternating
// blocks of 100 calls (b.N calls each), so that the load of a shared
// machine falls on both alike, and reports each path's CPU and wall time
// per call and their ratios (Dubbo connection manager over L4 relay).
func BenchmarkDubboMeshCompare(b *testing.B) {
	startBenchMesh(b)
	paths := [2]*benchClient{newBenchClient(b, benchClientIP+":19001"), newBenchClient(b, benchClientIP+":19002")}
	var cpu, wall [2]time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(100, b.N-done)
		for p, bc := range paths {
			c0, w0 := cpuTime(), time.Now()
			for range n {
				bc.call()
			}
			cpu[p] += cpuTime() - c0
			wall[p] += time.Since(w0)
		}
		done += n
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d) / float64(b.N) }
	b.ReportMetric(per(cpu[0]), "dubbo-cpu-ns/call")
	b.ReportMetric(per(cpu[1]), "l4-cpu-ns/call")
	b.ReportMetric(float64(cpu[0])/float64(cpu[1]), "cpu-ratio")
	b.ReportMetric(float64(wall[0])/float64(wall[1]), "wall-ratio")
}

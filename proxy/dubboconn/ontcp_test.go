package dubboconn_test

// Addresses of this file's tests: 127.0.54.0/24 (the waypoint on
// 127.0.54.5, the client's ztunnel on 127.0.54.1, providers on .11 and
// .12, a line echo and a greeter on .13, service VIPs .100 to .102).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
)

// onTCPConfig: istiod's layout of a Service whose port is TCP (a
// tcp_proxy chain per VIP port), with the providers a (canonical revision
// v1) and b (v2) behind .100 and, kept L4 by the cluster's metadata,
// behind .101; a line echo (.102:7000) and a server that speaks first
// (.102:7001).
const onTCPConfig = `
static_resources:
  listeners:
  - name: main_internal
    internal_listener: {}
    filter_chains:
    - name: dubbo-on-tcp
      filter_chain_match: {prefix_ranges: [{address_prefix: 127.0.54.100, prefix_len: 32}], destination_port: 20880}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: providers}
    - name: l4-only
      filter_chain_match: {prefix_ranges: [{address_prefix: 127.0.54.101, prefix_len: 32}], destination_port: 20880}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: providers-l4}
    - name: echo
      filter_chain_match: {prefix_ranges: [{address_prefix: 127.0.54.102, prefix_len: 32}], destination_port: 7000}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: echo}
    - name: greeter
      filter_chain_match: {prefix_ranges: [{address_prefix: 127.0.54.102, prefix_len: 32}], destination_port: 7001}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: greeter}
  clusters:
  - name: providers
    connect_timeout: 2s
    load_assignment:
      cluster_name: providers
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.54.11, port_value: 20880}}}
          metadata: {filter_metadata: {istio: {workload: "prov-a;default;prov;v1;Kubernetes"}}}
        - endpoint: {address: {socket_address: {address: 127.0.54.12, port_value: 20880}}}
          metadata: {filter_metadata: {istio: {workload: "prov-b;default;prov;v2;Kubernetes"}}}
  - name: providers-l4
    connect_timeout: 2s
    metadata: {filter_metadata: {waypoint: {dubbo_on_tcp: false}}}
    load_assignment:
      cluster_name: providers-l4
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.54.11, port_value: 20880}}}
        - endpoint: {address: {socket_address: {address: 127.0.54.12, port_value: 20880}}}
  - name: echo
    connect_timeout: 2s
    load_assignment:
      cluster_name: echo
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.54.13, port_value: 7000}}}}]}]
  - name: greeter
    connect_timeout: 2s
    load_assignment:
      cluster_name: greeter
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.54.13, port_value: 7001}}}}]}]
`

const (
	onTCPWaypoint = "127.0.54.5:15008"
	onTCPClient   = "127.0.54.1"
	greeting      = "220 greeter ready\n"
)

// onTCPMesh is the whole path in process: client ztunnel -> HBONE ->
// waypoint -> HBONE -> the pods' ztunnel -> the pods.
type onTCPMesh struct {
	a, b  *dubbotest.Provider
	stops []func()
}

func startOnTCPMesh(t testing.TB) *onTCPMesh {
	m := &onTCPMesh{}
	t.Cleanup(func() {
		for i := len(m.stops) - 1; i >= 0; i-- {
			m.stops[i]()
		}
	})
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local",
		IDs: []spiffe.ID{benchID("waypoint"), benchID("client"), benchID("pod")}}); err != nil {
		t.Fatal(err)
	}
	var err error
	if m.a, err = dubbotest.StartProvider("127.0.54.11:20880", "a", nil); err != nil {
		t.Fatal(err)
	}
	m.stops = append(m.stops, m.a.Close)
	if m.b, err = dubbotest.StartProvider("127.0.54.12:20880", "b", nil); err != nil {
		t.Fatal(err)
	}
	m.stops = append(m.stops, m.b.Close)
	m.serve(t, "127.0.54.13:7000", func(c net.Conn) { io.Copy(c, c) })
	m.serve(t, "127.0.54.13:7001", func(c net.Conn) {
		io.WriteString(c, greeting)
		io.Copy(c, c)
	})

	src, err := certs.NewSource(certs.IdentityDir(dir, benchID("pod")), certs.SourceOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.stops = append(m.stops, func() { src.Close() })
	pods := []netip.Addr{netip.MustParseAddr("127.0.54.11"), netip.MustParseAddr("127.0.54.12"), netip.MustParseAddr("127.0.54.13")}
	srv, err := hbone.NewServer(hbone.ServerConfig{TLS: src.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{LocalIPs: pods, Log: log}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range pods {
		zln, err := net.Listen("tcp", ip.String()+":15008")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(zln)
	}
	m.stops = append(m.stops, func() { srv.Shutdown(canceled()) })

	cfg := filepath.Join(dir, "waypoint.yaml")
	if err := os.WriteFile(cfg, []byte(onTCPConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := waypoint.Start(waypoint.Options{ConfigFile: cfg, CertDir: certs.IdentityDir(dir, benchID("waypoint")),
		HBONEAddr: onTCPWaypoint, AdminAddr: "off", ConfigPollInterval: -1, DrainTimeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.stops = append(m.stops, func() { w.Shutdown(canceled()) })

	csrc, err := certs.NewSource(certs.IdentityDir(dir, benchID("client")), certs.SourceOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.stops = append(m.stops, func() { csrc.Close() })
	pool := hbone.NewPool(hbone.PoolConfig{Logger: log})
	m.stops = append(m.stops, pool.Close)
	expect := certs.PeerExpectation{ID: benchID("waypoint")}
	for port, authority := range map[string]string{"19101": "127.0.54.100:20880", "19102": "127.0.54.101:20880",
		"19103": "127.0.54.102:7000", "19104": "127.0.54.102:7001"} {
		ln, err := net.Listen("tcp", onTCPClient+":"+port)
		if err != nil {
			t.Fatal(err)
		}
		s := &ztunnel.Source{Pool: pool, Via: netip.MustParseAddrPort(onTCPWaypoint), Authority: authority,
			PeerKey: expect.ID.String(), TLS: csrc.ClientTLSConfig(expect), Log: log}
		go s.Serve(ln)
		m.stops = append(m.stops, func() { s.Shutdown(canceled()) })
	}
	return m
}

// serve runs handle for each connection to addr, until the test ends.
func (m *onTCPMesh) serve(t testing.TB, addr string, handle func(net.Conn)) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
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
	m.stops = append(m.stops, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

var greeter = &hessian.Service{Path: "com.example.Greeter", Interface: "com.example.Greeter", Method: "hello"}

// calls makes n calls, one at a time, on one connection to the client's
// ztunnel port, to service version (none when empty), and returns how
// many each provider answered.
func calls(t *testing.T, port string, n int, version string) map[string]int {
	t.Helper()
	c, err := dubbotest.Dial(onTCPClient + ":" + port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		svc := *greeter
		svc.Version = version
		r, err := c.Call(ctx, svc, []any{fmt.Sprint(i)}, nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if r.Status != 20 {
			t.Fatalf("call %d: status %d %s", i, r.Status, r.ErrorMessage)
		}
		v, _ := r.Value.(string)
		who, _, _ := bytes.Cut([]byte(v), []byte(":"))
		got[string(who)]++
	}
	return got
}

func TestDubboOnTCP(t *testing.T) {
	m := startOnTCPMesh(t)
	t.Run("calls of one connection spread over the providers", func(t *testing.T) {
		got := calls(t, "19101", 100, "")
		if got["a"] < 30 || got["b"] < 30 || got["a"]+got["b"] != 100 {
			t.Errorf("answers by provider %v, want both about 50 of 100", got)
		}
	})
	t.Run("L4 only by the cluster's metadata: one provider", func(t *testing.T) {
		got := calls(t, "19102", 100, "")
		if len(got) != 1 {
			t.Errorf("answers by provider %v, want all from one", got)
		}
	})
	t.Run("version v2 reaches only the provider of canonical revision v2", func(t *testing.T) {
		before := m.a.Calls.Load()
		got := calls(t, "19101", 50, "v2")
		if got["b"] != 50 || m.a.Calls.Load() != before {
			t.Errorf("answers by provider %v (a took %d more), want all 50 from b", got, m.a.Calls.Load()-before)
		}
	})
	t.Run("a version no endpoint has goes to any", func(t *testing.T) {
		got := calls(t, "19101", 40, "v9")
		if got["a"] == 0 || got["b"] == 0 {
			t.Errorf("answers by provider %v, want both", got)
		}
	})
	t.Run("a line echo passes byte for byte", func(t *testing.T) {
		c, err := net.Dial("tcp", onTCPClient+":19103")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var want bytes.Buffer
		for i := range 2000 {
			fmt.Fprintf(&want, "line %d \xda\xbb\x00\xff\n", i)
		}
		go c.Write(want.Bytes())
		got := make([]byte, want.Len())
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Error("the echo's bytes differ from those sent")
		}
	})
	t.Run("a server that speaks first is heard at once", func(t *testing.T) {
		c, err := net.Dial("tcp", onTCPClient+":19104")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != greeting {
			t.Fatalf("greeting %q, %v; want %q", line, err, greeting)
		}
	})
	t.Run("a client whose first byte is 0xda but not Dubbo's is relayed", func(t *testing.T) {
		c, err := net.Dial("tcp", onTCPClient+":19103")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		want := []byte("\xda\x00 not dubbo\n")
		if _, err := c.Write(want); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("echo %q, %v; want %q", got, err, want)
		}
	})
}

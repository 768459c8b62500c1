package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/xds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Addresses of this package's tests: 127.0.9.0/24.

// snapshot builds a config whose clusters reach their endpoints in
// plaintext; each cluster is name -> endpoint addresses, with extra YAML.
func snapshot(t testing.TB, clusters map[string][]string, extra map[string]string) *xds.Snapshot {
	t.Helper()
	y := "static_resources:\n  listeners:\n  - name: l\n    address: {socket_address: {address: 127.0.9.200, port_value: 1}}\n" +
		"    filter_chains: [{filters: [{name: t, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: c0}}]}]\n  clusters:\n"
	for name, eps := range clusters {
		y += fmt.Sprintf("  - name: %s\n    connect_timeout: 1s\n    transport_socket: {name: raw, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}\n%s    load_assignment:\n      cluster_name: %s\n      endpoints: [{lb_endpoints: [", name, extra[name], name)
		for i, ep := range eps {
			host, port, _ := net.SplitHostPort(ep)
			if i > 0 {
				y += ", "
			}
			y += fmt.Sprintf("{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}", host, port)
		}
		y += "]}]\n"
	}
	b, err := xds.ParseBootstrap([]byte(y), "test.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return b.Snapshot
}

func newClusters(t *testing.T, snap *xds.Snapshot) *Clusters {
	c := NewClusters(NewDialer(nil, nil))
	c.Update(snap)
	t.Cleanup(c.Close)
	return c
}

// closedPort returns an address nobody listens on.
func closedPort(t *testing.T, ip string) string {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestConnectTCPErrors(t *testing.T) {
	snap := snapshot(t, map[string][]string{"c0": {"127.0.9.1:1"}, "empty": nil, "refused": {closedPort(t, "127.0.9.2")}}, nil)
	c := newClusters(t, snap)
	for _, tc := range []struct {
		cluster string
		want    status.Kind
	}{{"nope", status.NoCluster}, {"empty", status.NoHealthyUpstream}, {"refused", status.ConnectFailure}} {
		conn, _, done, err := c.ConnectTCP(context.Background(), snap, tc.cluster)
		if err == nil {
			conn.Close()
			done()
			t.Fatalf("%s: connected", tc.cluster)
		}
		if status.KindOf(err) != tc.want {
			t.Errorf("%s: %v (kind %v), want %v", tc.cluster, err, status.KindOf(err), tc.want)
		}
	}
}

// httpBackend serves HTTP/1.1 on ip:0, counting new connections.
func httpBackend(t *testing.T, ip string, h http.HandlerFunc) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	conns := &atomic.Int32{}
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), conns
}

func roundTrip(t *testing.T, u filters.Upstream, cluster string, ctx context.Context) (*l7.Response, error) {
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: l7.HTTP11}
	return u.RoundTrip(ctx, &filters.UpstreamRequest{Cluster: cluster, Request: req, Downstream: &filters.Downstream{}})
}

func TestHTTP1PoolReusesConnections(t *testing.T) {
	addr, conns := httpBackend(t, "127.0.9.3", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	snap := snapshot(t, map[string][]string{"c0": {addr}}, nil)
	u := newClusters(t, snap).HTTP(snap)
	for i := range 5 {
		resp, err := roundTrip(t, u, "c0", context.Background())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.(io.Closer).Close()
		if string(body) != "hello" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1 reused", n)
	}
	// A response closed before its end cannot leave its connection in the pool.
	resp, err := roundTrip(t, u, "c0", context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.(io.Closer).Close()
	resp, err = roundTrip(t, u, "c0", context.Background())
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.(io.Closer).Close()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want a new one after an unread response", n)
	}
}

func TestHTTPErrorsAndBreakers(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	addr, _ := httpBackend(t, "127.0.9.4", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	snap := snapshot(t, map[string][]string{"c0": {addr}, "refused": {closedPort(t, "127.0.9.5")}},
		map[string]string{"c0": "    circuit_breakers: {thresholds: [{max_requests: 1}]}\n"})
	u := newClusters(t, snap).HTTP(snap)

	if _, err := roundTrip(t, u, "refused", context.Background()); status.KindOf(err) != status.ConnectFailure {
		t.Errorf("refused endpoint: %v, want a connect failure", err)
	}
	if _, err := roundTrip(t, u, "missing", context.Background()); status.KindOf(err) != status.NoCluster {
		t.Errorf("unknown cluster: %v, want NoCluster", err)
	}

	// One request in flight fills max_requests: 1; the next overflows.
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := roundTrip(t, u, "c0", ctx)
		first <- err
	}()
	<-entered
	if _, err := roundTrip(t, u, "c0", context.Background()); status.KindOf(err) != status.Overflow {
		t.Errorf("second request with max_requests 1: %v, want an overflow", err)
	}
	// Cancelling the caller ends the request in flight.
	cancel()
	if err := <-first; err == nil || status.KindOf(err) != status.DownstreamGone {
		t.Errorf("cancelled request: %v (kind %v), want DownstreamGone", err, status.KindOf(err))
	}
}

// tcpBackend accepts TCP on ip:0 and closes each connection at once.
func tcpBackend(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestConnectTCPHash(t *testing.T) {
	a, b := tcpBackend(t, "127.0.9.6"), tcpBackend(t, "127.0.9.7")
	for _, tc := range []struct {
		policy string
		hashed bool // the pick follows the hash
	}{
		{"RING_HASH", true},
		{"MAGLEV", true},
		{"ROUND_ROBIN", false},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			snap := snapshot(t, map[string][]string{"c0": {a, b}}, map[string]string{"c0": "    lb_policy: " + tc.policy + "\n"})
			c := newClusters(t, snap)
			hosts := map[uint64]map[string]bool{}
			for i := range 40 {
				h := uint64(i%3) * 0x9e3779b97f4a7c15 // 3 hashes over 2 hosts: round robin does not line up with them
				conn, host, done, err := c.ConnectTCPTo(context.Background(), snap, "c0", lb.PickContext{Hash: h, HasHash: true}, nil)
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				done()
				if hosts[h] == nil {
					hosts[h] = map[string]bool{}
				}
				hosts[h][host.String()] = true
			}
			sticky := true
			for _, hs := range hosts {
				if len(hs) != 1 {
					sticky = false
				}
			}
			if sticky != tc.hashed {
				t.Errorf("each hash on one host: %v, want %v (%v)", sticky, tc.hashed, hosts)
			}
		})
	}
}

func TestHTTPHashUsed(t *testing.T) {
	addr, _ := httpBackend(t, "127.0.9.8", func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range []struct {
		policy string
		want   bool
	}{{"RING_HASH", true}, {"MAGLEV", true}, {"ROUND_ROBIN", false}, {"LEAST_REQUEST", false}, {"RANDOM", false}} {
		t.Run(tc.policy, func(t *testing.T) {
			snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": "    lb_policy: " + tc.policy + "\n"})
			u := newClusters(t, snap).HTTP(snap)
			req := &filters.UpstreamRequest{Cluster: "c0", Hash: 42, HasHash: true, Downstream: &filters.Downstream{},
				Request: &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: l7.HTTP11}}
			resp, err := u.RoundTrip(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			resp.Body.(io.Closer).Close()
			if req.HashUsed != tc.want {
				t.Errorf("HashUsed %v, want %v", req.HashUsed, tc.want)
			}
		})
	}
}

func TestHTTPRetryLimiter(t *testing.T) {
	addr, _ := httpBackend(t, "127.0.9.9", func(w http.ResponseWriter, r *http.Request) {})
	snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": "    circuit_breakers: {thresholds: [{max_retries: 1}]}\n"})
	u := newClusters(t, snap).HTTP(snap)
	rl, ok := u.(filters.RetryLimiter)
	if !ok {
		t.Fatal("the HTTP upstream is not a RetryLimiter")
	}
	release, ok := rl.TryRetry("c0")
	if !ok {
		t.Fatal("the first retry refused")
	}
	if _, ok := rl.TryRetry("c0"); ok {
		t.Error("a second retry past max_retries 1")
	}
	try := func(held bool) error {
		req := &filters.UpstreamRequest{Cluster: "c0", Retry: true, RetryHeld: held, Downstream: &filters.Downstream{},
			Request: &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: l7.HTTP11}}
		resp, err := u.RoundTrip(context.Background(), req)
		if err == nil {
			io.ReadAll(resp.Body)
			resp.Body.(io.Closer).Close()
		}
		return err
	}
	for _, tc := range []struct {
		held bool
		want status.Kind
	}{{true, status.Unknown}, {false, status.Overflow}} {
		if err := try(tc.held); status.KindOf(err) != tc.want || (tc.want == status.Unknown && err != nil) {
			t.Errorf("a retry with its slot held %v, the breaker full: %v, want kind %v", tc.held, err, tc.want)
		}
	}
	release()
	if err := try(false); err != nil {
		t.Errorf("a retry once the slot is back: %v", err)
	}
}

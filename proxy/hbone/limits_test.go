package hbone

import (
	"context"
	"crypto/tls"
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone/hbonetest"
	"github.com/gowaypoint/waypoint/proxy/overload"
)

// TestPerPeerCaps: one identity's connections past the cap are closed
// after the handshake and its streams past the cap are refused 503, each
// counted; a stream that ends makes room again.
func TestPerPeerCaps(t *testing.T) {
	m := newMesh(t)
	const maxConns, maxStreams = 2, 3
	srv, addr := startServer(t, m, "127.0.7.60", echo, func(c *ServerConfig) {
		c.MaxConnectionsPerPeer, c.MaxStreamsPerPeer = maxConns, maxStreams
	})
	conf := m.source(t, clientID).ClientTLSConfig(certs.PeerExpectation{})
	const authority = "127.0.7.99:80"

	connRefused := counter(t, "waypoint_hbone_refused_connections_total", "reason", "peer_connection_limit")
	streamRefused := counter(t, "waypoint_hbone_refused_streams_total", "reason", "peer_stream_limit")
	var conns []*hbonetest.EchoStream
	first := hbonetest.ClientConn(t, addr.String(), conf)
	conns = append(conns, hbonetest.OpenEcho(t, first, authority))
	second := hbonetest.ClientConn(t, addr.String(), conf)
	conns = append(conns, hbonetest.OpenEcho(t, second, authority))
	if got := srv.PeerConnections(clientID); got != maxConns {
		t.Fatalf("peer holds %d connections, want %d", got, maxConns)
	}
	third := hbonetest.ClientConn(t, addr.String(), conf)
	if _, err := third.RoundTrip(hbonetest.Connect(authority, nil)); err == nil {
		t.Fatal("a connection past the per-peer cap carried a stream")
	}
	waitCounter(t, connRefused+1, "waypoint_hbone_refused_connections_total", "reason", "peer_connection_limit")

	// Streams: two are open (one per connection); one more fits.
	pr, pw := io.Pipe()
	extra, err := first.RoundTrip(hbonetest.Connect(authority, pr))
	if err != nil || extra.StatusCode != http.StatusOK {
		t.Fatalf("the stream under the cap: %v %v", extra, err)
	}
	tests := []struct {
		name string
		cc   int // 0: first, 1: second
		want int
	}{
		{"past the cap on the first connection", 0, http.StatusServiceUnavailable},
		{"past the cap on the second connection", 1, http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		c := first
		if tc.cc == 1 {
			c = second
		}
		if got := hbonetest.Status(t, c, "CONNECT", authority); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	waitCounter(t, streamRefused+2, "waypoint_hbone_refused_streams_total", "reason", "peer_stream_limit")
	for i, s := range conns {
		s.Ping(t, "held "+string(rune('a'+i)))
	}
	pw.Close()
	io.Copy(io.Discard, extra.Body) // the echo half-closes after us: its handler returns
	extra.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for hbonetest.Status(t, second, "CONNECT", authority) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("a stream that ended did not make room under the cap")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOverloadedServer: under a saturated stop_accepting_requests, CONNECT
// streams get 503 with retry-after, counted under Envoy's name; under a
// saturated stop_accepting_connections, connections are closed before
// their handshake.
func TestOverloadedServer(t *testing.T) {
	m := newMesh(t)
	var inUse uint64 = 10
	mgr, err := overload.New(overload.Synthesise(overload.Limits{MaxHeapBytes: 1000}, math.MaxInt64, 0), overload.Options{
		Sample:       func() overload.Memory { return overload.Memory{InUse: inUse} },
		FreeOSMemory: func() {},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, m, "127.0.7.61", echo, func(c *ServerConfig) { c.Overload = mgr; c.StatName = "overload_test" })
	conf := m.source(t, clientID).ClientTLSConfig(certs.PeerExpectation{})
	cc := hbonetest.ClientConn(t, addr.String(), conf)
	const authority = "127.0.7.99:80"
	hbonetest.OpenEcho(t, cc, authority).Ping(t, "fine")

	closed := counter(t, "envoy_http_downstream_rq_overload_close", "http_conn_manager_prefix", "overload_test")
	inUse = 960 // 96%: stop_accepting_requests and stop_accepting_connections
	mgr.Refresh()
	resp, err := cc.RoundTrip(hbonetest.Connect(authority, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("retry-after") != overload.RetryAfter {
		t.Fatalf("overloaded: status %d retry-after %q, want 503 and %q", resp.StatusCode, resp.Header.Get("retry-after"), overload.RetryAfter)
	}
	waitCounter(t, closed+1, "envoy_http_downstream_rq_overload_close", "http_conn_manager_prefix", "overload_test")

	rejected := counter(t, "envoy_listener_downstream_cx_overload_reject", "listener", "overload_test")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := (&tls.Dialer{Config: conf}).DialContext(ctx, "tcp", addr.String()); err == nil {
		c.Close()
		t.Fatal("a connection was accepted under stop_accepting_connections")
	}
	waitCounter(t, rejected+1, "envoy_listener_downstream_cx_overload_reject", "listener", "overload_test")

	inUse = 10
	mgr.Refresh()
	if got := hbonetest.Status(t, cc, "CONNECT", authority); got != http.StatusOK {
		t.Fatalf("after the pressure fell: status %d, want 200", got)
	}
}

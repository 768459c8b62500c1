package upstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/xds"
)

func TestProxyHeader(t *testing.T) {
	down4 := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("10.0.0.1:40000"), Destination: netip.MustParseAddrPort("10.96.0.5:9080"),
		LocalAddr: netip.MustParseAddrPort("127.0.0.1:15008")}
	down6 := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("[fd00::1]:40000"), Destination: netip.MustParseAddrPort("[fd00::5]:9080")}
	mixed := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("10.0.0.1:40000"), Destination: netip.MustParseAddrPort("[fd00::5]:9080")}
	mapped := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:40000"), LocalAddr: netip.MustParseAddrPort("10.0.0.2:80")}
	sig := "\r\n\r\n\x00\r\nQUIT\n"
	for _, tc := range []struct {
		name string
		v    xds.ProxyProtocolVersion
		down *filters.Downstream
		want string
	}{
		{"none", xds.ProxyProtocolNone, down4, ""},
		{"v1 IPv4: the original destination", xds.ProxyProtocolV1, down4, "PROXY TCP4 10.0.0.1 10.96.0.5 40000 9080\r\n"},
		{"v1 IPv6", xds.ProxyProtocolV1, down6, "PROXY TCP6 fd00::1 fd00::5 40000 9080\r\n"},
		{"v1 mixed families", xds.ProxyProtocolV1, mixed, "PROXY UNKNOWN\r\n"},
		{"v1 no downstream", xds.ProxyProtocolV1, nil, "PROXY UNKNOWN\r\n"},
		{"v1 mapped IPv4, the local address without a destination", xds.ProxyProtocolV1, mapped, "PROXY TCP4 10.0.0.1 10.0.0.2 40000 80\r\n"},
		{"v2 IPv4", xds.ProxyProtocolV2, down4, sig + "\x21\x11\x00\x0c" + "\x0a\x00\x00\x01" + "\x0a\x60\x00\x05" + "\x9c\x40" + "\x23\x78"},
		{"v2 IPv6", xds.ProxyProtocolV2, down6, sig + "\x21\x21\x00\x24" +
			"\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" +
			"\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05" + "\x9c\x40" + "\x23\x78"},
		{"v2 unknown: LOCAL", xds.ProxyProtocolV2, mixed, sig + "\x20\x00\x00\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(proxyHeader(tc.v, tc.down)); got != tc.want {
				t.Errorf("header %q, want %q", got, tc.want)
			}
		})
	}
}

// ppConn is a server connection whose PROXY v1 line was read off.
type ppConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *ppConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// ppListener reads each accepted connection's PROXY v1 line and records it.
type ppListener struct {
	net.Listener
	mu    sync.Mutex
	lines []string
}

func (l *ppListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	line, _ := r.ReadString('\n')
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return &ppConn{Conn: c, r: r}, nil
}

func (l *ppListener) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// TestProxyProtocolConnections checks that every connection of a cluster with a PROXY
// protocol transport socket starts with the header of the downstream it serves, HTTP/1.1,
// HTTP/2 and TCP alike, and that such connections are not shared.
func TestProxyProtocolConnections(t *testing.T) {
	const pp = "    transport_socket: {name: pp, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport, config: {version: V1}, transport_socket: {name: raw, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}}}\n"
	down := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("10.0.0.1:40000"), Destination: netip.MustParseAddrPort("10.96.0.5:9080")}
	want := "PROXY TCP4 10.0.0.1 10.96.0.5 40000 9080\r\n"
	for i, tc := range []struct {
		name     string
		protocol string // explicit_http_config; "" for TCP
	}{
		{"HTTP/1.1", "http_protocol_options: {}"},
		{"HTTP/2", "http2_protocol_options: {}"},
		{"TCP", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.9."+strconv.Itoa(50+i)+":0")
			if err != nil {
				t.Fatal(err)
			}
			ln := &ppListener{Listener: inner}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
			done := make(chan struct{})
			go func() { defer close(done); srv.Serve(ln) }()
			defer func() { srv.Close(); <-done }()

			extra := pp
			if tc.protocol != "" {
				extra += "    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {" + tc.protocol + "}}}\n"
			}
			snap := snapshot(t, map[string][]string{"c0": {ln.Addr().String()}}, map[string]string{"c0": extra})
			cs := newClusters(t, snap)
			for range 2 {
				if tc.protocol == "" {
					conn, _, end, err := cs.ConnectTCPTo(context.Background(), snap, "c0", lb.PickContext{}, down)
					if err != nil {
						t.Fatal(err)
					}
					io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
					b, _ := io.ReadAll(conn)
					conn.Close()
					end()
					if !strings.HasSuffix(string(b), "ok") {
						t.Fatalf("TCP: %q", b)
					}
					continue
				}
				req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: l7.HTTP11}
				resp, err := cs.HTTP(snap).RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "c0", Request: req, Downstream: down})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.(io.Closer).Close()
				if string(b) != "ok" {
					t.Fatalf("%q", b)
				}
			}
			if got := ln.got(); len(got) != 2 || got[0] != want || got[1] != want {
				t.Errorf("connections began with %q, want 2 with %q", got, want)
			}
			if c, _, _, _ := cs.LB.Cluster("c0").Breakers().InFlight(); c != 0 {
				t.Errorf("%d connections still counted open", c)
			}
		})
	}
}

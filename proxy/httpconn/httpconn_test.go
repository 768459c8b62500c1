package httpconn

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	_ "github.com/gowaypoint/waypoint/filters/all"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/xds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Addresses of this package's tests: 127.0.24.0/24.

const directConfig = `
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.24.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          upgrade_configs: [{upgrade_type: websocket}]
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: /upload}, route: {cluster: c}}
              - {match: {prefix: /ws}, route: {cluster: c, timeout: 0s}}
              - {match: {prefix: /}, direct_response: {status: 200, body: {inline_string: ok}}}
  clusters:
  - name: c
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.24.2, port_value: BACKEND_PORT}}}}]}]}
`

// bodyReader is an upstream that reads request bodies whole.
func bodyReader(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.24.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			// An upgraded echo: after the 101 every byte comes back.
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			rw.Flush()
			io.Copy(conn, rw)
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "read it")
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// serveConfig runs httpconn for config's listener l on loopback until the
// test ends.
func serveConfig(t *testing.T, config string) string {
	t.Helper()
	return serveConfigEnv(t, config, &Env{Log: slog.New(slog.DiscardHandler)})
}

// serveConfigEnv is serveConfig with env.
func serveConfigEnv(t *testing.T, config string, env *Env) string {
	t.Helper()
	return serveConfigAt(t, "127.0.24.1:0", config, env)
}

// serveConfigAt is serveConfigEnv listening on addr.
func serveConfigAt(t *testing.T, addr, config string, env *Env) string {
	t.Helper()
	bs, err := xds.ParseBootstrap([]byte(config), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hcm := bs.Snapshot.Listener("l").FilterChains[0].HTTP
	cl := upstream.NewClusters(upstream.NewDialer(nil, nil))
	cl.Update(bs.Snapshot)
	var store xds.Store
	store.Store(bs.Snapshot)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close) // after acceptAll's cleanup: the handlers use cl
	acceptAll(t, ln, func(c net.Conn) {
		dc := downstream.NewTCP(c.(*net.TCPConn))
		defer dc.Close()
		Serve(context.Background(), dc, NewSource(&store, "l", xds.MatchInput{}, cl, bs.Snapshot, hcm), env)
	})
	return ln.Addr().String()
}

// serve runs httpconn for directConfig on a loopback listener until the
// test ends.
func serve(t *testing.T) string {
	t.Helper()
	return serveConfig(t, strings.Replace(directConfig, "BACKEND_PORT", bodyReader(t), 1))
}

// acceptAll serves each connection ln accepts with handle, on its own
// goroutine, until the test ends; then it closes ln and every connection
// and waits for the handlers.
func acceptAll(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
}

// TestMalformedRequestsGet400AndClose sends each malformed request of RFC
// 9112's list on its own connection: each is answered 400 (431, 501, 505
// where those fit) and its connection closed, while a keep-alive connection
// beside them goes on being served.
func TestMalformedRequestsGet400AndClose(t *testing.T) {
	addr := serve(t)
	good, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	goodReader := bufio.NewReader(good)
	checkGood := func(after string) {
		t.Helper()
		good.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
		good.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(goodReader, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("keep-alive connection broken after %s: %v", after, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	checkGood("start")

	cases := []struct {
		name, req string
		want      int
	}{
		{"content-length and transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two different content-lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"content-length not a number", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc", 400},
		{"negative content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"content-length overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501},
		{"invalid chunk size", "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\nab\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX-B: 1\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"duplicate host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", 400},
		{"HTTP/2.0 on the wire", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"header section too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 70<<10) + "\r\n\r\n", 431},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			conn.Write([]byte(c.req))
			r := bufio.NewReader(conn)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
			if _, err := r.ReadByte(); err != io.EOF {
				t.Errorf("connection still open after the error (read: %v)", err)
			}
			checkGood(c.name)
		})
	}
}

// TestUpgradeRelaysBothWays: a WebSocket-style upgrade goes to the
// upstream, its 101 comes back, and bytes then flow both ways through the
// waypoint until the client half-closes.
func TestUpgradeRelaysBothWays(t *testing.T) {
	addr := serve(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade answer: %v %v", resp, err)
	}
	for _, msg := range []string{"ping", "a longer message after it"} {
		conn.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(r, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q %v", msg, got, err)
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q %v, want a clean end", rest, err)
	}
}

func TestUpgradeNotConfiguredIsRefused(t *testing.T) {
	addr := serve(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2mux\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("unknown upgrade: %v %v, want 403", resp, err)
	}
}

package listener

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/proxy/filterchain/chaintest"
)

// Addresses of this package's tests: 127.78.0.0/24.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// httpConfig is a plaintext HTTP listener (codec AUTO: HTTP/1.1 or h2c)
// whose /slow goes to a backend and whose other paths are answered by the
// router itself.
const httpConfig = `
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: 127.78.0.1, port_value: 7100}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: /slow}, route: {cluster: backend}}
              - {match: {prefix: /}, direct_response: {status: 200, body: {inline_string: ok}}}
  clusters:
  - name: backend
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.78.0.2, port_value: BACKEND_PORT}}}}]}]}
`

// slowBackend answers /slow once release is closed, telling arrived when
// a request has come.
func slowBackend(t *testing.T, arrived chan<- struct{}, release <-chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.78.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "slow")
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startManager opens the listeners of config; the test drains it.
func startManager(t *testing.T, config string) *Manager {
	t.Helper()
	chains, snap := chaintest.Server(t, config)
	m := &Manager{Chains: chains, Log: chains.Log}
	if err := m.Apply(snap); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m.Drain(ctx)
	})
	return m
}

// TestDrainReachesPlaintextConnections: Drain tells a plaintext listener's
// connections to finish, as the HBONE server's drain tells its tunnels: a
// keep-alive HTTP/1.1 connection waiting for its next request is closed at
// once, one whose request is in flight gets its response and then ends, an
// h2c connection gets GOAWAY; so Drain returns as soon as they are done,
// long before its deadline, and no new connection is taken.
func TestDrainReachesPlaintextConnections(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	m := startManager(t, strings.Replace(httpConfig, "BACKEND_PORT", slowBackend(t, arrived, release), 1))
	addr := "127.78.0.1:7100"
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c
	}

	// A keep-alive connection, idle after its first request.
	idle := dial()
	idleR := bufio.NewReader(idle)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, err := http.ReadResponse(idleR, nil); err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %v %v", resp, err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}

	// A connection whose request is at the backend.
	busy := dial()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the backend")
	}

	// An h2c connection, settings exchanged and a PING answered (so that
	// the server has read all we sent).
	h2 := dial()
	io.WriteString(h2, http2.ClientPreface)
	fr := http2.NewFramer(h2, h2)
	fr.WriteSettings()
	for settled := false; !settled; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("h2c handshake: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
				fr.WritePing(false, [8]byte{'s', 'e', 't', 't', 'l', 'e', 'd'})
			}
		case *http2.PingFrame:
			settled = f.IsAck()
		}
	}

	start := time.Now()
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- m.Drain(ctx)
	}()

	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive connection: read %v, want it closed (EOF) by the drain", err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("h2c connection ended without GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeNo {
				t.Errorf("GOAWAY %v, want NO_ERROR", ga.ErrCode)
			}
			break
		}
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Errorf("h2c connection after GOAWAY: %v, want it closed", err)
	}

	close(release)
	busyR := bufio.NewReader(busy)
	resp, err := http.ReadResponse(busyR, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request in flight during the drain: %v %v", resp, err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "slow" {
		t.Errorf("its body: %q %v", b, err)
	}
	if _, err := busyR.ReadByte(); err != io.EOF {
		t.Errorf("after the response in flight: read %v, want the connection closed", err)
	}

	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Drain = %v, want nil: every connection ended on its own", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Drain still waits after every connection ended")
	}
	t.Logf("drained in %v", time.Since(start))
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after Drain")
	}
}

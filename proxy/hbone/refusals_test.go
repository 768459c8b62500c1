package hbone

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone/hbonetest"
	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// counter reads a counter of the process's registry by name and labels
// ("" labels: none); 0 when it does not exist yet.
func counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	fams, err := stats.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						ok = true
					}
				}
				if !ok {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// waitCounter waits until the counter reached want (the server counts
// after the client has seen the refusal).
func waitCounter(t testing.TB, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := counter(t, name, labels...)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stallConn lets writes through and blocks reads until closed: a client
// that sent its ClientHello and never reads the answer.
type stallConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *stallConn) Read([]byte) (int, error) { <-c.closed; return 0, net.ErrClosed }
func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestRefusedConnectionsCounted: every way a connection is turned away
// before its first stream is counted under its reason and under the Envoy
// listener counter for it.
func TestRefusedConnectionsCounted(t *testing.T) {
	m := newMesh(t)
	other := newMesh(t) // another CA
	_, addr := startServer(t, m, "127.0.7.20", echo, func(c *ServerConfig) {
		c.HandshakeTimeout = 2 * time.Second
		c.StatName = "refusals_test"
	})
	client := m.source(t, clientID)
	stranger := other.source(t, clientID)
	intruder := m.source(t, intruderID)
	tlsDial := func(conf *tls.Config) func(t *testing.T) {
		return func(t *testing.T) {
			c, err := tls.Dial("tcp", addr.String(), conf)
			if err == nil {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Read(make([]byte, 1)) // TLS 1.3: a refused certificate shows on first read
				c.Close()
			}
			if err == nil {
				t.Fatal("server accepted the connection")
			}
		}
	}
	tls12 := client.ClientTLSConfig(certs.PeerExpectation{})
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	noCert := client.ClientTLSConfig(certs.PeerExpectation{})
	noCert.GetClientCertificate = nil
	http11 := client.ClientTLSConfig(certs.PeerExpectation{})
	http11.NextProtos = []string{"http/1.1"}

	tests := []struct {
		reason, envoy string
		attack        func(t *testing.T)
	}{
		{"plaintext", "envoy_listener_ssl_connection_error", func(t *testing.T) {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.ReadAll(c)
		}},
		{"protocol_version", "envoy_listener_ssl_connection_error", tlsDial(tls12)},
		{"no_certificate", "envoy_listener_ssl_fail_verify_no_cert", tlsDial(noCert)},
		{"bad_certificate", "envoy_listener_ssl_fail_verify_error", tlsDial(stranger.ClientTLSConfig(certs.PeerExpectation{}))},
		{"peer_identity", "envoy_listener_ssl_fail_verify_san", tlsDial(intruder.ClientTLSConfig(certs.PeerExpectation{TrustDomain: "cluster.local"}))},
		{"alpn", "envoy_listener_ssl_connection_error", tlsDial(http11)},
		{"other", "envoy_listener_ssl_connection_error", func(t *testing.T) { // gone before a byte: the Parker closes it
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}},
		{"other", "envoy_listener_ssl_connection_error", func(t *testing.T) { // gone within a record header: handed back, the handshake reads EOF
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{0x16, 0x03, 0x01})
			c.Close()
		}},
		{"client_hello_timeout", "envoy_listener_downstream_pre_cx_timeout", func(t *testing.T) {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.ReadAll(c) // the server closes it
		}},
		{"handshake_timeout", "envoy_listener_downstream_cx_transport_socket_connect_timeout", func(t *testing.T) {
			raw, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			sc := &stallConn{Conn: raw, closed: make(chan struct{})}
			done := make(chan struct{})
			go func() {
				defer close(done)
				tls.Client(sc, client.ClientTLSConfig(certs.PeerExpectation{})).Handshake()
			}()
			waitCounter(t, 1+before["handshake_timeout"], "waypoint_hbone_refused_connections_total", "reason", "handshake_timeout")
			sc.Close()
			<-done
		}},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			reason := counter(t, "waypoint_hbone_refused_connections_total", "reason", tc.reason)
			envoy := counter(t, tc.envoy, "listener", "refusals_test")
			before[tc.reason] = reason
			tc.attack(t)
			waitCounter(t, reason+1, "waypoint_hbone_refused_connections_total", "reason", tc.reason)
			waitCounter(t, envoy+1, tc.envoy, "listener", "refusals_test")
		})
	}
}

// before holds a reason's counter before its attack, for attacks that
// wait for their own refusal.
var before = map[string]float64{}

// lockedBuffer is a log sink written by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestRefusalLogsThrottled: a burst of refusals of one reason writes a
// line per second at most at INFO, and the lines' suppressed counts add up
// to every refusal: nothing is lost, little is written.
func TestRefusalLogsThrottled(t *testing.T) {
	m := newMesh(t)
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_, addr := startServer(t, m, "127.0.7.21", echo, func(c *ServerConfig) { c.Logger = log })
	const n = 40
	startCount := counter(t, "waypoint_hbone_refused_connections_total", "reason", "plaintext")
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("garbage\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	waitCounter(t, startCount+n, "waypoint_hbone_refused_connections_total", "reason", "plaintext")
	elapsed := time.Since(start)
	lines := logs.lines(t, "hbone: refused connection")
	if max := 1 + int(elapsed/time.Second) + 1; len(lines) == 0 || len(lines) > max {
		t.Fatalf("%d INFO lines for %d refusals in %v, want 1 to %d", len(lines), n, elapsed, max)
	}
	// One more after the interval carries the count of those held back.
	time.Sleep(1100 * time.Millisecond)
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("garbage\r\n\r\n"))
	io.ReadAll(c)
	c.Close()
	waitCounter(t, startCount+n+1, "waypoint_hbone_refused_connections_total", "reason", "plaintext")
	lines = logs.lines(t, "hbone: refused connection")
	total := 0
	for _, l := range lines {
		if l["reason"] != "plaintext" {
			t.Fatalf("line %v, want reason plaintext", l)
		}
		total += 1 + int(l["suppressed"].(float64))
	}
	if total != n+1 {
		t.Fatalf("lines account for %d refusals, want %d: %v", total, n+1, lines)
	}
}

// TestRefusedStreamsCloseTheConnection: a connection whose CONNECT
// streams keep finding no route is closed after MaxRefusedStreams, and
// counted; one whose accepted streams outnumber its refused ones is not.
func TestRefusedStreamsCloseTheConnection(t *testing.T) {
	m := newMesh(t)
	routed := netip.MustParseAddrPort("127.0.7.99:80")
	h := HandlerFunc(func(ctx context.Context, st *ServerStream) {
		if st.Target != routed {
			st.RefuseFlag(503, "NR", "no route to "+st.Authority)
			return
		}
		echo(ctx, st)
	})
	const limit = 5
	_, addr := startServer(t, m, "127.0.7.22", h, func(c *ServerConfig) { c.MaxRefusedStreams = limit })
	src := m.source(t, clientID)
	conf := src.ClientTLSConfig(certs.PeerExpectation{})

	t.Run("mostly refused", func(t *testing.T) {
		closed := counter(t, "waypoint_hbone_too_many_refused_streams_total")
		noRoute := counter(t, "waypoint_hbone_refused_streams_total", "reason", "no_route")
		cc := hbonetest.ClientConn(t, addr.String(), conf)
		for i := range limit {
			if got := hbonetest.Status(t, cc, "CONNECT", "127.0.7.98:"+strconv.Itoa(1000+i)); got != 503 {
				t.Fatalf("stream %d: status %d, want 503", i, got)
			}
		}
		waitCounter(t, closed+1, "waypoint_hbone_too_many_refused_streams_total")
		waitCounter(t, noRoute+limit, "waypoint_hbone_refused_streams_total", "reason", "no_route")
		if _, err := cc.RoundTrip(hbonetest.Connect("127.0.7.98:2000", nil)); err == nil {
			t.Fatal("a stream went through after the connection was closed")
		}
	})
	t.Run("mostly accepted", func(t *testing.T) {
		closed := counter(t, "waypoint_hbone_too_many_refused_streams_total")
		cc := hbonetest.ClientConn(t, addr.String(), conf)
		var held []*hbonetest.EchoStream
		for range 2 * limit {
			held = append(held, hbonetest.OpenEcho(t, cc, routed.String()))
		}
		for i := range 2*limit - 1 {
			if got := hbonetest.Status(t, cc, "CONNECT", "127.0.7.98:"+strconv.Itoa(1000+i)); got != 503 {
				t.Fatalf("stream %d: status %d, want 503", i, got)
			}
		}
		for i, s := range held {
			s.Ping(t, "still open "+strconv.Itoa(i))
		}
		if got := counter(t, "waypoint_hbone_too_many_refused_streams_total"); got != closed {
			t.Fatalf("connection closed with more streams accepted than refused (counter %v -> %v)", closed, got)
		}
	})
}

// TestClassifyHandshake: the certificate errors proxy/certs returns from
// VerifyConnection, whose texts carry the peer's SPIFFE ID, are told apart.
func TestClassifyHandshake(t *testing.T) {
	tests := []struct {
		err  string
		want string
	}{
		{"verify client certificate: peer spiffe://cluster.local/ns/a/sa/b: certificate has expired: now x is after NotAfter y", "bad_certificate"},
		{"verify client certificate: peer spiffe://cluster.local/ns/a/sa/b: certificate is not yet valid: now x", "bad_certificate"},
		{"verify client certificate: peer spiffe://cluster.local/ns/a/sa/b: x509: certificate signed by unknown authority", "bad_certificate"},
		{"verify client certificate: peer spiffe://evil.local/ns/a/sa/b is not in trust domain cluster.local", "peer_identity"},
		{`verify client certificate: peer certificate (subject "CN=x", serial 1): spiffe: "http://x": scheme is not spiffe://`, "peer_identity"},
		{"verify client certificate: peer presented no certificate", "no_certificate"},
		{"tls: client didn't provide a certificate", "no_certificate"},
		{"tls: client offered only unsupported versions: [303]", "protocol_version"},
		{"tls: client requested unsupported application protocols ([http/1.1])", "alpn"},
		{"EOF", "other"},
	}
	for _, tc := range tests {
		if got := classifyHandshake(errors.New(tc.err), true).String(); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.err, got, tc.want)
		}
	}
}

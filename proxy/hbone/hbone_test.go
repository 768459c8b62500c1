package hbone

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone/hbonetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Addresses of this package's tests: 127.0.7.0/24.
var (
	clientID   = spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns1", ServiceAccount: "client"}
	serverID   = spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns1", ServiceAccount: "server"}
	intruderID = spiffe.ID{TrustDomain: "evil.local", Namespace: "ns1", ServiceAccount: "intruder"}
)

type mesh struct {
	dir string
}

func newMesh(t testing.TB) *mesh {
	t.Helper()
	dir := t.TempDir()
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{clientID, serverID}}); err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "evil.local", IDs: []spiffe.ID{intruderID}}); err != nil {
		t.Fatal(err)
	}
	return &mesh{dir: dir}
}

func (m *mesh) source(t testing.TB, id spiffe.ID) *certs.Source {
	t.Helper()
	src, err := certs.NewSource(filepath.Join(m.dir, id.Namespace, id.ServiceAccount), certs.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// echo accepts every stream and sends back what it reads, half-closing
// after the client does.
var echo = HandlerFunc(func(ctx context.Context, st *ServerStream) {
	c, err := st.Accept()
	if err != nil {
		return
	}
	io.Copy(c, c)
})

// startServer serves h with the server identity on addr:0.
func startServer(t testing.TB, m *mesh, addr string, h Handler, tweak func(*ServerConfig)) (*Server, netip.AddrPort) {
	t.Helper()
	src := m.source(t, serverID)
	cfg := ServerConfig{TLS: src.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity, Handler: h, Logger: quiet()}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, ln.Addr().(*net.TCPAddr).AddrPort()
}

func newPool(t testing.TB, tweak func(*PoolConfig)) *Pool {
	cfg := PoolConfig{Logger: quiet()}
	if tweak != nil {
		tweak(&cfg)
	}
	p := NewPool(cfg)
	t.Cleanup(p.Close)
	return p
}

func dest(src *certs.Source, addr netip.AddrPort, expect certs.PeerExpectation) Dest {
	return Dest{Addr: addr, Authority: "127.0.7.99:80", PeerKey: expect.ID.String(), TLS: src.ClientTLSConfig(expect)}
}

func roundTrip(t *testing.T, st *ClientStream, payload []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := st.Write(payload)
		if err == nil {
			err = st.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo returned %d bytes, want %d intact", len(got), len(payload))
	}
}

func TestStreamRoundTrip(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.1", echo, nil)
	p := newPool(t, nil)
	src := m.source(t, clientID)
	for _, size := range []int{1, 64 << 10, 8 << 20} {
		st, err := p.Connect(context.Background(), dest(src, addr, certs.PeerExpectation{ID: serverID}))
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, size)
		rand.Read(payload)
		roundTrip(t, st, payload)
		st.Close()
	}
	if got := p.Stats().Dialed[addr]; got != 1 {
		t.Errorf("dialed %d connections for sequential streams, want 1", got)
	}
}

func TestServerSeesPeerAndAuthority(t *testing.T) {
	m := newMesh(t)
	// What the handler saw, copied: a stream's fields live as long as its handler.
	type seenStream struct {
		Peer    spiffe.ID
		Target  netip.AddrPort
		baggage string
	}
	seen := make(chan seenStream, 1)
	_, addr := startServer(t, m, "127.0.7.2", HandlerFunc(func(ctx context.Context, st *ServerStream) {
		seen <- seenStream{st.Peer, st.Target, st.Header.GetString("baggage")}
		st.Refuse(http.StatusServiceUnavailable, "test")
	}), nil)
	p := newPool(t, nil)
	src := m.source(t, clientID)
	d := dest(src, addr, certs.PeerExpectation{})
	d.Header = &l7.Header{}
	d.Header.Add("baggage", "k8s.namespace.name=ns1")
	_, err := p.Connect(context.Background(), d)
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable {
		t.Fatalf("Connect = %v, want ConnectError 503", err)
	}
	st := <-seen
	if st.Peer != clientID || st.Target != netip.MustParseAddrPort("127.0.7.99:80") || st.baggage != "k8s.namespace.name=ns1" {
		t.Errorf("stream peer %v target %v baggage %q; want %v 127.0.7.99:80 and the header", st.Peer, st.Target, st.baggage, clientID)
	}
}

func TestStreamRefusalsLeaveOtherStreamsAlone(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.3", echo, nil)
	src := m.source(t, clientID)
	cc := hbonetest.ClientConn(t, addr.String(), src.ClientTLSConfig(certs.PeerExpectation{}))

	// A long-lived stream on the same connection, checked after each refusal.
	held := hbonetest.OpenEcho(t, cc, "127.0.7.99:80")
	held.Ping(t, "first")

	cases := []struct {
		name, method, authority string
		want                    int
	}{
		{"GET", "GET", "127.0.7.99:80", 400},
		{"POST", "POST", "127.0.7.99:80", 400},
		{"host name authority", "CONNECT", "reviews.default:80", 400},
		{"no port", "CONNECT", "127.0.7.99", 400},
		{"port zero", "CONNECT", "127.0.7.99:0", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := hbonetest.Status(t, cc, c.method, c.authority); got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
			held.Ping(t, c.name)
		})
	}
}

func TestHandshakeRefusals(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.4", echo, nil)
	intruder := m.source(t, intruderID)
	client := m.source(t, clientID)

	t.Run("plaintext", func(t *testing.T) {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(http2.ClientPreface))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		if bytes.Contains(b, []byte("HTTP/")) || len(b) > 7 {
			t.Fatalf("server answered plaintext with %q; want a TLS alert at most", b)
		}
	})
	t.Run("foreign trust domain", func(t *testing.T) {
		conf := intruder.ClientTLSConfig(certs.PeerExpectation{TrustDomain: "cluster.local"})
		c, err := tls.Dial("tcp", addr.String(), conf)
		if err == nil {
			// TLS 1.3 clients learn of a refused certificate on first read.
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatal("server accepted a client from another trust domain")
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		conf := client.ClientTLSConfig(certs.PeerExpectation{})
		conf.GetClientCertificate = nil
		c, err := tls.Dial("tcp", addr.String(), conf)
		if err == nil {
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatal("server accepted a client without a certificate")
		}
	})
}

func TestPoolUnexpectedPeerIdentity(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.5", echo, nil)
	p := newPool(t, nil)
	src := m.source(t, clientID)
	want := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns1", ServiceAccount: "someone-else"}
	_, err := p.Connect(context.Background(), dest(src, addr, certs.PeerExpectation{ID: want}))
	if err == nil || !strings.Contains(err.Error(), "someone-else") {
		t.Fatalf("Connect = %v, want an identity mismatch naming the expected identity", err)
	}
	if n := p.Stats().Conns[addr]; n != 0 {
		t.Errorf("%d connections pooled to a peer that failed verification", n)
	}
}

// countingDial counts dials and the most ever in flight at once.
type countingDial struct {
	inFlight, maxInFlight, total atomic.Int32
}

func (d *countingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n := d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	for {
		m := d.maxInFlight.Load()
		if n <= m || d.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	d.total.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// holdStreams opens n streams at once and keeps them open until the
// returned function is called.
func holdStreams(t *testing.T, p *Pool, d Dest, n int) (release func()) {
	t.Helper()
	streams := make([]*ClientStream, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := p.Connect(context.Background(), d)
			if err != nil {
				errs <- err
				return
			}
			streams[i] = st
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Connect: %v", err)
	}
	return func() {
		for _, st := range streams {
			st.Close()
		}
	}
}

func TestPoolOpensOnlyTheConnectionsItNeeds(t *testing.T) {
	cases := []struct {
		name        string
		serverLimit uint32
		streams     int
		wantConns   int
	}{
		{"ztunnel limit 100, 250 streams", 100, 250, 3},
		{"peer limit 10, 25 streams", 10, 25, 3},
		{"one stream", 100, 1, 1},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMesh(t)
			ip := netip.AddrFrom4([4]byte{127, 0, 7, byte(10 + i)})
			_, addr := startServer(t, m, ip.String(), echo, func(sc *ServerConfig) { sc.MaxConcurrentStreams = c.serverLimit })
			var cd countingDial
			p := newPool(t, func(pc *PoolConfig) { pc.Dial = cd.dial })
			src := m.source(t, clientID)
			release := holdStreams(t, p, dest(src, addr, certs.PeerExpectation{ID: serverID}), c.streams)
			defer release()
			if got := p.Stats().Conns[addr]; got != c.wantConns {
				t.Errorf("open connections = %d, want %d", got, c.wantConns)
			}
			if got := cd.total.Load(); got != int32(c.wantConns) {
				t.Errorf("dials = %d, want %d", got, c.wantConns)
			}
			if got := cd.maxInFlight.Load(); got != 1 {
				t.Errorf("at most %d dials in flight at once, want 1", got)
			}
		})
	}
}

func TestShutdownDrainsStreams(t *testing.T) {
	m := newMesh(t)
	srv, addr := startServer(t, m, "127.0.7.20", echo, nil)
	p := newPool(t, nil)
	src := m.source(t, clientID)
	d := dest(src, addr, certs.PeerExpectation{ID: serverID})
	st, err := p.Connect(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// The stream in flight keeps working through the drain.
	roundTrip(t, st, []byte("still here"))
	st.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v, want a clean drain", err)
	}
	if _, err := p.Connect(context.Background(), d); err == nil {
		t.Fatal("a new stream succeeded after Shutdown")
	}
}

// TestServerHalfClosesFirst: the server ends its side (END_STREAM) while the
// client still sends; the client reads EOF, then finishes sending, and the
// server reads it all.
func TestServerHalfClosesFirst(t *testing.T) {
	m := newMesh(t)
	got := make(chan string, 1)
	_, addr := startServer(t, m, "127.0.7.21", HandlerFunc(func(ctx context.Context, st *ServerStream) {
		c, err := st.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("bye"))
		c.CloseWrite()
		rest, _ := io.ReadAll(c)
		got <- string(rest)
	}), nil)
	p := newPool(t, nil)
	st, err := p.Connect(context.Background(), dest(m.source(t, clientID), addr, certs.PeerExpectation{ID: serverID}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := io.ReadAll(st)
	if err != nil || string(b) != "bye" {
		t.Fatalf("client read %q %v, want the server's bytes then EOF", b, err)
	}
	st.Write([]byte("still sending after the server's END_STREAM"))
	st.CloseWrite()
	if s := <-got; s != "still sending after the server's END_STREAM" {
		t.Fatalf("server read %q", s)
	}
}

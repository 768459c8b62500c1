package upstream

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// Tests of connection termination (Envoy's UC): an upstream connection
// that ends under a request already sent, before its response. Addresses:
// 127.0.204.0/24.

// scriptBackend is an HTTP/1.1 server whose answer to a request depends on
// its path's last element:
//
//	ok            200, the connection kept
//	close         the connection closed (FIN) without a byte of answer
//	reset         the connection reset (RST) without a byte of answer
//	partial       half a response head, then the connection closed
//	hang          no answer until the connection ends
//	*-once        the first such request as above, the next ones ok
//
// It counts requests per path and connections accepted.
type scriptBackend struct {
	addr string
	ln   net.Listener

	mu       sync.Mutex
	arrivals map[string]int
	conns    int
	open     map[net.Conn]struct{}
	arrived  chan string // each request's path, as it arrives (buffered)

	wg sync.WaitGroup // the accept loop and the connections' goroutines
}

func newScriptBackend(t *testing.T, ip string) *scriptBackend {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptBackend{addr: ln.Addr().String(), ln: ln, arrivals: map[string]int{},
		open: map[net.Conn]struct{}{}, arrived: make(chan string, 64)}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.stop)
	return b
}

func (b *scriptBackend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns++
		b.open[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(c)
	}
}

// stop closes the listener and every connection, and waits for the
// goroutines.
func (b *scriptBackend) stop() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.open {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *scriptBackend) serve(c net.Conn) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.open, c)
		b.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		b.mu.Lock()
		b.arrivals[req.URL.Path]++
		n := b.arrivals[req.URL.Path]
		b.mu.Unlock()
		b.arrived <- req.URL.Path
		action := req.URL.Path[strings.LastIndexByte(req.URL.Path, '/')+1:]
		if a, ok := strings.CutSuffix(action, "-once"); ok {
			action = "ok"
			if n == 1 {
				action = a
			}
		}
		switch action {
		case "close":
			return
		case "reset":
			c.(*net.TCPConn).SetLinger(0)
			return
		case "partial":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
			return
		case "hang":
			io.Copy(io.Discard, br)
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

func (b *scriptBackend) counts(path string) (arrivals, conns int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.arrivals[path], b.conns
}

// counter reads a counter's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// send sends method path to cluster through u and returns the status of the
// response, read whole, or the error.
func send(u filters.Upstream, cluster, method, path string, header ...string) (int, error) {
	req := &l7.Request{Method: method, Scheme: "http", Authority: []byte("svc"), Path: []byte(path), Proto: l7.HTTP11}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := u.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: cluster, Request: req, Downstream: &filters.Downstream{}})
	if err != nil {
		return 0, err
	}
	if resp.Body != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.(io.Closer).Close()
	}
	return resp.Status, nil
}

// TestHTTP1ConnectionTermination checks the HTTP/1.1 pool against an
// upstream that ends the connection under a request: a connection
// termination (503 UC), counted once per connection as Envoy counts it;
// and, on a connection that served before, the resend of net/http's
// rule: a replayable request (GET, HEAD, OPTIONS, TRACE, or an
// idempotency key) whose connection ended before any byte of the response
// is sent once more on a new connection, any other request is not.
func TestHTTP1ConnectionTermination(t *testing.T) {
	for i, tc := range []struct {
		name      string
		method    string
		header    []string
		warm      bool   // a request first, leaving its connection idle in the pool
		path      string // what the test asks for
		want      status.Kind
		arrivals  int // of path at the backend
		conns     int // connections the backend accepted
		destroyed float64
	}{
		{name: "fresh connection closed before any byte", method: "GET", path: "/close", want: status.ConnectionTermination, arrivals: 1, conns: 1, destroyed: 1},
		{name: "fresh connection reset before any byte", method: "GET", path: "/reset", want: status.ConnectionTermination, arrivals: 1, conns: 1, destroyed: 1},
		{name: "fresh connection closed mid-head", method: "GET", path: "/partial", want: status.ConnectionTermination, arrivals: 1, conns: 1, destroyed: 1},
		{name: "fresh connection: a GET is not resent", method: "GET", path: "/close-once", want: status.ConnectionTermination, arrivals: 1, conns: 1, destroyed: 1},
		{name: "reused: a GET is resent on a new connection", method: "GET", warm: true, path: "/close-once", want: status.Unknown, arrivals: 2, conns: 2, destroyed: 1},
		{name: "reused: a reset GET is resent", method: "GET", warm: true, path: "/reset-once", want: status.Unknown, arrivals: 2, conns: 2, destroyed: 1},
		{name: "reused: a HEAD is resent", method: "HEAD", warm: true, path: "/close-once", want: status.Unknown, arrivals: 2, conns: 2, destroyed: 1},
		{name: "reused: an OPTIONS is resent", method: "OPTIONS", warm: true, path: "/close-once", want: status.Unknown, arrivals: 2, conns: 2, destroyed: 1},
		{name: "reused: a POST is not resent", method: "POST", warm: true, path: "/close-once", want: status.ConnectionTermination, arrivals: 1, conns: 1, destroyed: 1},
		{name: "reused: a DELETE is not resent", method: "DELETE", warm: true, path: "/close-once", want: status.ConnectionTermination, arrivals: 1, conns: 1, destroyed: 1},
		{name: "reused: a POST with Idempotency-Key is resent", method: "POST", header: []string{"idempotency-key", "k1"}, warm: true, path: "/close-once", want: status.Unknown, arrivals: 2, conns: 2, destroyed: 1},
		{name: "reused: a PUT with X-Idempotency-Key is resent", method: "PUT", header: []string{"x-idempotency-key", "k2"}, warm: true, path: "/close-once", want: status.Unknown, arrivals: 2, conns: 2, destroyed: 1},
		{name: "reused: a GET whose response began is not resent", method: "GET", warm: true, path: "/partial-once", want: status.ConnectionTermination, arrivals: 1, conns: 1, destroyed: 1},
		{name: "reused: a GET is resent once only", method: "GET", warm: true, path: "/close", want: status.ConnectionTermination, arrivals: 2, conns: 2, destroyed: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newScriptBackend(t, "127.0.204."+strconv.Itoa(20+i))
			cluster := "uc-h1-" + strconv.Itoa(i)
			snap := snapshot(t, map[string][]string{"c0": {b.addr}, cluster: {b.addr}}, nil)
			u := newClusters(t, snap).HTTP(snap)
			if tc.warm {
				if s, err := send(u, cluster, "GET", "/warm/ok"); err != nil || s != 200 {
					t.Fatalf("warm-up: %d %v", s, err)
				}
			}
			cs := metrics.Cluster(cluster)
			destroyed, remote := counter(t, cs.DestroyWithActive), counter(t, cs.DestroyRemoteWithActive)
			s, err := send(u, cluster, tc.method, tc.path, tc.header...)
			if k := status.KindOf(err); k != tc.want || err == nil && s != 200 {
				t.Errorf("status %d, error %v (kind %v); want kind %v", s, err, k, tc.want)
			}
			if err != nil && (status.KindOf(err).HTTPStatus() != 503 || status.KindOf(err).ResponseFlag() != "UC") {
				t.Errorf("answered %d %s, want 503 UC", status.KindOf(err).HTTPStatus(), status.KindOf(err).ResponseFlag())
			}
			arrivals, conns := b.counts(tc.path)
			if arrivals != tc.arrivals || conns != tc.conns {
				t.Errorf("the backend saw the request %d times on %d connections; want %d on %d", arrivals, conns, tc.arrivals, tc.conns)
			}
			if d, r := counter(t, cs.DestroyWithActive)-destroyed, counter(t, cs.DestroyRemoteWithActive)-remote; d != tc.destroyed || r != tc.destroyed {
				t.Errorf("upstream_cx_destroy_with_active_rq +%v, _remote_ +%v; want +%v", d, r, tc.destroyed)
			}
		})
	}
}

// rawH2Backend serves HTTP/2 with prior knowledge on ip:0, by hand: on
// each connection it answers the client's SETTINGS, and once streams
// requests (HEADERS) have come it runs act with the connection, its framer
// and their stream ids, then reads on until the connection ends.
func rawH2Backend(t *testing.T, ip string, streams int, act func(c *net.TCPConn, fr *http2.Framer, ids []uint32)) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	serve := func(c *net.TCPConn) {
		defer wg.Done()
		defer c.Close()
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		if fr.WriteSettings() != nil {
			return
		}
		var ids []uint32
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.HeadersFrame:
				ids = append(ids, f.StreamID)
				if len(ids) == streams {
					act(c, fr, ids)
				}
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go serve(c.(*net.TCPConn))
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestHTTP2ConnectionTermination checks the HTTP/2 pool as Envoy's: a
// connection that ends under its streams (closed, reset, or closed after
// a GOAWAY that covers them) fails each with a connection termination
// (503 UC), counted per stream (upstream_rq_pending_failure_eject) and
// once for the connection (upstream_cx_destroy_with_active_rq,
// upstream_cx_destroy_remote_with_active_rq); a RST_STREAM of the one
// stream is a remote reset (503 UR, upstream_rq_rx_reset), and a stream
// refused (REFUSED_STREAM, or above a GOAWAY's last stream id) an upstream
// refused stream (503 UR, safe to retry), neither counted as a
// termination.
func TestHTTP2ConnectionTermination(t *testing.T) {
	closeConn := func(c *net.TCPConn, _ *http2.Framer, _ []uint32) { c.Close() }
	for i, tc := range []struct {
		name      string
		streams   int
		act       func(c *net.TCPConn, fr *http2.Framer, ids []uint32)
		want      status.Kind
		flag      string
		ejected   float64 // upstream_rq_pending_failure_eject
		destroyed float64 // upstream_cx_destroy_with_active_rq and its _remote_
		rxReset   float64
	}{
		{name: "connection closed under two streams", streams: 2, act: closeConn,
			want: status.ConnectionTermination, flag: "UC", ejected: 2, destroyed: 1},
		{name: "connection reset under a stream", streams: 1, act: func(c *net.TCPConn, _ *http2.Framer, _ []uint32) {
			c.SetLinger(0)
			c.Close()
		}, want: status.ConnectionTermination, flag: "UC", ejected: 1, destroyed: 1},
		{name: "GOAWAY covering the stream, then the connection closed", streams: 1, act: func(c *net.TCPConn, fr *http2.Framer, ids []uint32) {
			fr.WriteGoAway(ids[0], http2.ErrCodeInternal, nil)
			c.Close()
		}, want: status.ConnectionTermination, flag: "UC", ejected: 1, destroyed: 1},
		{name: "RST_STREAM of the one stream", streams: 1, act: func(_ *net.TCPConn, fr *http2.Framer, ids []uint32) {
			fr.WriteRSTStream(ids[0], http2.ErrCodeInternal)
		}, want: status.UpstreamReset, flag: "UR", rxReset: 1},
		{name: "REFUSED_STREAM", streams: 1, act: func(_ *net.TCPConn, fr *http2.Framer, ids []uint32) {
			fr.WriteRSTStream(ids[0], http2.ErrCodeRefusedStream)
		}, want: status.RefusedStream, flag: "UR"},
		{name: "GOAWAY below the stream", streams: 1, act: func(_ *net.TCPConn, fr *http2.Framer, _ []uint32) {
			fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		}, want: status.RefusedStream, flag: "UR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawH2Backend(t, "127.0.204."+strconv.Itoa(40+i), tc.streams, tc.act)
			cluster := "uc-h2-" + strconv.Itoa(i)
			snap := snapshot(t, map[string][]string{"c0": {addr}, cluster: {addr}}, map[string]string{cluster: useHTTP2})
			u := newClusters(t, snap).HTTP(snap)
			cs := metrics.Cluster(cluster)
			ejected, destroyed, remote, rx := counter(t, cs.PendingFailureEject), counter(t, cs.DestroyWithActive),
				counter(t, cs.DestroyRemoteWithActive), counter(t, cs.RxReset)
			errs := make(chan error, tc.streams)
			for range tc.streams {
				go func() {
					_, err := send(u, cluster, "GET", "/")
					errs <- err
				}()
			}
			for range tc.streams {
				err := <-errs
				if k := status.KindOf(err); k != tc.want || k.HTTPStatus() != 503 || k.ResponseFlag() != tc.flag {
					t.Errorf("error %v: kind %v (%d %s), want %v (503 %s)", err, k, k.HTTPStatus(), k.ResponseFlag(), tc.want, tc.flag)
				}
			}
			got := [4]float64{counter(t, cs.PendingFailureEject) - ejected, counter(t, cs.DestroyWithActive) - destroyed,
				counter(t, cs.DestroyRemoteWithActive) - remote, counter(t, cs.RxReset) - rx}
			if want := [4]float64{tc.ejected, tc.destroyed, tc.destroyed, tc.rxReset}; got != want {
				t.Errorf("pending_failure_eject, cx_destroy_with_active_rq, cx_destroy_remote_with_active_rq, rq_rx_reset: +%v, want +%v", got, want)
			}
		})
	}
}

// cutter forwards the TCP connections it accepts on ln to to, until cut
// resets them all and stops accepting, as a ztunnel killed drops its
// connections.
type cutter struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns []*net.TCPConn
	wg    sync.WaitGroup // the accept loop and the copies
}

func newCutter(t *testing.T, addr, to string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, to: to}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(c.cut)
	return c
}

func (c *cutter) accept() {
	defer c.wg.Done()
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", c.to)
		if err != nil {
			down.Close()
			continue
		}
		c.mu.Lock()
		c.conns = append(c.conns, down.(*net.TCPConn), up.(*net.TCPConn))
		c.mu.Unlock()
		c.wg.Add(2)
		go func() { defer c.wg.Done(); io.Copy(up, down); up.Close() }()
		go func() { defer c.wg.Done(); io.Copy(down, up); down.Close() }()
	}
}

// cut resets every connection, closes the listener and waits for the
// copies. Idempotent.
func (c *cutter) cut() {
	c.ln.Close()
	c.mu.Lock()
	for _, tc := range c.conns {
		tc.SetLinger(0)
		tc.Close()
	}
	c.conns = nil
	c.mu.Unlock()
	c.wg.Wait()
}

// TestHBONEConnectionTermination runs HTTP/1.1 over HBONE to a pod
// (127.0.204.11, its ztunnel stand-in on :15008 behind a cutter). The
// app's close of an idle connection reaches the waypoint as its tunnel's
// end: a GET on that connection is resent, a POST is not (UC). The
// ztunnel killed under two requests (its HBONE connection reset) fails
// both with a connection termination, the one on a reused connection
// included: the loss of the HBONE connection is not the app's idle close,
// so nothing is resent.
func TestHBONEConnectionTermination(t *testing.T) {
	const pod = "127.0.204.11"
	dir := t.TempDir()
	wp := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "waypoint"}
	podID := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "pod"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{wp, podID}}); err != nil {
		t.Fatal(err)
	}
	source := func(id spiffe.ID) *certs.Source {
		src, err := certs.NewSource(certs.IdentityDir(dir, id), certs.SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		return src
	}
	wpSrc, podSrc := source(wp), source(podID)

	app := newScriptBackend(t, pod)
	quiet := slog.New(slog.DiscardHandler)
	zt, err := hbone.NewServer(hbone.ServerConfig{TLS: podSrc.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{Log: quiet}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	zln, err := net.Listen("tcp", pod+":0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); zt.Serve(zln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		zt.Shutdown(ctx)
		<-served
	})
	ztunnelKilled := newCutter(t, pod+":15008", zln.Addr().String())

	b, err := xds.ParseBootstrap([]byte(`
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.204.1, port_value: 1}}
    filter_chains: [{filters: [{name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: uc-hbone}}]}]
  clusters:
  - {name: uc-hbone, connect_timeout: 5s}
`), "uc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cl := *b.Snapshot.Cluster("uc-hbone")
	cl.Endpoints = []xds.Endpoint{{Address: netip.MustParseAddrPort(app.addr), Weight: 1}}
	snap := &xds.Snapshot{Clusters: map[string]*xds.Cluster{"uc-hbone": &cl}}
	pool := hbone.NewPool(hbone.PoolConfig{Logger: quiet})
	cs := NewClusters(NewDialer(pool, wpSrc))
	t.Cleanup(pool.Close)
	t.Cleanup(cs.Close) // first
	cs.Update(snap)
	u := cs.HTTP(snap)
	expect := func(method, path string, want status.Kind, arrivals int) {
		t.Helper()
		s, err := send(u, "uc-hbone", method, path)
		if k := status.KindOf(err); k != want || err == nil && s != 200 {
			t.Errorf("%s %s: status %d, error %v (kind %v); want kind %v", method, path, s, err, k, want)
		}
		if n, _ := app.counts(path); n != arrivals {
			t.Errorf("%s %s reached the app %d times, want %d", method, path, n, arrivals)
		}
	}

	expect("GET", "/a/ok", status.Unknown, 1)
	expect("GET", "/b/close-once", status.Unknown, 2)                // resent on a new tunnel
	expect("POST", "/c/close-once", status.ConnectionTermination, 1) // not resent
	expect("GET", "/d/ok", status.Unknown, 1)                        // an idle connection again

	m := metrics.Cluster("uc-hbone")
	destroyed := counter(t, m.DestroyWithActive)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := send(u, "uc-hbone", "GET", "/e/hang")
			errs <- err
		}()
	}
	for hanging := 0; hanging < 2; {
		select {
		case p := <-app.arrived:
			if p == "/e/hang" {
				hanging++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the hanging requests never reached the app")
		}
	}
	ztunnelKilled.cut()
	for range 2 {
		if err := <-errs; status.KindOf(err) != status.ConnectionTermination {
			t.Errorf("a request under the killed ztunnel: %v (kind %v), want a connection termination", err, status.KindOf(err))
		}
	}
	if n, _ := app.counts("/e/hang"); n != 2 {
		t.Errorf("the hanging requests reached the app %d times, want 2 (none resent)", n)
	}
	if d := counter(t, m.DestroyWithActive) - destroyed; d != 2 {
		t.Errorf("upstream_cx_destroy_with_active_rq +%v, want +2", d)
	}
}

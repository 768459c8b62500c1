package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// eventually waits up to 10 s for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// trackedBackend serves HTTP/1.1 and HTTP/2 with prior knowledge on ip:0
// and counts its open connections.
func trackedBackend(t testing.TB, ip string, h http.HandlerFunc) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int32
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), &open
}

const useHTTP2 = "    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {}}}}\n"

// TestEndpointLeavesWithHost: when an update drops a host, its pools go
// with it: the exchange in flight finishes, then its connection closes, and
// Clusters keeps nothing of the endpoint.
func TestEndpointLeavesWithHost(t *testing.T) {
	for _, tc := range []struct {
		name, extra, ip string
		proto           l7.Proto
	}{
		{"HTTP/1.1", "", "127.0.9.60", l7.HTTP11},
		{"HTTP/2", useHTTP2, "127.0.9.61", l7.HTTP2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			addr, open := trackedBackend(t, tc.ip, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					entered <- struct{}{}
					<-release
				}
				io.WriteString(w, "ok")
			})
			other, _ := trackedBackend(t, tc.ip, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") })
			snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": tc.extra})
			cs := newClusters(t, snap)
			u := cs.HTTP(snap)
			call := func(path string) (string, error) {
				req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte(path), Proto: tc.proto}
				resp, err := u.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "c0", Request: req, Downstream: &filters.Downstream{}})
				if err != nil {
					return "", err
				}
				defer resp.Body.(io.Closer).Close()
				b, err := io.ReadAll(resp.Body)
				return string(b), err
			}
			if _, err := call("/"); err != nil {
				t.Fatal(err)
			}
			if n := cs.Endpoints(); n != 1 {
				t.Fatalf("%d endpoints after a request, want 1", n)
			}
			slow := make(chan error, 1)
			go func() {
				body, err := call("/slow")
				if err == nil && body != "ok" {
					err = io.ErrUnexpectedEOF
				}
				slow <- err
			}()
			<-entered
			next := snapshot(t, map[string][]string{"c0": {other}}, map[string]string{"c0": tc.extra})
			cs.Update(next)
			if n := cs.Endpoints(); n != 0 {
				t.Errorf("%d endpoints after the update dropped the host, want 0", n)
			}
			close(release)
			if err := <-slow; err != nil {
				t.Fatalf("the exchange in flight when its host left: %v", err)
			}
			eventually(t, "closed the connections to the host that left", func() bool { return open.Load() == 0 })
			// The balancer picks from the hosts of the last update, even
			// for a stream that runs on the old snapshot.
			if body, err := call("/"); err != nil || body != "other" {
				t.Errorf("after the update: %q, %v; want the new host", body, err)
			}
			if n := cs.Endpoints(); n != 1 {
				t.Errorf("%d endpoints, want the new host's", n)
			}
		})
	}
}

// TestHTTP2ReservedWhenHostLeaves: a request that reserved its stream on
// a connection just before its host left finds the connection draining;
// it fails as a refused stream (never sent: safe to retry elsewhere), not
// as a reset.
func TestHTTP2ReservedWhenHostLeaves(t *testing.T) {
	addr, open := trackedBackend(t, "127.0.9.65", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": useHTTP2})
	cs := newClusters(t, snap)
	cl := snap.Cluster("c0")
	h := cs.LB.Cluster("c0").Hosts()[0]
	ep := cs.endpointOf(h)
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: l7.HTTP2}
	x := &exchange{ctx: context.Background(), pick: pick{host: h, ep: ep}, req: req}
	c, err := ep.h2.reserve(context.Background(), cs, cl, &x.pick)
	if err != nil {
		t.Fatal(err)
	}
	cs.Update(snapshot(t, map[string][]string{"c0": nil}, nil)) // the host leaves
	_, err = ep.h2.send(context.Background(), nil, c, x)
	if k := status.KindOf(err); k != status.RefusedStream {
		t.Fatalf("the reserved stream failed with %v (kind %v), want a refused stream", err, k)
	}
	eventually(t, "closed the drained connection", func() bool { return open.Load() == 0 })
}

// TestHTTP2DialEndsInClosedPool: the requests waiting for a dial that
// ends after their host left (its pool closed) fail as a connect failure,
// which the route's retry_on connect-failure sends to another host; not
// as a reset, which it does not retry.
func TestHTTP2DialEndsInClosedPool(t *testing.T) {
	addr, open := trackedBackend(t, "127.0.9.66", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": useHTTP2})
	cs := newClusters(t, snap)
	h := cs.LB.Cluster("c0").Hosts()[0]
	pk := pick{host: h, ep: cs.endpointOf(h)}
	p := &h2Pool{}
	p.mu.Lock()
	w, _ := p.dial.Join()
	p.mu.Unlock()
	p.Close() // the host leaves while the dial is in flight
	p.dialOne(cs, snap.Cluster("c0"), &pk, w)
	err := w.Wait(context.Background())
	if k := status.KindOf(err); k != status.ConnectFailure {
		t.Fatalf("waiters of the dial got %v (kind %v), want a connect failure", err, k)
	}
	eventually(t, "closed what the dial opened", func() bool { return open.Load() == 0 })
}

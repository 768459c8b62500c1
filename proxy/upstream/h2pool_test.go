package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// h2cBackend serves HTTP/2 with prior knowledge on ip:0; each request waits for release.
// It counts connections.
func h2cBackend(t *testing.T, ip string, release <-chan struct{}, entered chan<- struct{}) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), &conns
}

// TestHTTP2MaxConcurrentStreams checks that a cluster's http2_protocol_options
// max_concurrent_streams caps the streams of each upstream connection, as the peer's SETTINGS
// do: past it, the pool opens another connection.
func TestHTTP2MaxConcurrentStreams(t *testing.T) {
	for i, tc := range []struct {
		max       int
		n         int
		wantConns int32
	}{{1, 3, 3}, {2, 4, 2}, {100, 4, 1}} {
		t.Run(strconv.Itoa(tc.max), func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan struct{}, tc.n)
			addr, conns := h2cBackend(t, "127.0.9."+strconv.Itoa(40+i), release, entered)
			extra := "    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {max_concurrent_streams: " + strconv.Itoa(tc.max) + "}}}}\n"
			snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": extra})
			u := newClusters(t, snap).HTTP(snap)
			var wg sync.WaitGroup
			errs := make(chan error, tc.n)
			for range tc.n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: l7.HTTP2}
					resp, err := u.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "c0", Request: req, Downstream: &filters.Downstream{}})
					if err != nil {
						errs <- err
						return
					}
					io.ReadAll(resp.Body)
					resp.Body.(io.Closer).Close()
				}()
			}
			for range tc.n {
				<-entered // all in the backend at once
			}
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := conns.Load(); n != tc.wantConns {
				t.Errorf("%d requests at once over %d connections, want %d", tc.n, n, tc.wantConns)
			}
		})
	}
}

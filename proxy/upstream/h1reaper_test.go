package upstream

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// TestHTTP1IdleReaper: an idle HTTP/1.1 connection closes after the
// cluster's idle_timeout without a later request to find it stale; with
// idle_timeout 0 it stays.
func TestHTTP1IdleReaper(t *testing.T) {
	idle := func(d string) string {
		return "    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, common_http_protocol_options: {idle_timeout: " + d + "}, explicit_http_config: {http_protocol_options: {}}}}\n"
	}
	for _, tc := range []struct {
		name, extra, ip string
		conns           int  // requests at once, each leaving a connection idle
		reaped          bool // the connections close while idle
	}{
		{name: "one idle connection closes", extra: idle("0.1s"), ip: "127.0.9.62", conns: 1, reaped: true},
		{name: "every idle connection closes", extra: idle("0.1s"), ip: "127.0.9.63", conns: 5, reaped: true},
		{name: "idle_timeout 0 keeps them", extra: idle("0s"), ip: "127.0.9.64", conns: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered := make(chan struct{}, tc.conns)
			release := make(chan struct{})
			addr, open := trackedBackend(t, tc.ip, func(w http.ResponseWriter, r *http.Request) {
				entered <- struct{}{}
				<-release
				io.WriteString(w, "ok")
			})
			snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": tc.extra})
			cs := newClusters(t, snap)
			u := cs.HTTP(snap)
			errs := make(chan error, tc.conns)
			for range tc.conns {
				go func() {
					req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: l7.HTTP11}
					resp, err := u.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "c0", Request: req, Downstream: &filters.Downstream{}})
					if err == nil {
						_, err = io.ReadAll(resp.Body)
						resp.Body.(io.Closer).Close()
					}
					errs <- err
				}()
			}
			for range tc.conns {
				<-entered
			}
			close(release)
			for range tc.conns {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			ep := cs.endpointOf(cs.LB.Cluster("c0").Hosts()[0])
			if n := ep.h1.idleConns(); n != tc.conns {
				t.Fatalf("%d idle connections after %d requests at once, want %d", n, tc.conns, tc.conns)
			}
			if tc.reaped {
				eventually(t, "closed while idle", func() bool { return open.Load() == 0 && ep.h1.idleConns() == 0 })
				return
			}
			ep.h1.mu.Lock()
			armed := ep.h1.reaperOn
			ep.h1.mu.Unlock()
			if armed {
				t.Error("reaper armed with idle_timeout 0")
			}
			if n, o := ep.h1.idleConns(), open.Load(); n != tc.conns || int(o) != tc.conns {
				t.Errorf("%d idle, %d open with idle_timeout 0, want %d", n, o, tc.conns)
			}
		})
	}
}

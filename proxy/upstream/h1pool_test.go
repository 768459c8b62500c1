package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// TestHTTP1PendingRequests checks the HTTP/1 pool's circuit breaking as Envoy's: a request
// with no idle connection and none to open within max_connections waits as a pending request
// (max_pending_requests, overflow beyond) for the next connection the pool frees; pending
// requests do not count against max_requests; a host's pool with no connection opens one
// even past max_connections.
func TestHTTP1PendingRequests(t *testing.T) {
	const perConnection1 = "    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, common_http_protocol_options: {max_requests_per_connection: 1}, explicit_http_config: {http_protocol_options: {}}}}\n"
	for _, tc := range []struct {
		name      string
		extra     string
		hosts     int
		warm      bool // one request first, leaving its connection idle (or closed)
		n         int  // requests at once
		active    int  // of them, in the backends at once
		pending   int  // waiting in the pool meanwhile
		overflow  int  // refused at once
		wantConns int32
		ipOctet   string
	}{
		{name: "one connection, one pending: the second waits, the others overflow",
			extra: "    circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 1}]}\n",
			hosts: 1, warm: true, n: 4, active: 1, pending: 1, overflow: 2, wantConns: 1, ipOctet: "20"},
		{name: "pending requests do not count against max_requests",
			extra: "    circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 2, max_requests: 1}]}\n",
			hosts: 1, warm: true, n: 3, active: 1, pending: 2, overflow: 0, wantConns: 1, ipOctet: "21"},
		{name: "max_requests_per_connection: a pending request opens a new connection when the full one closes",
			extra: "    circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 2}]}\n" + perConnection1,
			hosts: 1, warm: true, n: 2, active: 1, pending: 1, overflow: 0, wantConns: 3, ipOctet: "22"},
		{name: "a host's pool with no connection opens one past max_connections",
			extra: "    circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 2}]}\n",
			hosts: 2, n: 2, active: 2, pending: 0, overflow: 0, wantConns: 2, ipOctet: "23"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var entered atomic.Int32
			handler := func(w http.ResponseWriter, r *http.Request) {
				entered.Add(1)
				if r.URL.Path == "/slow" {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
				io.WriteString(w, "ok")
			}
			var addrs []string
			var conns []*atomic.Int32
			for i := range tc.hosts {
				a, c := httpBackend(t, "127.0.9."+tc.ipOctet, handler)
				_ = i
				addrs = append(addrs, a)
				conns = append(conns, c)
			}
			snap := snapshot(t, map[string][]string{"c0": addrs}, map[string]string{"c0": tc.extra})
			cs := newClusters(t, snap)
			u := cs.HTTP(snap)
			call := func(path string) error {
				req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte(path), Proto: l7.HTTP11}
				resp, err := u.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "c0", Request: req, Downstream: &filters.Downstream{}})
				if err != nil {
					return err
				}
				io.ReadAll(resp.Body)
				resp.Body.(io.Closer).Close()
				return nil
			}
			if tc.warm {
				if err := call("/"); err != nil {
					t.Fatal(err)
				}
				entered.Store(0)
			}
			var mu sync.Mutex
			var oks, overflows int
			var wg sync.WaitGroup
			for range tc.n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := call("/slow")
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						oks++
					case status.KindOf(err) == status.Overflow:
						overflows++
					default:
						t.Errorf("request: %v", err)
					}
				}()
			}
			br := cs.LB.Cluster("c0").Breakers()
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, pending, _, _ := br.InFlight()
				mu.Lock()
				o := overflows
				mu.Unlock()
				if int(entered.Load()) == tc.active && int(pending) == tc.pending && o == tc.overflow {
					break
				}
				if time.Now().After(deadline) {
					close(release)
					wg.Wait()
					t.Fatalf("%d requests in the backends, %d pending, %d overflowed; want %d, %d, %d",
						entered.Load(), pending, o, tc.active, tc.pending, tc.overflow)
				}
				time.Sleep(5 * time.Millisecond)
			}
			close(release)
			wg.Wait()
			if oks != tc.n-tc.overflow || overflows != tc.overflow {
				t.Errorf("%d answered, %d overflowed; want %d, %d", oks, overflows, tc.n-tc.overflow, tc.overflow)
			}
			var total int32
			for _, c := range conns {
				total += c.Load()
			}
			if total != tc.wantConns {
				t.Errorf("%d connections opened, want %d", total, tc.wantConns)
			}
			if c, p, r, _ := br.InFlight(); p != 0 || r != 0 || c > int64(tc.hosts) {
				t.Errorf("after: %d connections, %d pending, %d requests counted", c, p, r)
			}
		})
	}
}

// TestHTTP1PendingGivesUp checks that a pending request ends at its deadline (a timeout)
// or when its downstream leaves, without counting against the host, and that the
// connection it waited for goes to the next one.
func TestHTTP1PendingGivesUp(t *testing.T) {
	release := make(chan struct{})
	addr, conns := httpBackend(t, "127.0.9.24", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	snap := snapshot(t, map[string][]string{"c0": {addr}}, map[string]string{"c0": "    circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 5}]}\n" +
		"    outlier_detection: {consecutive_5xx: 1, consecutive_gateway_failure: 1, enforcing_consecutive_gateway_failure: 100}\n"})
	cs := newClusters(t, snap)
	u := cs.HTTP(snap)
	call := func(ctx context.Context, path string, deadline time.Time) error {
		req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte(path), Proto: l7.HTTP11}
		resp, err := u.RoundTrip(ctx, &filters.UpstreamRequest{Cluster: "c0", Request: req, Deadline: deadline, Downstream: &filters.Downstream{}})
		if err != nil {
			return err
		}
		io.ReadAll(resp.Body)
		resp.Body.(io.Closer).Close()
		return nil
	}
	first := make(chan error, 1)
	go func() { first <- call(context.Background(), "/slow", time.Time{}) }()
	br := cs.LB.Cluster("c0").Breakers()
	for c, _, _, _ := br.InFlight(); c != 1; c, _, _, _ = br.InFlight() {
		time.Sleep(time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		dl   time.Time
		want status.Kind
	}{
		{"deadline", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, time.Now().Add(50 * time.Millisecond), status.Timeout},
		{"downstream gone", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, time.Time{}, status.DownstreamGone},
	} {
		ctx, cancel := tc.ctx()
		err := call(ctx, "/", tc.dl)
		cancel()
		if got := status.KindOf(err); got != tc.want {
			t.Errorf("%s: %v (%v), want %v", tc.name, err, got, tc.want)
		}
	}
	if _, p, _, _ := br.InFlight(); p != 0 {
		t.Errorf("%d pending after they gave up", p)
	}
	// The host was not ejected for them: the next pending request gets the connection.
	second := make(chan error, 1)
	go func() { second <- call(context.Background(), "/", time.Time{}) }()
	for _, p, _, _ := br.InFlight(); p != 1; _, p, _, _ = br.InFlight() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the pending request after the ones that gave up: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestMaxConnectionDuration checks common_http_protocol_options.max_connection_duration on
// both pools: a connection that has served its time takes no new request, and a request in
// flight on it when the time passes still completes.
func TestMaxConnectionDuration(t *testing.T) {
	for _, tc := range []struct {
		name, protocol, ip string
	}{
		{"HTTP/1.1", "http_protocol_options: {}", "127.0.9.25"},
		{"HTTP/2", "http2_protocol_options: {}", "127.0.9.26"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.ip+":0")
			if err != nil {
				t.Fatal(err)
			}
			var conns atomic.Int32
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
					time.Sleep(d)
				}
				io.WriteString(w, "ok")
			}), ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}}
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
			done := make(chan struct{})
			go func() { defer close(done); srv.Serve(ln) }()
			defer func() { srv.Close(); <-done }()

			extra := "    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, common_http_protocol_options: {max_connection_duration: 0.3s}, explicit_http_config: {" + tc.protocol + "}}}\n"
			snap := snapshot(t, map[string][]string{"c0": {ln.Addr().String()}}, map[string]string{"c0": extra})
			u := newClusters(t, snap).HTTP(snap)
			call := func(path string) {
				t.Helper()
				req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte(path), Proto: l7.HTTP11}
				resp, err := u.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "c0", Request: req, Downstream: &filters.Downstream{}})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.(io.Closer).Close()
				if string(b) != "ok" {
					t.Fatalf("%s: %q", path, b)
				}
			}
			call("/")
			call("/")
			if n := conns.Load(); n != 1 {
				t.Fatalf("%d connections for 2 requests within the duration, want 1", n)
			}
			call("/?delay=400ms") // outlives the connection's time, and completes
			call("/")
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want a new one past max_connection_duration", n)
			}
		})
	}
}

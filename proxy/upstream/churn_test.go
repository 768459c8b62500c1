package upstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
	"github.com/gowaypoint/waypoint/xds"
)

// Churn pods: 127.77.0.0/16, pod i at 127.77.(i/250).(i%250+1).
func churnPodIP(i int) string { return fmt.Sprintf("127.77.%d.%d", i/250, i%250+1) }

// The clusters of the churn test: the HBONE pods are hosts of both HBONE
// clusters (so their HBONE pool key is held twice), the plaintext pods of
// one plaintext cluster each.
var churnClusters = []struct {
	name       string
	h2, hbone  bool
	podsOfKind int // pod i belongs to the cluster when i%4 is this, or this+1 for HBONE
}{
	{"hbone-h1", false, true, 0},
	{"hbone-h2", true, true, 0},
	{"plain-h1", false, false, 2},
	{"plain-h2", true, false, 3},
}

func churnHas(kind, i int, hboneCluster bool) bool {
	if hboneCluster {
		return i%4 == kind || i%4 == kind+1
	}
	return i%4 == kind
}

// churnMesh is what the churn test runs against: 1,000 pods on loopback,
// each an HTTP/1.1 and h2c backend; half of them behind a ztunnel
// (HBONE with mTLS) on their own address.
type churnMesh struct {
	base      *xds.Snapshot // the clusters, without endpoints
	backPort  uint16
	hbonePort uint16
	open      atomic.Int32   // backend connections open (direct or from a ztunnel)
	hits      sync.Map       // pod IP -> *atomic.Int32
	pool      *hbone.Pool    // the waypoint's HBONE pool
	cs        *Clusters      // what is under test
	stop      []func()       // in start order
	serving   sync.WaitGroup // Serve goroutines
}

func newChurnMesh(t *testing.T, pods int) *churnMesh {
	m := &churnMesh{}
	t.Cleanup(func() {
		for i := len(m.stop) - 1; i >= 0; i-- {
			m.stop[i]()
		}
		m.serving.Wait()
	})
	dir := t.TempDir()
	wp := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "waypoint"}
	pod := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "pod"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{wp, pod}}); err != nil {
		t.Fatal(err)
	}
	source := func(id spiffe.ID) *certs.Source {
		src, err := certs.NewSource(certs.IdentityDir(dir, id), certs.SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.stop = append(m.stop, func() { src.Close() })
		return src
	}
	wpSrc, podSrc := source(wp), source(pod)

	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := r.Context().Value(http.LocalAddrContextKey).(net.Addr).(*net.TCPAddr).IP.String()
		if v, ok := m.hits.Load(local); ok {
			v.(*atomic.Int32).Add(1)
		}
		io.WriteString(w, local)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			m.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			m.open.Add(-1)
		}
	}}
	backend.Protocols = new(http.Protocols)
	backend.Protocols.SetHTTP1(true)
	backend.Protocols.SetUnencryptedHTTP2(true)
	m.stop = append(m.stop, func() { backend.Close() })
	var localIPs []netip.Addr
	for i := range pods {
		if i%4 < 2 {
			localIPs = append(localIPs, netip.MustParseAddr(churnPodIP(i)))
		}
	}
	quiet := slog.New(slog.DiscardHandler)
	zt, err := hbone.NewServer(hbone.ServerConfig{TLS: podSrc.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{LocalIPs: localIPs, Log: quiet}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m.stop = append(m.stop, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		zt.Shutdown(ctx)
	})
	listen := func(ip string, port uint16) net.Listener {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	for i := range pods {
		ip := churnPodIP(i)
		m.hits.Store(ip, new(atomic.Int32))
		ln := listen(ip, m.backPort)
		if m.backPort == 0 {
			m.backPort = uint16(ln.Addr().(*net.TCPAddr).Port)
		}
		m.serving.Add(1)
		go func() { defer m.serving.Done(); backend.Serve(ln) }()
		if i%4 < 2 {
			zln := listen(ip, m.hbonePort)
			if m.hbonePort == 0 {
				m.hbonePort = uint16(zln.Addr().(*net.TCPAddr).Port)
			}
			m.serving.Add(1)
			go func() { defer m.serving.Done(); zt.Serve(zln) }()
		}
	}

	y := "static_resources:\n  listeners:\n  - name: l\n    address: {socket_address: {address: 127.77.255.1, port_value: 1}}\n" +
		"    filter_chains: [{filters: [{name: t, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: plain-h1}}]}]\n  clusters:\n"
	for _, c := range churnClusters {
		y += fmt.Sprintf("  - name: %s\n    connect_timeout: 5s\n", c.name)
		if !c.hbone {
			y += "    transport_socket: {name: raw, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}\n"
		}
		if c.h2 {
			y += useHTTP2
		}
	}
	b, err := xds.ParseBootstrap([]byte(y), "churn.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	m.base = b.Snapshot

	m.pool = hbone.NewPool(hbone.PoolConfig{Logger: quiet})
	m.cs = NewClusters(NewDialer(m.pool, wpSrc))
	m.stop = append(m.stop, m.pool.Close, m.cs.Close) // the Clusters close first
	return m
}

// snapshot returns the clusters with the pods in [from, to) as endpoints.
func (m *churnMesh) snapshot(from, to int) *xds.Snapshot {
	s := &xds.Snapshot{Clusters: map[string]*xds.Cluster{}}
	for _, c := range churnClusters {
		cl := *m.base.Cluster(c.name)
		cl.Endpoints = nil
		for i := from; i < to; i++ {
			if churnHas(c.podsOfKind, i, c.hbone) {
				cl.Endpoints = append(cl.Endpoints, xds.Endpoint{Address: netip.MustParseAddrPort(fmt.Sprintf("%s:%d", churnPodIP(i), m.backPort)), Weight: 1})
			}
		}
		if c.hbone {
			cl.HBONEPort = m.hbonePort
		}
		s.Clusters[c.name] = &cl
	}
	return s
}

// use sends two requests per host of every cluster of snap, eight at a
// time per cluster, and checks that each answered from the pod it reached.
func (m *churnMesh) use(t *testing.T, snap *xds.Snapshot) {
	t.Helper()
	u := m.cs.HTTP(snap)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, c := range churnClusters {
		n := 2 * len(snap.Cluster(c.name).Endpoints)
		next := make(chan struct{}, n)
		for range n {
			next <- struct{}{}
		}
		close(next)
		proto := l7.HTTP11
		if c.h2 {
			proto = l7.HTTP2
		}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range next {
					req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("svc"), Path: []byte("/"), Proto: proto}
					ureq := &filters.UpstreamRequest{Cluster: c.name, Request: req, Downstream: &filters.Downstream{}}
					resp, err := u.RoundTrip(context.Background(), ureq)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", c.name, err)
						return
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.(io.Closer).Close()
					if err != nil || string(body) != ureq.Host.Addr().String() {
						errs <- fmt.Errorf("%s: %s answered %q, %v", c.name, ureq.Host, body, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestChurnLeavesNothingBehind adds 1,000 endpoints, 100 at a time, uses
// each with real requests over real loopback connections (HTTP/1.1 and
// HTTP/2, over HBONE with mTLS and in plaintext), and removes them with
// the next update; at the end nothing of them is left: no lb host, no
// endpoint state (pools), no idle HTTP/1.1 connection, no HTTP/2
// connection, no HBONE pool key, no open connection on either side, and no
// goroutine more than before the first request.
func TestChurnLeavesNothingBehind(t *testing.T) {
	const pods, perRound = 1000, 100
	m := newChurnMesh(t, pods)
	baseline := runtime.NumGoroutine()
	var seen []*endpoint // every endpoint that served, to check after it left
	for from := 0; from < pods; from += perRound {
		snap := m.snapshot(from, from+perRound)
		m.cs.Update(snap) // the previous round's pods leave, these arrive
		m.use(t, snap)
		hosts, hboneHosts := 0, 0
		for _, c := range churnClusters {
			for _, h := range m.cs.LB.Cluster(c.name).Hosts() {
				ep := m.cs.endpointOf(h)
				if ep == nil {
					t.Fatalf("%s: no endpoint for a host of the last update", h)
				}
				seen = append(seen, ep)
				hosts++
				if c.hbone {
					hboneHosts++
				}
			}
		}
		if n := m.cs.Endpoints(); n != hosts {
			t.Fatalf("pods %d-%d: %d endpoints, want %d (this round's hosts only)", from, from+perRound-1, n, hosts)
		}
		if st := m.pool.Stats(); st.Held != hboneHosts/2 || st.Keys != hboneHosts/2 {
			t.Fatalf("pods %d-%d: %d HBONE keys (%d held), want %d: one per HBONE pod of this round, held by both clusters",
				from, from+perRound-1, st.Keys, st.Held, hboneHosts/2)
		}
	}
	for i := range pods {
		if v, _ := m.hits.Load(churnPodIP(i)); v.(*atomic.Int32).Load() == 0 {
			t.Fatalf("pod %d (%s) got no request", i, churnPodIP(i))
		}
	}

	m.cs.Update(m.snapshot(0, 0)) // the last round leaves; the clusters stay
	lbHosts := 0
	for _, c := range churnClusters {
		if n := len(m.cs.LB.Cluster(c.name).Hosts()); n != 0 {
			t.Errorf("%s: %d lb hosts left", c.name, n)
			lbHosts += n
		}
	}
	if n := m.cs.Endpoints(); n != 0 {
		t.Errorf("%d endpoints left", n)
	}
	for _, ep := range seen {
		if n := ep.h1.idleConns(); n != 0 {
			t.Fatalf("an endpoint that left has %d idle HTTP/1.1 connections", n)
		}
		ep.h2.mu.Lock()
		n, closed := len(ep.h2.conns), ep.h2.closed
		ep.h2.mu.Unlock()
		if n != 0 || !closed {
			t.Fatalf("an endpoint that left has %d HTTP/2 connections (pool closed: %v)", n, closed)
		}
	}
	eventually(t, "every connection closed", func() bool {
		st := m.pool.Stats()
		open := 0
		for _, ep := range seen {
			ep.h1.mu.Lock()
			open += ep.h1.open
			ep.h1.mu.Unlock()
		}
		return st.Keys == 0 && st.Draining == 0 && len(st.Conns) == 0 && open == 0 && m.open.Load() == 0
	})
	eventually(t, "back to the goroutines before the first request", func() bool { return runtime.NumGoroutine() <= baseline })
	st := m.pool.Stats()
	t.Logf("after %d endpoints came and went: %d lb hosts, %d endpoints, %d HBONE keys, %d HBONE connections, %d backend connections, %d goroutines (%d before)",
		pods, lbHosts, m.cs.Endpoints(), st.Keys, len(st.Conns), m.open.Load(), runtime.NumGoroutine(), baseline)
}

package adsclient

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	_ "github.com/gowaypoint/waypoint/filters/all"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// fixture is the whole reviews fixture, as istiod sends it.
func fixture(t *testing.T) *xds.Resources {
	return xdstest.Reviews(t)
}

// controlPlane runs an xdsserver on addr until stopped.
type controlPlane struct {
	srv  *xdsserver.Server
	done chan struct{}
}

func startServer(t *testing.T, addr string, r *xds.Resources) *controlPlane {
	t.Helper()
	dir := t.TempDir()
	xdstest.WriteDir(t, dir, r)
	srv, err := xdsserver.New(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the address of a server just stopped may take a moment
		if ln, err = net.Listen("tcp", addr); err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{srv: srv, done: make(chan struct{})}
	go func() { defer close(cp.done); srv.Serve(ln) }()
	return cp
}

func (cp *controlPlane) stop() { cp.srv.Close(); <-cp.done }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// lossCounter is a quiet slog.Handler that counts the client's "stream
// lost" warnings: one when a stream breaks, one more for every attempt to
// reconnect that fails.
type lossCounter struct{ n atomic.Int64 }

func (h *lossCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *lossCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lossCounter) WithGroup(string) slog.Handler            { return h }

func (h *lossCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "xds: stream lost") {
		h.n.Add(1)
	}
	return nil
}

// applied collects the snapshots a client applies.
type applied struct {
	mu    sync.Mutex
	snaps []*xds.Snapshot
	ch    chan struct{}
}

func (a *applied) apply(s *xds.Snapshot) error {
	a.mu.Lock()
	a.snaps = append(a.snaps, s)
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
	return nil
}

// waitReady waits up to d for c.Ready (the first config applied, or the
// initial fetch timeout passed), failing with msg.
func waitReady(t *testing.T, c *Client, d time.Duration, msg string) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// serveADS serves impl as the aggregated discovery service on addr until
// the test ends.
func serveADS(t *testing.T, addr string, impl discoveryv3.AggregatedDiscoveryServiceServer) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, impl)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestADS(t *testing.T) {
	for i, delta := range []bool{false, true} {
		name := map[bool]string{false: "sotw", true: "delta"}[delta]
		t.Run(name, func(t *testing.T) { testADS(t, fmt.Sprintf("127.0.70.%d:15010", 10+i), delta) })
	}
}

func testADS(t *testing.T, addr string, delta bool) {
	cp := startServer(t, addr, fixture(t))
	defer func() { cp.stop() }()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a := &applied{ch: make(chan struct{}, 1)}
	node := &corev3.Node{Id: "waypoint~127.0.0.5~waypoint-a.default~default.svc.cluster.local"}
	losses := &lossCounter{}
	c := New(Config{Conn: conn, Node: node, Delta: delta, Apply: a.apply, Logger: slog.New(losses),
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); c.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	waitReady(t, c, 10*time.Second, "no config applied")
	// The stream is up and the first CDS and LDS were ACKed.
	st := readXDSStats(t)
	if st.connected != 1 || st.cdsOK < 1 || st.ldsOK < 1 {
		t.Errorf("after the first config: %+v", st)
	}
	snap := c.Snapshot()
	if snap == nil {
		t.Fatal("ready without a snapshot")
	}
	if e := snap.HBONEEntry(); e == nil || e.HBONE.Target != "main_internal" {
		t.Fatalf("HBONE entry = %+v", e)
	}
	v1 := snap.Cluster("inbound-vip|9080|http/v1|reviews.mesh.local")
	if v1 == nil || len(v1.Endpoints) != 1 || v1.Endpoints[0].Address.String() != "127.10.0.11:9080" {
		t.Fatalf("v1 cluster endpoints = %+v: EDS not folded in", v1)
	}

	// An endpoint change is pushed and applied.
	r := fixture(t)
	setEndpointPort(t, r, "inbound-vip|9080|http/v1|reviews.mesh.local", 9081)
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new endpoint", func() bool {
		s := c.Snapshot().Cluster("inbound-vip|9080|http/v1|reviews.mesh.local")
		return s != nil && len(s.Endpoints) == 1 && s.Endpoints[0].Address.Port() == 9081
	})

	// A cluster that does not validate is NACKed, naming it and the
	// field; the config in force stays. The push differs from the config
	// in force only by that cluster, so that nothing else of it can be
	// applied late, after the checks below.
	bad := fixture(t)
	setEndpointPort(t, bad, "inbound-vip|9080|http/v1|reviews.mesh.local", 9081)
	for _, cl := range bad.Clusters {
		if cl.GetName() == "inbound-vip|9080|http/v2|reviews.mesh.local" {
			cl.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		}
	}
	if err := cp.srv.Push(bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a NACK", func() bool { return len(cp.srv.NACKs()) > 0 })
	nack := cp.srv.NACKs()[0]
	if !strings.Contains(nack.Message, `cluster "inbound-vip|9080|http/v2|reviews.mesh.local": lb_policy: CLUSTER_PROVIDED is not supported yet`) {
		t.Errorf("NACK message = %q", nack.Message)
	}
	// The client counts a NACK after sending it: the server may see it
	// first.
	waitFor(t, "the client to count its NACK", func() bool { n, _ := c.NACKs(); return n > 0 })
	// The refused CDS is counted in the process's Prometheus registry,
	// under Envoy's name and by type URL; LDS was not refused.
	waitFor(t, "the NACK counted", func() bool { return readXDSStats(t).cdsRejected > st.cdsRejected })
	n, _ := c.NACKs()
	if after := readXDSStats(t); after.cdsRejected-st.cdsRejected != float64(n) ||
		after.clusterTypeRejected-st.clusterTypeRejected != float64(n) || after.ldsRejected != st.ldsRejected {
		t.Errorf("after %d refused CDS: %+v, before %+v", n, after, st)
	}
	// The other types of that version are ACKed and applied; the refused
	// cluster stays as it was.
	before := settled(t, c, delta, cp.srv.Version())
	if v2 := before.Cluster("inbound-vip|9080|http/v2|reviews.mesh.local"); v2 == nil || v2.LBPolicy != xds.LBPolicyLeastRequest {
		t.Errorf("after the NACK, the v2 cluster in force is %+v", v2)
	}

	// The server goes away and comes back: the config stays, the client
	// reconnects and takes the next push.
	lost := losses.n.Load()
	cp.stop()
	waitFor(t, "envoy_control_plane_connected_state 0", func() bool { return readXDSStats(t).connected == 0 })
	waitFor(t, "the stream lost and a reconnection failed", func() bool { return losses.n.Load() >= lost+2 })
	if c.Snapshot() != before {
		t.Error("the config changed while the server was gone")
	}
	r2 := fixture(t)
	setEndpointPort(t, r2, "inbound-vip|9080|http/v1|reviews.mesh.local", 9082)
	cp = startServer(t, addr, r2)
	waitFor(t, "the push after the restart", func() bool {
		s := c.Snapshot().Cluster("inbound-vip|9080|http/v1|reviews.mesh.local")
		return s != nil && len(s.Endpoints) == 1 && s.Endpoints[0].Address.Port() == 9082
	})
	if st := readXDSStats(t); st.connected != 1 {
		t.Errorf("reconnected, envoy_control_plane_connected_state = %v", st.connected)
	}
	if v := c.Versions(); v["type.googleapis.com/envoy.config.listener.v3.Listener"] == "" {
		t.Errorf("versions = %v", v)
	}
}

// settled returns the config in force once the client has taken the rest
// of a push whose CDS it refused. In state of the world every other type
// comes again at the server's version, and the client notes a type's
// version only after applying what it completes; in delta only the refused
// cluster came (the push differs from the config in force by nothing
// else), so there is nothing to wait for.
func settled(t *testing.T, c *Client, delta bool, version string) *xds.Snapshot {
	t.Helper()
	if !delta {
		waitFor(t, "the types pushed beside the refused CDS taken", func() bool {
			for typ, v := range c.Versions() {
				if typ != resourcev3.ClusterType && v != version {
					return false
				}
			}
			return true
		})
	}
	return c.Snapshot()
}

// setEndpointPort moves every endpoint of the named ClusterLoadAssignment
// (the pod address in its original_dst metadata) to port.
func setEndpointPort(t *testing.T, r *xds.Resources, cla string, port uint32) {
	t.Helper()
	for i, e := range r.Endpoints {
		if e.GetClusterName() != cla {
			continue
		}
		e = proto.Clone(e).(*endpointv3.ClusterLoadAssignment)
		r.Endpoints[i] = e
		for _, lle := range e.GetEndpoints() {
			for _, lbe := range lle.GetLbEndpoints() {
				md := lbe.GetMetadata().GetFilterMetadata()["envoy.filters.listener.original_dst"]
				host, _, _ := strings.Cut(md.GetFields()["local"].GetStringValue(), ":")
				md.Fields["local"] = structpb.NewStringValue(fmt.Sprintf("%s:%d", host, port))
			}
		}
	}
}

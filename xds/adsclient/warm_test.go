package adsclient

import (
	"context"
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gowaypoint/waypoint/xds"
)

// edsCluster is a new EDS cluster over ADS; fetchTimeout nil is Envoy's
// default (15 s).
func edsCluster(name string, fetchTimeout *durationpb.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       durationpb.New(time.Second),
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			InitialFetchTimeout:   fetchTimeout,
		}},
	}
}

func loadAssignment(cluster, ip string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}}}},
	}}}
}

// runClient runs a client against addr until the test ends (quiet unless
// cfg has a Logger).
func runClient(t *testing.T, addr string, cfg Config) *Client {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = conn
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	if cfg.Node == nil {
		cfg.Node = &corev3.Node{Id: "waypoint~127.0.0.5~waypoint-a.default~default.svc.cluster.local"}
	}
	if cfg.Apply == nil {
		cfg.Apply = func(*xds.Snapshot) error { return nil }
	}
	c := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
	return c
}

// A new cluster is warmed as Envoy warms it: the CDS that adds it is
// accepted, but no snapshot with it is applied until its endpoints arrive;
// one whose endpoints never come is applied without any once its EDS
// initial_fetch_timeout has passed.
func TestClusterWarming(t *testing.T) {
	for i, delta := range []bool{false, true} {
		name := map[bool]string{false: "sotw", true: "delta"}[delta]
		t.Run(name, func(t *testing.T) { testClusterWarming(t, fmt.Sprintf("127.0.70.%d:15010", 20+i), delta) })
	}
}

func testClusterWarming(t *testing.T, addr string, delta bool) {
	cp := startServer(t, addr, fixture(t))
	defer cp.stop()
	c := runClient(t, addr, Config{Delta: delta})
	waitReady(t, c, 10*time.Second, "no config applied")
	first := c.Snapshot()

	// The server answers an EDS request only once it has every name asked
	// for (go-control-plane's ADS mode): "warm" has no endpoints to send.
	r := fixture(t)
	r.Clusters = append(r.Clusters, edsCluster("warm", nil))
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	v := cp.srv.Version()
	waitFor(t, "the CDS with the new cluster accepted", func() bool { return c.Versions()[resourcev3.ClusterType] == v })
	if s := c.Snapshot(); s != first || s.Cluster("warm") != nil {
		t.Fatalf("a snapshot was applied before the new cluster's endpoints came (has warm: %v)", s.Cluster("warm") != nil)
	}

	r.Endpoints = append(r.Endpoints, loadAssignment("warm", "127.0.70.50", 8080))
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the warm cluster applied with its endpoint", func() bool {
		cl := c.Snapshot().Cluster("warm")
		return cl != nil && len(cl.Endpoints) == 1 && cl.Endpoints[0].Address.String() == "127.0.70.50:8080"
	})

	// A cluster whose endpoints never come, with a short fetch timeout:
	// applied, empty, once it passes.
	r.Clusters = append(r.Clusters, edsCluster("cold", durationpb.New(300*time.Millisecond)))
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cold cluster applied after its fetch timeout", func() bool {
		cl := c.Snapshot().Cluster("cold")
		return cl != nil && len(cl.Endpoints) == 0
	})
	if cl := c.Snapshot().Cluster("warm"); cl == nil || len(cl.Endpoints) != 1 {
		t.Errorf("warm cluster after the cold one: %+v", cl)
	}
}

// With no control plane at all, Ready closes once the initial fetch
// timeout has passed, without a snapshot (Envoy then serves with none).
func TestInitialFetchTimeout(t *testing.T) {
	c := runClient(t, "127.0.70.30:15010", Config{InitialFetchTimeout: 200 * time.Millisecond,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	waitReady(t, c, 10*time.Second, "not ready after the initial fetch timeout")
	if s := c.Snapshot(); s != nil {
		t.Errorf("a snapshot without a control plane: %v", s.Version)
	}
}

// The node is the one Istio's agent sends for a waypoint: the id istiod
// keys the proxy type on, and its metadata; the server receives it.
func TestNode(t *testing.T) {
	n := NodeConfig{IP: "10.8.0.5", PodName: "waypoint-7d9f", Namespace: "bookinfo", ServiceAccount: "waypoint",
		ClusterID: "Kubernetes", IstioVersion: "1.31.0", MeshID: "cluster.local", Network: "net-1", WorkloadName: "waypoint",
		Owner: "kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/waypoint", NodeName: "kind-worker",
		Labels:      map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint"},
		Annotations: map[string]string{"istio.io/rev": "default"},
		Meta:        map[string]any{"INTERCEPTION_MODE": "REDIRECT", "NAME": "overridden", "N": []any{"a", 1.0}}}.Node()
	if n.GetId() != "waypoint~10.8.0.5~waypoint-7d9f.bookinfo~bookinfo.svc.cluster.local" || n.GetCluster() != "waypoint.bookinfo" {
		t.Errorf("node id %q, cluster %q", n.GetId(), n.GetCluster())
	}
	md := n.GetMetadata().AsMap()
	want := map[string]any{"NAME": "waypoint-7d9f", "NAMESPACE": "bookinfo", "CLUSTER_ID": "Kubernetes", "ISTIO_VERSION": "1.31.0",
		"SERVICE_ACCOUNT": "waypoint", "MESH_ID": "cluster.local", "INSTANCE_IPS": "10.8.0.5", "NETWORK": "net-1",
		"WORKLOAD_NAME": "waypoint", "OWNER": "kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/waypoint",
		"NODE_NAME": "kind-worker", "INTERCEPTION_MODE": "REDIRECT", "N": []any{"a", 1.0},
		"LABELS":      map[string]any{"gateway.networking.k8s.io/gateway-name": "waypoint"},
		"ANNOTATIONS": map[string]any{"istio.io/rev": "default"}}
	if diff := cmp.Diff(want, md); diff != "" {
		t.Errorf("metadata (-want +got)\n%s", diff)
	}
	if n := (NodeConfig{IP: "10.8.0.5", PodName: "p", Namespace: "ns", DNSDomain: "ns.svc.corp"}).Node(); n.GetId() != "waypoint~10.8.0.5~p.ns~ns.svc.corp" ||
		n.GetCluster() != "istio-proxy.ns" || len(n.GetMetadata().GetFields()) != 3 {
		t.Errorf("with a DNS domain and no optional fields: %q %q %v", n.GetId(), n.GetCluster(), n.GetMetadata().AsMap())
	}
	if n := (NodeConfig{IP: "10.8.0.5", PodName: "p", Namespace: "ns", ServiceAccount: "sa", ServiceCluster: "wp.ns"}).Node(); n.GetCluster() != "wp.ns" {
		t.Errorf("service cluster %q", n.GetCluster())
	}
	// A Meta value structpb cannot take leaves Meta out, not the rest.
	if n := (NodeConfig{IP: "10.8.0.5", PodName: "p", Namespace: "ns", Meta: map[string]any{"BAD": struct{}{}}}).Node(); len(n.GetMetadata().GetFields()) != 3 {
		t.Errorf("with a bad Meta value: %v", n.GetMetadata().AsMap())
	}

	// The server sees it (on the NACK it records).
	const addr = "127.0.70.31:15010"
	bad := fixture(t)
	for _, cl := range bad.Clusters {
		if cl.GetName() == "inbound-vip|9080|http/v2|reviews.mesh.local" {
			cl.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		}
	}
	cp := startServer(t, addr, bad)
	defer cp.stop()
	runClient(t, addr, Config{Node: n})
	waitFor(t, "a NACK", func() bool { return len(cp.srv.NACKs()) > 0 })
	if got := cp.srv.NACKs()[0].Node; got != n.GetId() {
		t.Errorf("the server saw node %q, want %q", got, n.GetId())
	}
}

package adsclient

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/xds"
)

// liveFilters counts the test.ads_closer filters built and not closed.
var liveFilters atomic.Int64

type adsCloserFactory struct{}

func (adsCloserFactory) Names() []string    { return []string{"test.ads_closer"} }
func (adsCloserFactory) TypeURLs() []string { return []string{"type.googleapis.com/test.AdsCloser"} }
func (adsCloserFactory) New(filters.BuildContext, proto.Message) (*adsCloser, error) {
	liveFilters.Add(1)
	return &adsCloser{}, nil
}

type adsCloser struct{ once sync.Once }

func (*adsCloser) OnRequest(*filters.Stream) filters.Status { return filters.Continue }
func (f *adsCloser) Close() error                           { f.once.Do(func() { liveFilters.Add(-1) }); return nil }

func init() { filters.Register(adsCloserFactory{}) }

// closerListener is an HTTP listener named name with a test.ads_closer
// filter, routing to cluster.
func closerListener(t *testing.T, name string, port uint32, cluster string) *listenerv3.Listener {
	t.Helper()
	mustAny := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "test.ads_closer", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&xdstypev3.TypedStruct{TypeUrl: "type.googleapis.com/test.AdsCloser"})}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
		},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: name,
			VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
			}}}}}},
	}
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.70.60", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}}}},
	}
}

// TestSnapshotsNotKeptAreClosed: of the snapshots the client builds, only
// the one Apply takes stays open; the builds made to validate a response
// and the snapshots Apply refuses are closed by the client.
func TestSnapshotsNotKeptAreClosed(t *testing.T) {
	for i, delta := range []bool{false, true} {
		name := map[bool]string{false: "sotw", true: "delta"}[delta]
		t.Run(name, func(t *testing.T) { testSnapshotsClosed(t, fmt.Sprintf("127.0.70.%d:15010", 61+i), delta) })
	}
}

func testSnapshotsClosed(t *testing.T, addr string, delta bool) {
	r := fixture(t)
	cluster := r.Clusters[0].GetName()
	r.Listeners = append(r.Listeners, closerListener(t, "closer", 9000, cluster))
	cp := startServer(t, addr, r)
	defer cp.stop()
	base := liveFilters.Load()

	var mu sync.Mutex
	var inForce *xds.Snapshot
	c := runClient(t, addr, Config{Delta: delta, Apply: func(s *xds.Snapshot) error {
		if s.Listener("unbindable") != nil {
			return fmt.Errorf("listener unbindable: address in use")
		}
		mu.Lock()
		defer mu.Unlock()
		inForce.Close() // as the waypoint drops the snapshot it replaces
		inForce = s
		return nil
	}})
	t.Cleanup(func() { mu.Lock(); inForce.Close(); mu.Unlock() })
	waitReady(t, c, 10*time.Second, "no config applied")
	oneOpen(t, base, "after the first config")

	r = fixture(t)
	r.Listeners = append(r.Listeners, closerListener(t, "closer", 9000, cluster), closerListener(t, "unbindable", 9001, cluster))
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { n, _ := c.NACKs(); return n == 1 })
	oneOpen(t, base, "after a refused push")

	r = fixture(t)
	r.Listeners = append(r.Listeners, closerListener(t, "closer", 9002, cluster))
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next push applied", func() bool {
		s := c.Snapshot()
		return s != nil && s.Listener("closer").Address.Port() == 9002
	})
	oneOpen(t, base, "after a second config")
}

// oneOpen waits until the one filter open is the snapshot in force's: the
// responses that follow one another are validated by builds closed as soon
// as checked, so more may be open for a moment.
func oneOpen(t *testing.T, base int64, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for liveFilters.Load()-base != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d filters open %s, want 1 (the snapshot in force)", liveFilters.Load()-base, when)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package xds

import (
	"slices"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func TestConfigDumpRoundTrip(t *testing.T) {
	b, err := LoadBootstrapFile(sampleBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	js, err := b.Snapshot.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	var dump adminv3.ConfigDump
	if err := protojson.Unmarshal(js, &dump); err != nil {
		t.Fatalf("config dump does not parse back: %v\n%s", err, js)
	}
	if len(dump.GetConfigs()) != 4 {
		t.Fatalf("got %d configs, want 4", len(dump.GetConfigs()))
	}
	var (
		boot adminv3.BootstrapConfigDump
		lds  adminv3.ListenersConfigDump
		cds  adminv3.ClustersConfigDump
		rds  adminv3.RoutesConfigDump
	)
	for i, m := range []proto.Message{&boot, &lds, &cds, &rds} {
		if err := dump.GetConfigs()[i].UnmarshalTo(m); err != nil {
			t.Fatalf("configs[%d]: %v", i, err)
		}
	}

	if diff := cmp.Diff(b.Raw, boot.GetBootstrap(), protocmp.Transform()); diff != "" {
		t.Errorf("bootstrap (-want +got):\n%s", diff)
	}
	if lds.GetVersionInfo() != b.Snapshot.Version || cds.GetVersionInfo() != b.Snapshot.Version || b.Snapshot.Version == "" {
		t.Errorf("versions: listeners %q, clusters %q, snapshot %q", lds.GetVersionInfo(), cds.GetVersionInfo(), b.Snapshot.Version)
	}
	var listeners []*listenerv3.Listener
	for _, sl := range lds.GetStaticListeners() {
		var l listenerv3.Listener
		if err := sl.GetListener().UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, &l)
	}
	if diff := cmp.Diff(b.Raw.GetStaticResources().GetListeners(), listeners, protocmp.Transform()); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	var clusters []*clusterv3.Cluster
	for _, sc := range cds.GetStaticClusters() {
		var c clusterv3.Cluster
		if err := sc.GetCluster().UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		clusters = append(clusters, &c)
	}
	if diff := cmp.Diff(b.Raw.GetStaticResources().GetClusters(), clusters, protocmp.Transform()); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	// The inline route configurations of the connection managers, once each, as Envoy's
	// static route configs.
	var want []*routev3.RouteConfiguration
	for _, l := range listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&hcm) == nil && hcm.GetRouteConfig() != nil &&
					!slices.ContainsFunc(want, func(o *routev3.RouteConfiguration) bool { return proto.Equal(o, hcm.GetRouteConfig()) }) {
					want = append(want, hcm.GetRouteConfig())
				}
			}
		}
	}
	var routes []*routev3.RouteConfiguration
	for _, sr := range rds.GetStaticRouteConfigs() {
		var r routev3.RouteConfiguration
		if err := sr.GetRouteConfig().UnmarshalTo(&r); err != nil {
			t.Fatal(err)
		}
		routes = append(routes, &r)
	}
	if !cmp.Equal(want, routes, protocmp.Transform()) {
		t.Errorf("static route configs: %d, want the %d inline ones: %s", len(routes), len(want), cmp.Diff(want, routes, protocmp.Transform()))
	}
}

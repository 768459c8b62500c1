package xds

import (
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
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
	if len(dump.GetConfigs()) != 3 {
		t.Fatalf("got %d configs, want 3", len(dump.GetConfigs()))
	}
	var (
		boot adminv3.BootstrapConfigDump
		lds  adminv3.ListenersConfigDump
		cds  adminv3.ClustersConfigDump
	)
	for i, m := range []proto.Message{&boot, &lds, &cds} {
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
}

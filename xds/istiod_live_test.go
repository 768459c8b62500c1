package xds

import (
	"os"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestLiveIstiodConfigDump takes the config a live istiod sent a waypoint (its
// /debug/config_dump for a Gateway waypoint and a Service reviews, captured from
// pilot-discovery on a local API server): every listener and cluster decodes. Its first
// listener push was once refused for set_filter_state's istio.hashable_string factory, which
// the in-process fixture does not have. The live catalogue (e2e/cluster/live) checks far
// more against a running istiod; this keeps the first push's shape in the unit tests.
func TestLiveIstiodConfigDump(t *testing.T) {
	b, err := os.ReadFile("testdata/istiod/live/config-dump.json")
	if err != nil {
		t.Fatal(err)
	}
	var dump adminv3.ConfigDump
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &dump); err != nil {
		t.Fatal(err)
	}
	r := &Resources{}
	for _, a := range dump.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch d := m.(type) {
		case *adminv3.ListenersConfigDump:
			for _, l := range d.GetDynamicListeners() {
				add(t, r, l.GetActiveState().GetListener().UnmarshalNew)
			}
		case *adminv3.ClustersConfigDump:
			for _, c := range d.GetDynamicActiveClusters() {
				add(t, r, c.GetCluster().UnmarshalNew)
			}
		}
	}
	if len(r.Listeners) != 3 || len(r.Clusters) != 4 {
		t.Fatalf("the dump has %d listeners and %d clusters, want 3 and 4", len(r.Listeners), len(r.Clusters))
	}
	snap, err := BuildResources("live", r)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"connect_terminate", "main_internal", "connect_originate"} {
		if snap.Listener(name) == nil {
			t.Errorf("listener %s not decoded", name)
		}
	}
}

func add(t *testing.T, r *Resources, unmarshal func() (proto.Message, error)) {
	t.Helper()
	m, err := unmarshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(m); err != nil {
		t.Fatal(err)
	}
}

package xds

import (
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ConfigDump renders the snapshot in the shape of Envoy's /config_dump:
// {"configs": [BootstrapConfigDump, ListenersConfigDump, ClustersConfigDump]},
// listeners and clusters as static ones with the snapshot's Version, in
// protojson with proto field names as Envoy writes it. The bootstrap is empty
// for a snapshot that did not come from a bootstrap file. No last_updated
// times are set: a snapshot does not record when it was built.
func (s *Snapshot) ConfigDump() ([]byte, error) {
	boot := &adminv3.BootstrapConfigDump{Bootstrap: s.bootstrap}
	lds := &adminv3.ListenersConfigDump{VersionInfo: s.Version}
	for _, l := range s.Listeners {
		a, err := anypb.New(l.Raw)
		if err != nil {
			return nil, err
		}
		lds.StaticListeners = append(lds.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: a})
	}
	cds := &adminv3.ClustersConfigDump{VersionInfo: s.Version}
	for _, c := range s.clusterOrder {
		a, err := anypb.New(c)
		if err != nil {
			return nil, err
		}
		cds.StaticClusters = append(cds.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: a})
	}
	dump := &adminv3.ConfigDump{}
	for _, m := range []proto.Message{boot, lds, cds} {
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		dump.Configs = append(dump.Configs, a)
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(dump)
}

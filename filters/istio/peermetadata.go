package istio

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
)

// PeerMetadataTypeURL is the type URL of Istio's peer metadata filter
// config, which travels in a TypedStruct.
const PeerMetadataTypeURL = "type.googleapis.com/io.istio.http.peer_metadata.Config"

func init() { filters.Register(peerMetadataFactory{}) }

type peerMetadataFactory struct{}

func (peerMetadataFactory) Names() []string {
	return []string{"istio.peer_metadata", "waypoint_downstream_peer_metadata", "waypoint_upstream_peer_metadata"}
}
func (peerMetadataFactory) TypeURLs() []string { return []string{PeerMetadataTypeURL} }

// New checks the config (a *structpb.Struct, see CheckPeerMetadata) and
// returns a filter that does nothing.
func (peerMetadataFactory) New(_ filters.BuildContext, cfg proto.Message) (filters.NoOp, error) {
	st, _ := cfg.(*structpb.Struct)
	if cfg != nil && st == nil {
		return filters.NoOp{}, fmt.Errorf("peer_metadata: config is %T, want a TypedStruct value", cfg)
	}
	return filters.NoOp{}, CheckPeerMetadata(st)
}

// CheckPeerMetadata checks a peer metadata Config (io.istio.http.peer_metadata)
// as the waypoint implements it: discovery through workload_discovery only
// (which fills filter state for telemetry), shared_with_upstream and
// additional_labels. Propagation (downstream_propagation,
// upstream_propagation: headers added to traffic) and the other discovery
// methods (istio_headers removes headers) are refused, naming the field.
func CheckPeerMetadata(st *structpb.Struct) error {
	for k, v := range st.GetFields() {
		switch k {
		case "downstream_discovery", "upstream_discovery":
			for i, m := range v.GetListValue().GetValues() {
				for method := range m.GetStructValue().GetFields() {
					if method != "workload_discovery" {
						return fmt.Errorf("%s[%d].%s: not supported yet (only workload_discovery)", k, i, method)
					}
				}
			}
		case "shared_with_upstream":
			if _, ok := v.GetKind().(*structpb.Value_BoolValue); !ok {
				return fmt.Errorf("%s: want a bool", k)
			}
		case "additional_labels":
			if _, ok := v.GetKind().(*structpb.Value_ListValue); !ok {
				return fmt.Errorf("%s: want a list of strings", k)
			}
		default:
			known := []string{"downstream_discovery", "upstream_discovery", "shared_with_upstream", "additional_labels"}
			if slices.Contains([]string{"downstream_propagation", "upstream_propagation"}, k) {
				return fmt.Errorf("%s: not supported yet (peer metadata headers)", k)
			}
			return fmt.Errorf("%s: unknown field (known: %v)", k, known)
		}
	}
	return nil
}

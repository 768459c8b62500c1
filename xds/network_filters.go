package xds

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	setfilterstatenetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/set_filter_state/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// MetadataExchangeTypeURL is the config type of Istio's TCP metadata
// exchange filter (istio.metadata_exchange), which travels in a TypedStruct.
const MetadataExchangeTypeURL = "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange"

// decodeLeadingNetworkFilter decodes a network filter placed before the
// terminal one. Those istiod writes change nothing the waypoint's data path
// would do otherwise, and are accepted after their config is checked:
//
//   - set_filter_state (connect_authority on direct-tcp and direct-http,
//     propagate_endpoint_metadata on inner_connect_originate): see
//     filterstate.go;
//   - istio.metadata_exchange with the istio-peer-exchange protocol and
//     discovery: after HBONE it exchanges nothing on the wire (the peer's
//     metadata comes from workload discovery) and only fills filter state
//     for telemetry.
//
// envoy.filters.network.rbac and envoy.filters.network.ext_authz are
// decoded apart (networkrbac.go); anything
// else is refused. It returns the filter's name. Errors are
// relative to the filter.
func decodeLeadingNetworkFilter(f *listenerv3.Filter) (string, error) {
	a := f.GetTypedConfig()
	if a == nil {
		return "", at("typed_config", errRequired)
	}
	var sfs setfilterstatenetv3.Config
	switch a.MessageName() {
	case nameOf(&sfs):
		if err := proto.Unmarshal(a.GetValue(), &sfs); err != nil {
			return "", at("typed_config", err)
		}
		if err := networkFilterAllowlist.Check(sfs.ProtoReflect()); err != nil {
			return "", at("typed_config", err)
		}
		known := directChainFilterState
		if f.GetName() == "propagate_endpoint_metadata" {
			known = doubleHBONEFilterState
		}
		return f.GetName(), at("typed_config", checkFilterState("on_new_connection", sfs.GetOnNewConnection(), known))
	case nameOf(&tcpproxyv3.TcpProxy{}):
		return "", fmt.Errorf("%s is a terminal filter and must be the last one", f.GetName())
	}
	if typeURL, value, ok := typedStruct(a); ok && typeURL == MetadataExchangeTypeURL {
		return f.GetName(), at("typed_config.value", checkMetadataExchange(value))
	}
	return "", fmt.Errorf("unsupported network filter %q (%s)", f.GetName(), a.GetTypeUrl())
}

var networkFilterAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.set_filter_state.v3.Config": fields("on_new_connection*"), // checkFilterState
}

// checkMetadataExchange accepts {protocol: istio-peer-exchange,
// enable_discovery: bool, additional_labels: [...]}.
func checkMetadataExchange(st *structpb.Struct) error {
	for k, v := range st.GetFields() {
		switch k {
		case "protocol":
			if v.GetStringValue() != "istio-peer-exchange" {
				return fmt.Errorf("protocol: only istio-peer-exchange is supported, got %v", v.AsInterface())
			}
		case "enable_discovery":
			if _, ok := v.GetKind().(*structpb.Value_BoolValue); !ok {
				return fmt.Errorf("enable_discovery: want a bool")
			}
		case "additional_labels":
			if _, ok := v.GetKind().(*structpb.Value_ListValue); !ok {
				return fmt.Errorf("additional_labels: want a list of strings")
			}
		default:
			return fmt.Errorf("%s: unknown field", k)
		}
	}
	return nil
}

// Tunneling is a tcp_proxy's tunneling_config: the upstream connection is
// a CONNECT stream (HBONE) whose :authority is Hostname. Only the
// internal connect_originate listeners use it, and Build folds them into
// the clusters that reach them (see internal.go).
type Tunneling struct {
	Hostname string
	// Headers names the headers_to_add (double HBONE only).
	Headers []string
}

// downstreamLocalAddress is the tunnel hostname istiod writes for
// connect_originate: the original destination, pod ip:port.
const downstreamLocalAddress = "%DOWNSTREAM_LOCAL_ADDRESS%"

// decodeTunneling decodes a tunneling_config. Errors are relative to it.
func decodeTunneling(pb *tcpproxyv3.TcpProxy_TunnelingConfig) (*Tunneling, error) {
	t := &Tunneling{Hostname: pb.GetHostname()}
	if pb.GetUsePost() || pb.GetPostPath() != "" || pb.GetPropagateResponseHeaders() || pb.GetPropagateResponseTrailers() {
		return nil, fmt.Errorf("only CONNECT tunnelling is supported")
	}
	for _, h := range pb.GetHeadersToAdd() {
		t.Headers = append(t.Headers, h.GetHeader().GetKey())
	}
	return t, nil
}

package xds

import (
	"fmt"

	setfilterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/set_filter_state/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// The waypoint has no generic filter state. What istiod's set_filter_state
// entries put there is known in advance and already carried by the data
// path: the HBONE :authority is the stream's original destination
// (filters.Downstream.Destination), the verified peer identity is
// Downstream.Peer, and the encap cluster dials that same destination. So a
// set_filter_state config is accepted when each entry is one of the pairs
// below, which the data path implements that way, and refused otherwise
// (the key and its format named), never silently ignored.

// filterStateEntry is one (object_key, format) pair istiod writes.
type filterStateEntry struct {
	key, format string
}

// Where set_filter_state runs, and the entries implemented there.
var (
	// connect_terminate's connect_authority (HTTP, on the CONNECT request).
	connectTerminateFilterState = map[filterStateEntry]string{
		{"envoy.filters.listener.original_dst.local_ip", "%REQ(:AUTHORITY)%"}:            "the CONNECT :authority is the stream's original destination",
		{"io.istio.connect_authority", "%REQ(:AUTHORITY)%"}:                              "the CONNECT :authority is the stream's original destination",
		{"envoy.filters.listener.original_dst.remote_ip", "%DOWNSTREAM_REMOTE_ADDRESS%"}: "the HBONE peer address is the stream's remote address",
		{"io.istio.peer_principal", "%DOWNSTREAM_PEER_URI_SAN%"}:                         "the verified peer identity travels with the stream",
		{"io.istio.local_principal", "%DOWNSTREAM_LOCAL_URI_SAN%"}:                       "the waypoint's own identity",
	}
	// direct-tcp and direct-http's connect_authority (network, on a new
	// connection): the original destination is passed on to encap.
	directChainFilterState = map[filterStateEntry]string{
		{"envoy.filters.listener.original_dst.local_ip", "%FILTER_STATE(envoy.filters.listener.original_dst.local_ip:PLAIN)%"}: "encap dials the stream's original destination",
	}
	// inner_connect_originate's propagate_endpoint_metadata (double HBONE,
	// network): decoded so the listener validates; a cluster reaching that
	// listener is refused (see resolveInternal).
	doubleHBONEFilterState = map[filterStateEntry]string{
		{"envoy.filters.listener.original_dst.local_ip", "%DYNAMIC_METADATA(envoy.filters.listener.original_dst:local)%"}: "double HBONE",
		{"istio.double_hbone.hbone_target_address", "%DYNAMIC_METADATA(istio:double_hbone:hbone_target_address)%"}:        "double HBONE",
	}
)

// filterStateFactories are the object factories an entry may name. Both
// make a string: Envoy's plain one, and Istio's hashable one (the same
// string, which Envoy also hashes into the key of the upstream connection
// pool so that streams of different peers or authorities never share an
// upstream connection; the waypoint's pools already key upstream HBONE
// connections by endpoint and identity, and each stream carries its own
// authority and peer). "" is Envoy's default, the object key's own factory.
var filterStateFactories = map[string]bool{"": true, "envoy.string": true, "istio.hashable_string": true}

// filterStateAllowlist checks a FilterStateValue and what it holds.
var filterStateAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.common.set_filter_state.v3.FilterStateValue": fields("object_key", "factory_key",
		"format_string", "read_only", "shared_with_upstream", "skip_if_empty"),
	"envoy.config.core.v3.SubstitutionFormatString": fields("text_format_source"),
	"envoy.config.core.v3.DataSource":               fields("inline_string"),
}

// checkFilterState checks that every entry is in known. Errors are
// relative to the list's parent, listName being the list's field.
func checkFilterState(listName string, vals []*setfilterstatev3.FilterStateValue, known map[filterStateEntry]string) error {
	if len(vals) == 0 {
		return errAt(listName, "at least one entry is required")
	}
	for i, v := range vals {
		path := idx(listName, i)
		if err := filterStateAllowlist.Check(v.ProtoReflect()); err != nil {
			return at(path, err)
		}
		if f := v.GetFactoryKey(); !filterStateFactories[f] {
			return errAt(path+".factory_key", "%q is not supported (only envoy.string and istio.hashable_string)", f)
		}
		e := filterStateEntry{key: v.GetObjectKey(), format: v.GetFormatString().GetTextFormatSource().GetInlineString()}
		if _, ok := known[e]; !ok {
			return fmt.Errorf("%s: filter state %q from %q is not implemented here", path, e.key, e.format)
		}
	}
	return nil
}

package xds

import (
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// decodeListener decodes and validates one listener. b holds the known
// clusters, for the tcp_proxy cross-reference, and what its filters are
// built with. Errors are relative to the listener.
func decodeListener(pb *listenerv3.Listener, b *build) (*Listener, error) {
	if err := checkSupported(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetName() == "" {
		return nil, at("name", errRequired)
	}
	l := &Listener{Name: pb.GetName(), TrafficDirection: pb.GetTrafficDirection(), Raw: pb}

	switch {
	case pb.GetAddress() != nil && pb.GetInternalListener() != nil:
		return nil, errAt("internal_listener", "must not be set together with address")
	case pb.GetAddress() != nil:
		ap, err := socketAddress(pb.GetAddress(), true)
		if err != nil {
			return nil, at("address", err)
		}
		l.Address = ap
	case pb.GetInternalListener() != nil:
		l.Internal = true
	default:
		return nil, errAt("address", "required (or internal_listener)")
	}
	if err := decodeAdditionalAddresses(pb, l); err != nil {
		return nil, err
	}

	if pb.GetUseOriginalDst().GetValue() {
		return nil, errAt("use_original_dst", "true is not supported yet")
	}
	if err := decodeListenerFilters(pb, l); err != nil {
		return nil, err
	}
	if isHBONEEntry(pb) {
		// Its one chain takes every connection: an access_log that writes
		// only connections no chain takes (NR) never writes.
		logs, err := accesslog.Decode(pb.GetAccessLog())
		if err != nil {
			return nil, err
		}
		if accesslog.MayLogAny(logs, 0, filters.FlagNR) {
			return nil, errAt("access_log", "on the HBONE listener, only an access_log filtered to connections no filter chain takes "+
				"(response_flag_filter NR) is supported (a line per HBONE connection is not written yet)")
		}
		return decodeHBONEEntry(pb, l, b.clusters)
	}

	if len(pb.GetFilterChains()) == 0 && pb.GetDefaultFilterChain() == nil {
		return nil, errAt("filter_chains", "at least one filter chain or a default_filter_chain is required")
	}
	for i, fc := range pb.GetFilterChains() {
		c, err := decodeFilterChain(fc, b)
		if err != nil {
			return nil, at(idx("filter_chains", i), err)
		}
		l.FilterChains = append(l.FilterChains, c)
	}
	if fc := pb.GetDefaultFilterChain(); fc != nil {
		c, err := decodeFilterChain(fc, b)
		if err != nil {
			return nil, at("default_filter_chain", err)
		}
		l.DefaultChain = c
	}

	if m := pb.GetFilterChainMatcher(); m != nil {
		// As in Envoy, the matcher replaces filter_chain_match (which is still
		// validated above but not used), and needs every chain named uniquely.
		byName, err := chainsByName(l.FilterChains)
		if err != nil {
			return nil, err
		}
		l.matcher, err = compileMatcher(m, byName)
		if err != nil {
			return nil, at("filter_chain_matcher", err)
		}
	} else {
		var err error
		l.classic, err = compileClassic(pb.GetFilterChains(), l.FilterChains)
		if err != nil {
			return nil, err
		}
	}

	if err := decodeListenerAccessLog(pb, l); err != nil {
		return nil, err
	}
	if err := validate(pb); err != nil {
		return nil, err
	}
	return l, nil
}

// decodeListenerAccessLog decodes the listener's access_log. Envoy writes
// a listener's access_log once per downstream connection, for any chain;
// the waypoint writes it for the connections no filter chain takes
// (response flag NR: istiod's filter on every listener of a waypoint when a
// Telemetry turns access logs on) and, in the DubboProxy of each
// dubbo_proxy chain (Envoy's DubboProxy has no access_log of its own), once
// per Dubbo call. An HTTP or TCP chain's connections are logged by its
// HttpConnectionManager's or tcp_proxy's own access_log. On a listener
// without a dubbo_proxy chain, an access_log whose filter lets through
// connections that found a chain would miss lines, so it is refused.
func decodeListenerAccessLog(pb *listenerv3.Listener, l *Listener) error {
	if len(pb.GetAccessLog()) == 0 {
		return nil
	}
	logs, err := accesslog.Decode(pb.GetAccessLog())
	if err != nil {
		return err
	}
	chains := append([]*FilterChain(nil), l.FilterChains...)
	if l.DefaultChain != nil {
		chains = append(chains, l.DefaultChain)
	}
	dubbo := false
	for _, c := range chains {
		if c.Dubbo != nil {
			c.Dubbo.AccessLog = logs
			dubbo = true
		}
	}
	if !dubbo && accesslog.MayLogAny(logs, 0, filters.FlagNR) {
		return errAt("access_log", "the listener has no %s chain: a listener's access_log is written for connections no filter chain takes "+
			"(filter it with response_flag_filter NR) and Dubbo calls only (log HTTP and TCP chains with their HttpConnectionManager's "+
			"or tcp_proxy's access_log)", dubboFilterName)
	}
	l.AccessLog = logs
	return nil
}

// chainsByName indexes chains by name for filter_chain_matcher actions.
// Envoy requires every chain to have a unique, non-empty name then.
func chainsByName(chains []*FilterChain) (map[string]*FilterChain, error) {
	byName := make(map[string]*FilterChain, len(chains))
	for i, c := range chains {
		switch {
		case c.Name == "":
			return nil, errAt(idx("filter_chains", i)+".name", "required when filter_chain_matcher is set")
		case byName[c.Name] != nil:
			return nil, errAt(idx("filter_chains", i)+".name", "duplicate filter chain name %q", c.Name)
		}
		byName[c.Name] = c
	}
	return byName, nil
}

// decodeAdditionalAddresses decodes additional_addresses: socket addresses
// the listener listens on besides address, as in Envoy, all distinct (a
// port 0 asks the OS for a free port for each). An internal listener has
// none. Errors are relative to the listener.
func decodeAdditionalAddresses(pb *listenerv3.Listener, l *Listener) error {
	aas := pb.GetAdditionalAddresses()
	if len(aas) == 0 {
		return nil
	}
	if l.Internal {
		return errAt("additional_addresses", "not supported on an internal_listener")
	}
	seen := map[netip.AddrPort]bool{l.Address: l.Address.Port() != 0}
	for i, aa := range aas {
		path := idx("additional_addresses", i) + ".address"
		if aa.GetAddress() == nil {
			return errAt(path, "required")
		}
		ap, err := socketAddress(aa.GetAddress(), true)
		if err != nil {
			return at(path, err)
		}
		if seen[ap] {
			return errAt(path, "%s is already an address of the listener", ap)
		}
		seen[ap] = ap.Port() != 0
		l.AdditionalAddresses = append(l.AdditionalAddresses, ap)
	}
	return nil
}

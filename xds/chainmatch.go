package xds

import (
	"fmt"
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// classicSelector is filter_chain_match compiled: chains grouped by
// destination port (0 = chains without one), then by destination prefix.
type classicSelector struct {
	ports map[uint16]*destIPs
}

// destIPs selects among the chains of one destination port group.
type destIPs struct {
	prefixes prefixTable[*FilterChain]
	any      *FilterChain // the chain without prefix_ranges
}

// unknownDestination stands in for a destination that is not an IP address;
// as in Envoy, it only matches catch-all prefixes.
var unknownDestination = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// match implements Envoy's order: the chains naming the destination port if
// there are any, else the chains naming no port; among them the longest
// prefix containing the destination IP, else the chain without prefixes.
// Chains that name the port but not the IP do not fall back to port-less ones.
func (s *classicSelector) match(in *MatchInput) *FilterChain {
	ip := unknownDestination
	g := (*destIPs)(nil)
	if in.Destination.IsValid() {
		ip = in.Destination.Addr()
		g = s.ports[in.Destination.Port()]
	}
	if g == nil {
		if g = s.ports[0]; g == nil {
			return nil
		}
	}
	if c, ok := g.prefixes.longest(ip); ok {
		return c
	}
	return g.any
}

// matchKey identifies one leaf of Envoy's filter chain match tree; two chains
// reaching the same leaf have overlapping criteria, which Envoy rejects.
type matchKey struct {
	port   uint16
	prefix netip.Prefix // zero: no prefix_ranges
}

// compileClassic builds the selector for chains (protos and their decoded
// form, in the same order). Errors are relative to the listener.
func compileClassic(pbs []*listenerv3.FilterChain, chains []*FilterChain) (*classicSelector, error) {
	s := &classicSelector{ports: make(map[uint16]*destIPs)}
	seen := make(map[matchKey]int)
	for i, pb := range pbs {
		path := idx("filter_chains", i) + ".filter_chain_match"
		port, prefixes, err := decodeChainMatch(pb.GetFilterChainMatch())
		if err != nil {
			return nil, at(path, err)
		}
		g := s.ports[port]
		if g == nil {
			g = &destIPs{}
			s.ports[port] = g
		}
		keys := make([]matchKey, 0, max(1, len(prefixes)))
		if len(prefixes) == 0 {
			keys = append(keys, matchKey{port: port})
		}
		for _, p := range prefixes {
			keys = append(keys, matchKey{port: port, prefix: p})
		}
		for _, k := range keys {
			if j, dup := seen[k]; dup {
				return nil, &fieldError{Path: path, Err: fmt.Errorf(
					"overlaps filter_chains[%d] (%q) on %s: Envoy rejects filter chains with the same match criteria",
					j, pbs[j].GetName(), k)}
			}
			seen[k] = i
			if k.prefix.IsValid() {
				g.prefixes.put(k.prefix, chains[i])
			} else {
				g.any = chains[i]
			}
		}
	}
	return s, nil
}

// String describes a match key in errors.
func (k matchKey) String() string {
	port, ip := "any port", "any IP"
	if k.port != 0 {
		port = fmt.Sprintf("port %d", k.port)
	}
	if k.prefix.IsValid() {
		ip = k.prefix.String()
	}
	return port + " and " + ip
}

// decodeChainMatch decodes the supported filter_chain_match criteria:
// destination_port (0 when absent) and prefix_ranges. Errors are relative to
// the FilterChainMatch.
func decodeChainMatch(m *listenerv3.FilterChainMatch) (uint16, []netip.Prefix, error) {
	var port uint16
	if p := m.GetDestinationPort(); p != nil {
		if p.GetValue() < 1 || p.GetValue() > 65535 {
			return 0, nil, errAt("destination_port", "%d is not a port", p.GetValue())
		}
		port = uint16(p.GetValue())
	}
	var prefixes []netip.Prefix
	for j, r := range m.GetPrefixRanges() {
		p, err := cidr(r.GetAddressPrefix(), r.GetPrefixLen())
		if err != nil {
			return 0, nil, at(idx("prefix_ranges", j), err)
		}
		prefixes = append(prefixes, p)
	}
	return port, prefixes, nil
}

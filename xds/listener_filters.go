package xds

import (
	"fmt"
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
)

// HTTPInspector is a listener's envoy.filters.listener.http_inspector: the
// first bytes of a connection are read to tell HTTP/2 (its preface) and
// HTTP/1.x from anything else, for the filter_chain_matcher's
// ApplicationProtocolInput. Read-only.
type HTTPInspector struct {
	// disabled is filter_disabled compiled; nil: enabled everywhere.
	disabled *portPredicate
}

// Enabled reports whether the inspector runs for a connection to dst.
func (h *HTTPInspector) Enabled(dst netip.AddrPort) bool {
	return h != nil && (h.disabled == nil || !h.disabled.eval(dst.Port()))
}

// portPredicate is a ListenerFilterChainMatchPredicate, of which the
// destination port is the only input (as in Envoy).
type portPredicate struct {
	op    portOp
	lo    uint16 // [lo, hi) for portRange
	hi    uint32
	items []*portPredicate // or, and; not has one
}

type portOp uint8

const (
	portAny portOp = iota
	portRange
	portOr
	portAnd
	portNot
)

func (p *portPredicate) eval(port uint16) bool {
	switch p.op {
	case portAny:
		return true
	case portRange:
		return port >= p.lo && uint32(port) < p.hi
	case portOr:
		for _, q := range p.items {
			if q.eval(port) {
				return true
			}
		}
		return false
	case portAnd:
		for _, q := range p.items {
			if !q.eval(port) {
				return false
			}
		}
		return true
	case portNot:
		return !p.items[0].eval(port)
	}
	return false
}

// compilePortPredicate compiles filter_disabled. Errors are relative to it.
func compilePortPredicate(pb *listenerv3.ListenerFilterChainMatchPredicate) (*portPredicate, error) {
	switch r := pb.GetRule().(type) {
	case *listenerv3.ListenerFilterChainMatchPredicate_AnyMatch:
		return &portPredicate{op: portAny}, nil
	case *listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange:
		lo, hi := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if lo < 0 || hi > 65536 || lo >= hi {
			return nil, errAt("destination_port_range", "[%d, %d) is not a port range", lo, hi)
		}
		return &portPredicate{op: portRange, lo: uint16(lo), hi: uint32(hi)}, nil
	case *listenerv3.ListenerFilterChainMatchPredicate_NotMatch:
		q, err := compilePortPredicate(r.NotMatch)
		if err != nil {
			return nil, at("not_match", err)
		}
		return &portPredicate{op: portNot, items: []*portPredicate{q}}, nil
	case *listenerv3.ListenerFilterChainMatchPredicate_OrMatch, *listenerv3.ListenerFilterChainMatchPredicate_AndMatch:
		op, name, set := portOr, "or_match", pb.GetOrMatch()
		if pb.GetAndMatch() != nil {
			op, name, set = portAnd, "and_match", pb.GetAndMatch()
		}
		p := &portPredicate{op: op}
		for i, rule := range set.GetRules() {
			q, err := compilePortPredicate(rule)
			if err != nil {
				return nil, at(name+"."+idx("rules", i), err)
			}
			p.items = append(p.items, q)
		}
		return p, nil
	}
	return nil, errAt("rule", "required")
}

// decodeListenerFilters decodes listener_filters into l: original_dst is
// a no-op (a stream's destination is already known: the HBONE :authority,
// or the accepted socket's local address), http_inspector feeds the
// application protocol input. Errors are relative to the listener.
func decodeListenerFilters(pb *listenerv3.Listener, l *Listener) error {
	for i, lf := range pb.GetListenerFilters() {
		path := idx("listener_filters", i)
		a := lf.GetTypedConfig()
		if a == nil {
			return at(path+".typed_config", errRequired)
		}
		var od originaldstv3.OriginalDst
		var hi httpinspectorv3.HttpInspector
		switch a.MessageName() {
		case nameOf(&od):
			if lf.GetFilterDisabled() != nil {
				return errAt(path+".filter_disabled", "not supported for original_dst")
			}
			if err := unpack(a, &od); err != nil {
				return at(path+".typed_config", err)
			}
		case nameOf(&hi):
			if err := unpack(a, &hi); err != nil {
				return at(path+".typed_config", err)
			}
			if l.HTTPInspector != nil {
				return errAt(path, "a second http_inspector")
			}
			l.HTTPInspector = &HTTPInspector{}
			if fd := lf.GetFilterDisabled(); fd != nil {
				p, err := compilePortPredicate(fd)
				if err != nil {
					return at(path+".filter_disabled", err)
				}
				l.HTTPInspector.disabled = p
			}
		default:
			return fmt.Errorf("%s: unsupported listener filter %q (%s)", path, lf.GetName(), a.GetTypeUrl())
		}
	}
	return nil
}

// Sniffs reports whether a connection to dst must be inspected before its
// filter chain can be chosen: the listener's matcher reads the
// application protocol and its http_inspector runs for dst.
func (l *Listener) Sniffs(dst netip.AddrPort) bool {
	return l.matcher != nil && l.matcher.readsAppProtocol && l.HTTPInspector.Enabled(dst)
}

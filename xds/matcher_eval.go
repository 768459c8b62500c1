package xds

import (
	"bytes"
	"net/netip"
	"strconv"
	"sync"
)

// The evaluation below follows Envoy's matcher semantics (source/common/matcher):
// a branch whose nested matcher does not match counts as no match, and the
// enclosing matcher moves on (list: next entry; prefix map: next shorter
// prefix; IP ranges: next less specific non-exclusive range; exact map: none)
// before falling back to its on_no_match. Nothing here allocates: inputs are
// formatted into stack buffers only where a string comparison needs them.

// maxInputLen bounds the text form of an input (an IPv6 address is at most 45 bytes).
const maxInputLen = 64

// match evaluates m, returning the selected chain, or false when m (including
// its on_no_match) does not match.
func (m *matcher) match(in *MatchInput) (*FilterChain, bool) {
	if c, ok := m.matchBranches(in); ok {
		return c, true
	}
	return m.onNoMatch.eval(in)
}

func (m *matcher) matchBranches(in *MatchInput) (*FilterChain, bool) {
	switch m.kind {
	case matcherList:
		for i := range m.list {
			fm := &m.list[i]
			if fm.pred.eval(in) {
				if c, ok := fm.on.eval(in); ok {
					return c, true
				}
			}
		}
	case treeExactPort:
		if port, ok := in.port(m.input); ok {
			return m.exactPort[port].eval(in)
		}
	case treeExactIP:
		if ip, ok := in.ip(m.input); ok {
			return m.exactIP[ip].eval(in)
		}
	case treeExactText:
		if in.AppProtocol != "" {
			return m.exactText[in.AppProtocol].eval(in)
		}
	case treePrefix:
		var buf [maxInputLen]byte
		v, ok := in.appendText(buf[:0], m.input)
		if !ok {
			break
		}
		for i := range m.prefixes {
			b := &m.prefixes[i]
			if bytes.HasPrefix(v, b.prefix) {
				if c, ok := b.on.eval(in); ok {
					return c, true
				}
			}
		}
	case treeIP:
		ip, ok := in.ip(m.input)
		if !ok {
			break
		}
		// Most specific first, then declaration order. Once a range has been
		// tried, less specific exclusive ones are skipped (IPRangeMatcher.exclusive).
		tried := false
		for i := range m.ranges.n(ip) {
			leaves, _ := m.ranges.at(ip, i)
			for j := range leaves {
				l := &leaves[j]
				if tried && l.exclusive {
					continue
				}
				if c, ok := l.on.eval(in); ok {
					return c, true
				}
				tried = true
			}
		}
	}
	return nil, false
}

// eval resolves an on_match; a nil onMatch never matches.
func (o *onMatch) eval(in *MatchInput) (*FilterChain, bool) {
	switch {
	case o == nil:
		return nil, false
	case o.chain != nil:
		return o.chain, true
	default:
		return o.next.match(in)
	}
}

func (p *predicate) eval(in *MatchInput) bool {
	switch p.op {
	case predString:
		var buf [maxInputLen]byte
		v, ok := in.appendText(buf[:0], p.input)
		return ok && p.str.match(v)
	case predCIDR:
		ip, ok := in.ip(p.input)
		if !ok {
			return false
		}
		for _, c := range p.cidrs {
			if c.Contains(ip) {
				return true
			}
		}
		return false
	case predOr:
		for _, s := range p.subs {
			if s.eval(in) {
				return true
			}
		}
		return false
	case predAnd:
		for _, s := range p.subs {
			if !s.eval(in) {
				return false
			}
		}
		return true
	case predNot:
		return !p.subs[0].eval(in)
	}
	return false
}

func (s *stringMatcher) match(v []byte) bool {
	p := s.pattern
	switch s.op {
	case stringExact:
		return s.equal(v, p)
	case stringPrefix:
		return len(v) >= len(p) && s.equal(v[:len(p)], p)
	case stringSuffix:
		return len(v) >= len(p) && s.equal(v[len(v)-len(p):], p)
	case stringContains:
		if !s.ignoreCase {
			return bytes.Contains(v, p)
		}
		for i := 0; i+len(p) <= len(v); i++ {
			if bytes.EqualFold(v[i:i+len(p)], p) {
				return true
			}
		}
		return false
	case stringRegex:
		return s.matchRegex(v)
	}
	return false
}

// regexInputs holds buffers for regex inputs: the regexp package keeps its
// input reachable from pooled state, so handing it a stack buffer would move
// that buffer to the heap on every call.
var regexInputs = sync.Pool{New: func() any { b := make([]byte, 0, maxInputLen); return &b }}

func (s *stringMatcher) matchRegex(v []byte) bool {
	bp := regexInputs.Get().(*[]byte)
	b := append((*bp)[:0], v...)
	ok := s.re.Match(b)
	*bp = b[:0]
	regexInputs.Put(bp)
	return ok
}

func (s *stringMatcher) equal(a, b []byte) bool {
	if s.ignoreCase {
		return bytes.EqualFold(a, b)
	}
	return bytes.Equal(a, b)
}

// addrPort is the address an input reads.
func (in *MatchInput) addrPort(k inputKind) netip.AddrPort {
	if k == inputSourceIP || k == inputSourcePort {
		return in.Source
	}
	return in.Destination
}

// ip is the value of an IP input; false when the address is unknown.
func (in *MatchInput) ip(k inputKind) (netip.Addr, bool) {
	ap := in.addrPort(k)
	return ap.Addr(), ap.IsValid()
}

// port is the value of a port input; false when the address is unknown.
func (in *MatchInput) port(k inputKind) (uint16, bool) {
	ap := in.addrPort(k)
	return ap.Port(), ap.IsValid()
}

// appendText appends the input's text form as Envoy's network inputs produce
// it (an address without brackets, a decimal port).
func (in *MatchInput) appendText(buf []byte, k inputKind) ([]byte, bool) {
	if k == inputAppProtocol {
		return append(buf, in.AppProtocol...), in.AppProtocol != ""
	}
	ap := in.addrPort(k)
	if !ap.IsValid() {
		return buf, false
	}
	if k.isIP() {
		return ap.Addr().AppendTo(buf), true
	}
	return strconv.AppendUint(buf, uint64(ap.Port()), 10), true
}

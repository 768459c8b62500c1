package route

import (
	"errors"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// pseudoHeader names a pseudo-header a matcher reads from the request or
// response fields rather than from the header list.
type pseudoHeader uint8

const (
	notPseudo pseudoHeader = iota
	pseudoMethod
	pseudoAuthority
	pseudoPath
	pseudoScheme
	pseudoProtocol
	pseudoStatus
	// The views of a Dubbo call (protocols/dubbo's FillRequest puts them in
	// the header list). A Triple (Dubbo 3, gRPC) request carries version
	// and group as the tri-service-version and tri-service-group headers,
	// which these names read on any request but a Dubbo 2 one, so that one
	// route matches both.
	pseudoDubboVersion
	pseudoDubboServiceVersion
	pseudoDubboGroup
	pseudoUnknown // any other ":name": never present
)

// Names of the Dubbo views and of Triple's headers for them.
const (
	headerDubboVersion        = ":dubbo-version"
	headerDubboServiceVersion = ":dubbo-service-version"
	headerDubboGroup          = ":dubbo-group"
	headerTriServiceVersion   = "tri-service-version"
	headerTriServiceGroup     = "tri-service-group"
)

func pseudoOf(name string) pseudoHeader {
	if name == "" || name[0] != ':' {
		return notPseudo
	}
	switch name {
	case ":method":
		return pseudoMethod
	case ":authority":
		return pseudoAuthority
	case ":path":
		return pseudoPath
	case ":scheme":
		return pseudoScheme
	case ":protocol":
		return pseudoProtocol
	case ":status":
		return pseudoStatus
	case headerDubboVersion:
		return pseudoDubboVersion
	case headerDubboServiceVersion:
		return pseudoDubboServiceVersion
	case headerDubboGroup:
		return pseudoDubboGroup
	}
	return pseudoUnknown
}

type headerMatchKind uint8

const (
	hmPresent     headerMatchKind = iota
	hmExactLegacy                 // deprecated exact_match: "" matches any value
	hmString
	hmRange
)

// headerMatcher is a compiled envoy.config.route.v3.HeaderMatcher.
type headerMatcher struct {
	name           string
	pseudo         pseudoHeader
	kind           headerMatchKind
	present        bool
	exact          string
	str            stringMatcher
	start, end     int64
	invert         bool
	missingAsEmpty bool
}

// compileHeaderMatcher compiles m; errors are relative to m.
func compileHeaderMatcher(m *routev3.HeaderMatcher) (headerMatcher, error) {
	name := toLower(m.GetName())
	hm := headerMatcher{
		name:           name,
		pseudo:         pseudoOf(name),
		invert:         m.GetInvertMatch(),
		missingAsEmpty: m.GetTreatMissingHeaderAsEmpty(),
	}
	if name == "" {
		return hm, pbcheck.ErrAt("name", "required")
	}
	var err error
	switch s := m.GetHeaderMatchSpecifier().(type) {
	case nil:
		hm.kind, hm.present = hmPresent, true
	case *routev3.HeaderMatcher_PresentMatch:
		hm.kind, hm.present = hmPresent, s.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		hm.kind, hm.exact = hmExactLegacy, s.ExactMatch
	case *routev3.HeaderMatcher_PrefixMatch:
		hm.kind, hm.str = hmString, stringMatcher{kind: smPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		hm.kind, hm.str = hmString, stringMatcher{kind: smSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		hm.kind, hm.str = hmString, stringMatcher{kind: smContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		hm.kind = hmString
		hm.str.kind = smRegex
		if hm.str.re, err = regexMatcher(s.SafeRegexMatch); err != nil {
			return hm, pbcheck.At("safe_regex_match", err)
		}
	case *routev3.HeaderMatcher_StringMatch:
		hm.kind = hmString
		if hm.str, err = compileStringMatcher(s.StringMatch); err != nil {
			return hm, pbcheck.At("string_match", err)
		}
	case *routev3.HeaderMatcher_RangeMatch:
		hm.kind, hm.start, hm.end = hmRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
		if hm.start >= hm.end {
			return hm, pbcheck.ErrAt("range_match", "start %d must be less than end %d", hm.start, hm.end)
		}
	default:
		return hm, errors.New("unsupported header match specifier")
	}
	return hm, nil
}

// matches evaluates the matcher against what c holds, with Envoy's rules
// for absent headers: only a present_match can match a missing header
// (unless treat_missing_header_as_empty), whatever invert_match says.
func (m *headerMatcher) matches(c *matchCtx) bool {
	v, ok := c.value(m.name, m.pseudo)
	if m.kind == hmPresent {
		return (ok == m.present) != m.invert
	}
	if !ok {
		if !m.missingAsEmpty {
			return false
		}
		v = nil
	}
	var r bool
	switch m.kind {
	case hmExactLegacy:
		r = m.exact == "" || string(v) == m.exact
	case hmString:
		r = m.str.match(v)
	case hmRange:
		n, isInt := parseInt64(v)
		r = isInt && n >= m.start && n < m.end
	}
	return r != m.invert
}

// matchCtx is what header matchers read: a request (with its
// pseudo-headers) or a response, and a scratch buffer taken from the pool
// when a header occurs more than once. Call release when done.
type matchCtx struct {
	req     *l7.Request
	resp    *l7.Response
	scratch *[]byte
}

func (c *matchCtx) release() {
	if c.scratch != nil {
		putScratch(c.scratch)
		c.scratch = nil
	}
}

// Values of the standard methods and schemes, so that matching them needs
// no conversion. Read-only.
var (
	bytesGET, bytesHEAD, bytesPOST, bytesPUT      = []byte("GET"), []byte("HEAD"), []byte("POST"), []byte("PUT")
	bytesPATCH, bytesDELETE, bytesCONNECT         = []byte("PATCH"), []byte("DELETE"), []byte("CONNECT")
	bytesOPTIONS, bytesTRACE, bytesHTTP, bytesTLS = []byte("OPTIONS"), []byte("TRACE"), []byte("http"), []byte("https")
)

// stringBytes returns s as bytes, without allocating for the standard
// methods and schemes.
func stringBytes(s string) []byte {
	switch s {
	case l7.MethodGet:
		return bytesGET
	case l7.MethodHead:
		return bytesHEAD
	case l7.MethodPost:
		return bytesPOST
	case l7.MethodPut:
		return bytesPUT
	case l7.MethodPatch:
		return bytesPATCH
	case l7.MethodDelete:
		return bytesDELETE
	case l7.MethodConnect:
		return bytesCONNECT
	case l7.MethodOptions:
		return bytesOPTIONS
	case l7.MethodTrace:
		return bytesTRACE
	case "http":
		return bytesHTTP
	case "https":
		return bytesTLS
	}
	return []byte(s)
}

// value returns the value a matcher sees for a header: the pseudo-header's
// field, the single value, or all values joined with "," in a scratch
// buffer (valid until release).
func (c *matchCtx) value(name string, ps pseudoHeader) ([]byte, bool) {
	switch ps {
	case notPseudo:
	case pseudoMethod:
		if c.req == nil || c.req.Method == "" {
			return nil, false
		}
		return stringBytes(c.req.Method), true
	case pseudoAuthority:
		if c.req == nil || len(c.req.Authority) == 0 {
			return nil, false
		}
		return c.req.Authority, true
	case pseudoPath:
		if c.req == nil || len(c.req.Path) == 0 {
			return nil, false
		}
		return c.req.Path, true
	case pseudoScheme:
		if c.req == nil || c.req.Scheme == "" {
			return nil, false
		}
		return stringBytes(c.req.Scheme), true
	case pseudoProtocol:
		if c.req == nil || c.req.Protocol == "" {
			return nil, false
		}
		return stringBytes(c.req.Protocol), true
	case pseudoStatus:
		if c.resp == nil {
			return nil, false
		}
		c.takeScratch()
		*c.scratch = strconv.AppendInt((*c.scratch)[:0], int64(c.resp.Status), 10)
		return *c.scratch, true
	case pseudoDubboVersion, pseudoDubboServiceVersion, pseudoDubboGroup:
		if c.req == nil {
			return nil, false
		}
		if c.req.Proto != l7.Dubbo {
			switch ps {
			case pseudoDubboServiceVersion:
				name = headerTriServiceVersion
			case pseudoDubboGroup:
				name = headerTriServiceGroup
			default:
				return nil, false
			}
		}
	default:
		return nil, false
	}
	var h *l7.Header
	switch {
	case c.resp != nil:
		h = &c.resp.Header
	case c.req != nil:
		h = &c.req.Header
	default:
		return nil, false
	}
	fields := h.Fields()
	first := -1
	for i := range fields {
		if string(fields[i].Name) != name {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		// A second occurrence: join them all, as Envoy's
		// getAllOfHeaderAsString.
		c.takeScratch()
		buf := append((*c.scratch)[:0], fields[first].Value...)
		for _, f := range fields[i:] {
			if string(f.Name) == name {
				buf = append(buf, ',')
				buf = append(buf, f.Value...)
			}
		}
		*c.scratch = buf
		return buf, true
	}
	if first < 0 {
		return nil, false
	}
	return fields[first].Value, true
}

func (c *matchCtx) takeScratch() {
	if c.scratch == nil {
		c.scratch = getScratch()
	}
}

// headerMatchers is an AND of header matchers.
type headerMatchers []headerMatcher

func (hs headerMatchers) matches(c *matchCtx) bool {
	for i := range hs {
		if !hs[i].matches(c) {
			return false
		}
	}
	return true
}

func compileHeaderMatchers(pbs []*routev3.HeaderMatcher, field string) (headerMatchers, error) {
	var hs headerMatchers
	for i, pb := range pbs {
		hm, err := compileHeaderMatcher(pb)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx(field, i), err)
		}
		hs = append(hs, hm)
	}
	return hs, nil
}

package route

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// HeaderMatcher is a compiled envoy.config.route.v3.HeaderMatcher with the
// route table's semantics (pseudo-headers, repeated fields joined with
// ",", Envoy's rules for absent headers), for other filters that match
// request headers (RBAC). Read-only; safe for concurrent use.
type HeaderMatcher struct{ m headerMatcher }

// CompileHeaderMatcher compiles pb once; errors are relative to pb.
func CompileHeaderMatcher(pb *routev3.HeaderMatcher) (*HeaderMatcher, error) {
	m, err := compileHeaderMatcher(pb)
	if err != nil {
		return nil, err
	}
	return &HeaderMatcher{m: m}, nil
}

// MatchRequest reports whether req's headers match. It does not allocate
// in steady state (a repeated header is joined in a pooled buffer).
func (h *HeaderMatcher) MatchRequest(req *l7.Request) bool {
	c := matchCtx{req: req}
	r := h.m.matches(&c)
	c.release()
	return r
}

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher (exact,
// prefix, suffix, contains, safe_regex, ignore_case), regexes compiled
// once. Read-only; safe for concurrent use.
type StringMatcher struct{ m stringMatcher }

// CompileStringMatcher compiles pb once; errors are relative to pb.
func CompileStringMatcher(pb *matcherv3.StringMatcher) (*StringMatcher, error) {
	m, err := compileStringMatcher(pb)
	if err != nil {
		return nil, err
	}
	return &StringMatcher{m: m}, nil
}

// Match reports whether v matches.
func (s *StringMatcher) Match(v []byte) bool { return s.m.match(v) }

// MatchString reports whether v matches.
func (s *StringMatcher) MatchString(v string) bool { return s.m.matchString(v) }

package route

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// HeaderMatch is a compiled list of envoy.config.route.v3.HeaderMatcher,
// all of which must match, with the semantics of this package's routes
// (pseudo-headers read from the request's fields, repeated headers joined
// with ","). Route tables of other protocols (Dubbo's, whose attachments
// are the request's headers) match headers with it. The zero value
// matches every request. Read-only; safe for concurrent use.
type HeaderMatch struct{ hs headerMatchers }

// CompileHeaderMatch compiles pbs; errors name field[i].
func CompileHeaderMatch(pbs []*routev3.HeaderMatcher, field string) (HeaderMatch, error) {
	hs, err := compileHeaderMatchers(pbs, field)
	return HeaderMatch{hs: hs}, err
}

// Matches reports whether req's headers match. It does not allocate.
func (m *HeaderMatch) Matches(req *l7.Request) bool {
	if len(m.hs) == 0 {
		return true
	}
	c := matchCtx{req: req}
	ok := m.hs.matches(&c)
	c.release()
	return ok
}

// Len returns the number of header matchers.
func (m *HeaderMatch) Len() int { return len(m.hs) }

// StringMatch is a compiled envoy.type.matcher.v3.StringMatcher (exact,
// prefix, suffix, contains or safe_regex, with ignore_case). Read-only;
// safe for concurrent use.
type StringMatch struct{ m stringMatcher }

// CompileStringMatch compiles pb; errors are relative to it.
func CompileStringMatch(pb *matcherv3.StringMatcher) (StringMatch, error) {
	m, err := compileStringMatcher(pb)
	return StringMatch{m: m}, err
}

// Match reports whether v matches. It does not allocate.
func (m *StringMatch) Match(v []byte) bool { return m.m.match(v) }

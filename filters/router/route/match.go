package route

import (
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// PathMatchKind is the kind of a route's path condition.
type PathMatchKind uint8

// Path conditions, after RouteMatch's path_specifier.
const (
	PathPrefix          PathMatchKind = iota // prefix
	PathExact                                // path
	PathRegex                                // safe_regex
	PathSeparatedPrefix                      // path_separated_prefix
	PathConnect                              // connect_matcher
)

// routeMatch is a compiled envoy.config.route.v3.RouteMatch.
type routeMatch struct {
	kind PathMatchKind
	// path is the prefix or exact path.
	path            string
	caseInsensitive bool
	re              *fullRegex
	headers         headerMatchers
	query           []queryMatcher
	grpc            bool
	// A runtime_fraction: matches when it holds for the request's random
	// value.
	hasFraction bool
	fraction    filters.Fraction
}

// compileRouteMatch compiles pb; errors are relative to it.
func compileRouteMatch(pb *routev3.RouteMatch) (routeMatch, error) {
	m := routeMatch{caseInsensitive: pb.GetCaseSensitive() != nil && !pb.GetCaseSensitive().GetValue()}
	var err error
	switch p := pb.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		m.kind, m.path = PathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		m.kind, m.path = PathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		m.kind = PathRegex
		if m.re, err = regexMatcher(p.SafeRegex); err != nil {
			return m, pbcheck.At("safe_regex", err)
		}
	case *routev3.RouteMatch_PathSeparatedPrefix:
		m.kind, m.path = PathSeparatedPrefix, p.PathSeparatedPrefix
	case *routev3.RouteMatch_ConnectMatcher_:
		m.kind = PathConnect
	default:
		return m, errors.New("one of prefix, path, safe_regex, path_separated_prefix or connect_matcher is required")
	}
	if m.headers, err = compileHeaderMatchers(pb.GetHeaders(), "headers"); err != nil {
		return m, err
	}
	for i, q := range pb.GetQueryParameters() {
		qm, err := compileQueryMatcher(q)
		if err != nil {
			return m, pbcheck.At(pbcheck.Idx("query_parameters", i), err)
		}
		m.query = append(m.query, qm)
	}
	m.grpc = pb.GetGrpc() != nil
	if rf := pb.GetRuntimeFraction(); rf != nil {
		if err := m.setFraction(rf); err != nil {
			return m, pbcheck.At("runtime_fraction", err)
		}
	}
	return m, nil
}

// setFraction takes a runtime_fraction's default_value; runtime_key is
// accepted and has no effect, as the waypoint has no runtime layer.
func (m *routeMatch) setFraction(rf *corev3.RuntimeFractionalPercent) error {
	dv := rf.GetDefaultValue()
	if dv == nil {
		return pbcheck.ErrAt("default_value", "required")
	}
	f, err := filters.DecodeFraction(dv)
	if err != nil {
		return pbcheck.At("default_value", err)
	}
	m.hasFraction, m.fraction = true, f
	return nil
}

// matches evaluates every condition. path is :path without query and
// fragment (and without path parameters when the table ignores them),
// query its query string.
func (m *routeMatch) matches(c *matchCtx, path, query []byte, random uint64) bool {
	req := c.req
	if len(req.Path) == 0 && m.kind != PathConnect {
		// Envoy only lets routes that need no path see a request without
		// one (a CONNECT).
		return false
	}
	switch m.kind {
	case PathPrefix:
		if !hasPrefix(path, m.path, m.caseInsensitive) {
			return false
		}
	case PathExact:
		if !equal(path, m.path, m.caseInsensitive) {
			return false
		}
	case PathRegex:
		if !m.re.match(path) {
			return false
		}
	case PathSeparatedPrefix:
		if !hasPrefix(path, m.path, m.caseInsensitive) || (len(path) > len(m.path) && path[len(m.path)] != '/') {
			return false
		}
	case PathConnect:
		if req.Method != l7.MethodConnect {
			return false
		}
	}
	if m.hasFraction && !m.fraction.Holds(random) {
		return false
	}
	if m.grpc {
		ct, _ := req.Header.Get("content-type")
		if !l7.IsGRPC(ct) {
			return false
		}
	}
	if !m.headers.matches(c) {
		return false
	}
	for i := range m.query {
		if !m.query[i].matches(query) {
			return false
		}
	}
	return true
}

// matchedPath returns the part of the request path a prefix rewrite
// replaces: the configured prefix or path for prefix, path and
// path_separated_prefix routes, the whole path (without query) otherwise.
func (m *routeMatch) matchedLen(path []byte) int {
	switch m.kind {
	case PathPrefix, PathExact, PathSeparatedPrefix:
		return len(m.path)
	}
	p, _ := splitPath(path)
	return len(p)
}

package route

import (
	"errors"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// queryMatcher is a compiled envoy.config.route.v3.QueryParameterMatcher.
type queryMatcher struct {
	name       string
	hasPresent bool // present_match given: presence must equal present
	present    bool
	str        *stringMatcher // nil: the parameter must be present
}

func compileQueryMatcher(pb *routev3.QueryParameterMatcher) (queryMatcher, error) {
	qm := queryMatcher{name: pb.GetName()}
	if qm.name == "" {
		return qm, pbcheck.ErrAt("name", "required")
	}
	switch s := pb.GetQueryParameterMatchSpecifier().(type) {
	case nil:
	case *routev3.QueryParameterMatcher_PresentMatch:
		qm.hasPresent, qm.present = true, s.PresentMatch
	case *routev3.QueryParameterMatcher_StringMatch:
		sm, err := compileStringMatcher(s.StringMatch)
		if err != nil {
			return qm, pbcheck.At("string_match", err)
		}
		qm.str = &sm
	default:
		return qm, errors.New("unsupported query parameter match specifier")
	}
	return qm, nil
}

// matches applies the matcher to a raw query string (without '?'), with
// Envoy's rules: only the first occurrence of the name counts, values are
// compared undecoded.
func (m *queryMatcher) matches(query []byte) bool {
	v, ok := firstQueryValue(query, m.name)
	if m.hasPresent {
		return ok == m.present
	}
	if !ok {
		return false
	}
	return m.str == nil || m.str.match(v)
}

// firstQueryValue returns the value of the first "name=value" (or bare
// "name", whose value is empty) parameter of a query string, which ends at
// a '#'.
func firstQueryValue(query []byte, name string) ([]byte, bool) {
	for len(query) > 0 {
		end := len(query)
		for i, c := range query {
			if c == '&' || c == '#' {
				end = i
				break
			}
		}
		param := query[:end]
		key, val := param, []byte(nil)
		for i, c := range param {
			if c == '=' {
				key, val = param[:i], param[i+1:]
				break
			}
		}
		if string(key) == name {
			return val, true
		}
		if end == len(query) || query[end] == '#' {
			break
		}
		query = query[end+1:]
	}
	return nil, false
}

// splitPath returns the path without query and fragment, and the raw query
// (after '?', before '#'; nil if none).
func splitPath(p []byte) (path, query []byte) {
	for i, c := range p {
		switch c {
		case '?':
			q := p[i+1:]
			for j, d := range q {
				if d == '#' {
					return p[:i], q[:j]
				}
			}
			return p[:i], q
		case '#':
			return p[:i], nil
		}
	}
	return p, nil
}

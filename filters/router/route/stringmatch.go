package route

import (
	"errors"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

type stringMatchKind uint8

const (
	smExact stringMatchKind = iota
	smPrefix
	smSuffix
	smContains
	smRegex
)

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatcher struct {
	kind       stringMatchKind
	value      string
	ignoreCase bool
	re         *fullRegex
}

// compileStringMatcher compiles m; errors are relative to m.
func compileStringMatcher(m *matcherv3.StringMatcher) (stringMatcher, error) {
	sm := stringMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.kind, sm.value = smExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.kind, sm.value = smPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.kind, sm.value = smSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.kind, sm.value = smContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		if sm.ignoreCase {
			return sm, errors.New("ignore_case has no effect on safe_regex (use (?i) in the pattern)")
		}
		re, err := regexMatcher(p.SafeRegex)
		if err != nil {
			return sm, pbcheck.At("safe_regex", err)
		}
		sm.kind, sm.re = smRegex, re
	default:
		return sm, errors.New("one of exact, prefix, suffix, contains or safe_regex is required")
	}
	return sm, nil
}

// match reports whether v matches.
func (m *stringMatcher) match(v []byte) bool {
	switch m.kind {
	case smExact:
		return equal(v, m.value, m.ignoreCase)
	case smPrefix:
		return hasPrefix(v, m.value, m.ignoreCase)
	case smSuffix:
		return hasSuffix(v, m.value, m.ignoreCase)
	case smContains:
		return contains(v, m.value, m.ignoreCase)
	default:
		return m.re.match(v)
	}
}

// matchString is match for a string value.
func (m *stringMatcher) matchString(v string) bool {
	switch m.kind {
	case smExact:
		return equal(v, m.value, m.ignoreCase)
	case smPrefix:
		return hasPrefix(v, m.value, m.ignoreCase)
	case smSuffix:
		return hasSuffix(v, m.value, m.ignoreCase)
	case smContains:
		return contains(v, m.value, m.ignoreCase)
	default:
		return m.re.matchString(v)
	}
}

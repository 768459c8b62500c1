package xds

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	ipv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/input_matchers/ip/v3"
)

// predicate compiles a matcher_list predicate. Errors are relative to it.
func (c *matcherCompiler) predicate(pb *xdsmatcherv3.Matcher_MatcherList_Predicate) (*predicate, error) {
	switch t := pb.GetMatchType().(type) {
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_:
		p, err := c.single(t.SinglePredicate)
		return p, at("single_predicate", err)
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher:
		p, err := c.predicates(predOr, t.OrMatcher.GetPredicate())
		return p, at("or_matcher", err)
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_AndMatcher:
		p, err := c.predicates(predAnd, t.AndMatcher.GetPredicate())
		return p, at("and_matcher", err)
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_NotMatcher:
		sub, err := c.predicate(t.NotMatcher)
		if err != nil {
			return nil, at("not_matcher", err)
		}
		return &predicate{op: predNot, subs: []*predicate{sub}}, nil
	}
	return nil, errAt("single_predicate", "required (or or_matcher, and_matcher, not_matcher)")
}

func (c *matcherCompiler) predicates(op predicateOp, pbs []*xdsmatcherv3.Matcher_MatcherList_Predicate) (*predicate, error) {
	if len(pbs) < 2 {
		return nil, errAt("predicate", "at least two predicates are required")
	}
	p := &predicate{op: op}
	for i, sub := range pbs {
		s, err := c.predicate(sub)
		if err != nil {
			return nil, at(idx("predicate", i), err)
		}
		p.subs = append(p.subs, s)
	}
	return p, nil
}

func (c *matcherCompiler) single(sp *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate) (*predicate, error) {
	if sp.GetInput() == nil {
		return nil, at("input", errRequired)
	}
	in, err := c.input(sp.GetInput())
	if err != nil {
		return nil, at("input", err)
	}
	switch t := sp.GetMatcher().(type) {
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch:
		sm, err := compileString(t.ValueMatch)
		if err != nil {
			return nil, at("value_match", err)
		}
		return &predicate{op: predString, input: in, str: sm}, nil
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_CustomMatch:
		cidrs, err := ipInputMatcher(t.CustomMatch, in)
		if err != nil {
			return nil, at("custom_match", err)
		}
		return &predicate{op: predCIDR, input: in, cidrs: cidrs}, nil
	}
	return nil, errAt("value_match", "required (or custom_match)")
}

// ipInputMatcher compiles the custom_match of a single predicate: Envoy's IP
// input matcher (envoy.extensions.matching.input_matchers.ip.v3.Ip), true when
// the IP is in any of the ranges. Errors are relative to the custom_match.
func ipInputMatcher(tec *xdscorev3.TypedExtensionConfig, in inputKind) ([]netip.Prefix, error) {
	a := tec.GetTypedConfig()
	if a == nil {
		return nil, at("typed_config", errRequired)
	}
	var ip ipv3.Ip
	switch a.MessageName() {
	case nameOf(&ip):
	case nameOf(&xdsmatcherv3.IPMatcher{}):
		return nil, fmt.Errorf("an IPMatcher is a matcher_tree custom_match; in a predicate use %s", typeURL(&ip))
	default:
		return nil, fmt.Errorf("unsupported input matcher %q (%s)", tec.GetName(), a.GetTypeUrl())
	}
	if !in.isIP() {
		return nil, fmt.Errorf("%s needs an IP input, got %s", typeURL(&ip), in)
	}
	if err := unpack(a, &ip); err != nil {
		return nil, at("typed_config", err)
	}
	var cidrs []netip.Prefix
	for i, r := range ip.GetCidrRanges() {
		p, err := cidr(r.GetAddressPrefix(), r.GetPrefixLen())
		if err != nil {
			return nil, at("typed_config."+idx("cidr_ranges", i), err)
		}
		cidrs = append(cidrs, p)
	}
	return cidrs, nil
}

// compileString compiles a value_match. As in Envoy, safe_regex must match
// the whole value and ignore_case does not apply to it.
func compileString(sm *xdsmatcherv3.StringMatcher) (*stringMatcher, error) {
	s := &stringMatcher{ignoreCase: sm.GetIgnoreCase()}
	var pattern string
	switch t := sm.GetMatchPattern().(type) {
	case *xdsmatcherv3.StringMatcher_Exact:
		s.op, pattern = stringExact, t.Exact
	case *xdsmatcherv3.StringMatcher_Prefix:
		s.op, pattern = stringPrefix, t.Prefix
	case *xdsmatcherv3.StringMatcher_Suffix:
		s.op, pattern = stringSuffix, t.Suffix
	case *xdsmatcherv3.StringMatcher_Contains:
		s.op, pattern = stringContains, t.Contains
	case *xdsmatcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile(`^(?:` + t.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return nil, at("safe_regex.regex", err)
		}
		s.op, s.re, s.ignoreCase = stringRegex, re, false
		return s, nil
	default:
		return nil, errAt("exact", "required (or prefix, suffix, contains, safe_regex)")
	}
	s.pattern = []byte(pattern)
	if s.ignoreCase {
		s.pattern = bytes.ToLower(s.pattern)
	}
	return s, nil
}

package xds

import (
	"net/netip"
	"regexp"
)

// matcher is a compiled xds.type.matcher.v3.Matcher whose actions select
// filter chains. Read-only after compilation.
type matcher struct {
	kind  matcherKind
	input inputKind // for the tree kinds

	list      []fieldMatcher             // matcherList
	exactPort map[uint16]*onMatch        // treeExactPort
	exactIP   map[netip.Addr]*onMatch    // treeExactIP
	exactText map[string]*onMatch        // treeExactText
	prefixes  []prefixBranch             // treePrefix, longest prefix first
	ranges    prefixTable[[]ipRangeLeaf] // treeIP, leaves in declaration order

	onNoMatch *onMatch // nil: the matcher fails when nothing matched

	readsAppProtocol bool // root only: some input is ApplicationProtocolInput
}

type matcherKind uint8

const (
	matcherList   matcherKind = iota // matcher_list
	treeExactPort                    // matcher_tree, exact_match_map on a port input
	treeExactIP                      // matcher_tree, exact_match_map on an IP input
	treePrefix                       // matcher_tree, prefix_match_map on any input
	treeExactText                    // matcher_tree, exact_match_map on a text input (application protocol)
	treeIP                           // matcher_tree, custom_match IPMatcher
)

// onMatch is either a filter chain (the action) or a nested matcher.
type onMatch struct {
	chain *FilterChain
	next  *matcher
}

// fieldMatcher is one entry of a matcher_list.
type fieldMatcher struct {
	pred *predicate
	on   *onMatch
}

// prefixBranch is one entry of a prefix_match_map.
type prefixBranch struct {
	prefix []byte
	on     *onMatch
}

// ipRangeLeaf is one IPMatcher range matcher, stored under each of its ranges.
type ipRangeLeaf struct {
	rangeMatcher int // index in range_matchers, to store each once per prefix
	exclusive    bool
	on           *onMatch
}

// predicate is a compiled matcher_list predicate.
type predicate struct {
	op    predicateOp
	input inputKind      // predSingle
	str   *stringMatcher // predSingle with value_match
	cidrs []netip.Prefix // predSingle with custom_match Ip
	subs  []*predicate   // predOr, predAnd (two or more), predNot (one)
}

type predicateOp uint8

const (
	predString predicateOp = iota // single_predicate with value_match
	predCIDR                      // single_predicate with custom_match Ip
	predOr
	predAnd
	predNot
)

// stringMatcher is a compiled xds.type.matcher.v3.StringMatcher.
type stringMatcher struct {
	op         stringOp
	pattern    []byte // lower-cased when ignoreCase
	ignoreCase bool
	re         *regexp.Regexp // stringRegex, anchored: the whole value must match
}

type stringOp uint8

const (
	stringExact stringOp = iota
	stringPrefix
	stringSuffix
	stringContains
	stringRegex
)

// inputKind is a supported matching input
// (envoy.extensions.matching.common_inputs.network.v3).
type inputKind uint8

const (
	inputDestinationIP inputKind = iota + 1
	inputDestinationPort
	inputSourceIP
	inputSourcePort
	// inputAppProtocol is ApplicationProtocolInput: the protocols
	// http_inspector detected, quoted and comma-joined ("'h2c'", "'http/1.1'").
	inputAppProtocol
)

func (k inputKind) isIP() bool { return k == inputDestinationIP || k == inputSourceIP }

func (k inputKind) String() string {
	switch k {
	case inputDestinationIP:
		return "DestinationIPInput"
	case inputDestinationPort:
		return "DestinationPortInput"
	case inputSourceIP:
		return "SourceIPInput"
	case inputSourcePort:
		return "SourcePortInput"
	case inputAppProtocol:
		return "ApplicationProtocolInput"
	}
	return "unknown input"
}

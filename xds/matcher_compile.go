package xds

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// compileMatcher compiles a filter_chain_matcher whose actions
// (google.protobuf.StringValue) name chains in chains. It checks the matcher
// against the allowlist and its PGV rules itself, so it can be used on a
// matcher taken out of a larger resource. Errors are relative to the matcher.
func compileMatcher(pb *xdsmatcherv3.Matcher, chains map[string]*FilterChain) (*matcher, error) {
	if err := checkSupported(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if err := validate(pb); err != nil {
		return nil, err
	}
	c := matcherCompiler{chains: chains}
	m, err := c.matcher(pb)
	if err != nil {
		return nil, err
	}
	m.readsAppProtocol = c.appProtocol
	return m, nil
}

// matcherCompiler holds what the compilation of one matcher tree refers to.
type matcherCompiler struct {
	chains      map[string]*FilterChain
	appProtocol bool // some input is ApplicationProtocolInput
}

func (c *matcherCompiler) matcher(pb *xdsmatcherv3.Matcher) (*matcher, error) {
	m := &matcher{}
	switch t := pb.GetMatcherType().(type) {
	case *xdsmatcherv3.Matcher_MatcherList_:
		for i, fm := range t.MatcherList.GetMatchers() {
			path := idx("matcher_list.matchers", i)
			if fm.GetPredicate() == nil {
				return nil, at(path+".predicate", errRequired)
			}
			p, err := c.predicate(fm.GetPredicate())
			if err != nil {
				return nil, at(path+".predicate", err)
			}
			on, err := c.onMatch(fm.GetOnMatch())
			if err != nil {
				return nil, at(path+".on_match", err)
			}
			m.list = append(m.list, fieldMatcher{pred: p, on: on})
		}
		if len(m.list) == 0 {
			return nil, errAt("matcher_list.matchers", "at least one matcher is required")
		}
	case *xdsmatcherv3.Matcher_MatcherTree_:
		if err := c.tree(t.MatcherTree, m); err != nil {
			return nil, at("matcher_tree", err)
		}
	default:
		return nil, errAt("matcher_list", "required (or matcher_tree)")
	}
	if pb.GetOnNoMatch() != nil {
		on, err := c.onMatch(pb.GetOnNoMatch())
		if err != nil {
			return nil, at("on_no_match", err)
		}
		m.onNoMatch = on
	}
	return m, nil
}

func (c *matcherCompiler) onMatch(pb *xdsmatcherv3.Matcher_OnMatch) (*onMatch, error) {
	switch t := pb.GetOnMatch().(type) {
	case *xdsmatcherv3.Matcher_OnMatch_Matcher:
		next, err := c.matcher(t.Matcher)
		if err != nil {
			return nil, at("matcher", err)
		}
		return &onMatch{next: next}, nil
	case *xdsmatcherv3.Matcher_OnMatch_Action:
		chain, err := c.action(t.Action)
		if err != nil {
			return nil, at("action", err)
		}
		return &onMatch{chain: chain}, nil
	}
	return nil, errAt("action", "required (or matcher)")
}

// action resolves a google.protobuf.StringValue action to the filter chain it
// names, as Envoy's filter chain name action does.
func (c *matcherCompiler) action(tec *xdscorev3.TypedExtensionConfig) (*FilterChain, error) {
	a := tec.GetTypedConfig()
	if a == nil {
		return nil, at("typed_config", errRequired)
	}
	var name wrapperspb.StringValue
	if a.MessageName() != nameOf(&name) {
		return nil, fmt.Errorf("unsupported action %q (%s): want a google.protobuf.StringValue naming a filter chain",
			tec.GetName(), a.GetTypeUrl())
	}
	if err := proto.Unmarshal(a.GetValue(), &name); err != nil {
		return nil, at("typed_config", err)
	}
	chain := c.chains[name.GetValue()]
	if chain == nil {
		return nil, errAt("typed_config.value", "no filter chain named %q", name.GetValue())
	}
	return chain, nil
}

// input decodes a matching input and notes whether it is the application
// protocol. Errors are relative to the input.
func (c *matcherCompiler) input(tec *xdscorev3.TypedExtensionConfig) (inputKind, error) {
	k, err := input(tec)
	if k == inputAppProtocol {
		c.appProtocol = true
	}
	return k, err
}

// input decodes a matching input. Errors are relative to the input.
func input(tec *xdscorev3.TypedExtensionConfig) (inputKind, error) {
	a := tec.GetTypedConfig()
	if a == nil {
		return 0, at("typed_config", errRequired)
	}
	var (
		k inputKind
		m proto.Message
	)
	switch a.MessageName() {
	case nameOf(&networkinputsv3.DestinationIPInput{}):
		k, m = inputDestinationIP, &networkinputsv3.DestinationIPInput{}
	case nameOf(&networkinputsv3.DestinationPortInput{}):
		k, m = inputDestinationPort, &networkinputsv3.DestinationPortInput{}
	case nameOf(&networkinputsv3.SourceIPInput{}):
		k, m = inputSourceIP, &networkinputsv3.SourceIPInput{}
	case nameOf(&networkinputsv3.SourcePortInput{}):
		k, m = inputSourcePort, &networkinputsv3.SourcePortInput{}
	case nameOf(&networkinputsv3.ApplicationProtocolInput{}):
		k, m = inputAppProtocol, &networkinputsv3.ApplicationProtocolInput{}
	default:
		return 0, fmt.Errorf("unsupported matching input %q (%s)", tec.GetName(), a.GetTypeUrl())
	}
	return k, at("typed_config", unpack(a, m))
}

// tree compiles a matcher_tree into m. Errors are relative to the tree.
func (c *matcherCompiler) tree(t *xdsmatcherv3.Matcher_MatcherTree, m *matcher) error {
	if t.GetInput() == nil {
		return at("input", errRequired)
	}
	in, err := c.input(t.GetInput())
	if err != nil {
		return at("input", err)
	}
	m.input = in
	switch tt := t.GetTreeType().(type) {
	case *xdsmatcherv3.Matcher_MatcherTree_ExactMatchMap:
		return at("exact_match_map", c.exactMap(tt.ExactMatchMap.GetMap(), m))
	case *xdsmatcherv3.Matcher_MatcherTree_PrefixMatchMap:
		return at("prefix_match_map", c.prefixMap(tt.PrefixMatchMap.GetMap(), m))
	case *xdsmatcherv3.Matcher_MatcherTree_CustomMatch:
		return at("custom_match", c.ipMatcher(tt.CustomMatch, m))
	}
	return errAt("exact_match_map", "required (or prefix_match_map, or custom_match)")
}

// sortedKeys returns the keys of a match map in order, so errors are deterministic.
func sortedKeys(mp map[string]*xdsmatcherv3.Matcher_OnMatch) []string {
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// exactMap compiles an exact_match_map. Keys are parsed once here, so
// matching compares numbers and addresses instead of formatting the input;
// a key that is not the exact text the input produces (Envoy compares
// strings) could never match and is an error.
func (c *matcherCompiler) exactMap(mp map[string]*xdsmatcherv3.Matcher_OnMatch, m *matcher) error {
	switch {
	case m.input == inputAppProtocol:
		m.kind, m.exactText = treeExactText, make(map[string]*onMatch, len(mp))
	case m.input.isIP():
		m.kind, m.exactIP = treeExactIP, make(map[netip.Addr]*onMatch, len(mp))
	default:
		m.kind, m.exactPort = treeExactPort, make(map[uint16]*onMatch, len(mp))
	}
	for _, k := range sortedKeys(mp) {
		path := key("map", k)
		on, err := c.onMatch(mp[k])
		if err != nil {
			return at(path, err)
		}
		if m.input == inputAppProtocol {
			m.exactText[k] = on
			continue
		}
		if m.input.isIP() {
			ip, err := netip.ParseAddr(k)
			if err != nil || ip.Zone() != "" || ip.String() != k {
				return errAt(path, "%q is not an IP address in canonical form, so %s can never equal it", k, m.input)
			}
			m.exactIP[ip] = on
			continue
		}
		port, err := strconv.ParseUint(k, 10, 16)
		if err != nil || strconv.FormatUint(port, 10) != k {
			return errAt(path, "%q is not a port number in canonical form, so %s can never equal it", k, m.input)
		}
		m.exactPort[uint16(port)] = on
	}
	return nil
}

// prefixMap compiles a prefix_match_map on the input's text form.
func (c *matcherCompiler) prefixMap(mp map[string]*xdsmatcherv3.Matcher_OnMatch, m *matcher) error {
	m.kind = treePrefix
	for _, k := range sortedKeys(mp) {
		on, err := c.onMatch(mp[k])
		if err != nil {
			return at(key("map", k), err)
		}
		m.prefixes = append(m.prefixes, prefixBranch{prefix: []byte(k), on: on})
	}
	slices.SortStableFunc(m.prefixes, func(a, b prefixBranch) int {
		return cmp.Compare(len(b.prefix), len(a.prefix))
	})
	return nil
}

// ipMatcher compiles a custom_match holding an xds.type.matcher.v3.IPMatcher
// (Envoy's trie matcher). Errors are relative to the custom_match.
func (c *matcherCompiler) ipMatcher(tec *xdscorev3.TypedExtensionConfig, m *matcher) error {
	a := tec.GetTypedConfig()
	if a == nil {
		return at("typed_config", errRequired)
	}
	var ipm xdsmatcherv3.IPMatcher
	if a.MessageName() != nameOf(&ipm) {
		return fmt.Errorf("unsupported custom matcher %q (%s)", tec.GetName(), a.GetTypeUrl())
	}
	if !m.input.isIP() {
		return fmt.Errorf("IPMatcher needs an IP input, got %s", m.input)
	}
	if err := unpack(a, &ipm); err != nil {
		return at("typed_config", err)
	}
	m.kind = treeIP
	for i, rm := range ipm.GetRangeMatchers() {
		path := "typed_config." + idx("range_matchers", i)
		if rm.GetOnMatch() == nil {
			return at(path+".on_match", errRequired)
		}
		on, err := c.onMatch(rm.GetOnMatch())
		if err != nil {
			return at(path+".on_match", err)
		}
		for j, r := range rm.GetRanges() {
			p, err := cidr(r.GetAddressPrefix(), r.GetPrefixLen())
			if err != nil {
				return at(path+"."+idx("ranges", j), err)
			}
			leaves, _ := m.ranges.get(p)
			if n := len(leaves); n > 0 && leaves[n-1].rangeMatcher == i {
				continue // the same range listed twice in one range matcher
			}
			m.ranges.put(p, append(leaves, ipRangeLeaf{rangeMatcher: i, exclusive: rm.GetExclusive(), on: on}))
		}
	}
	return nil
}

package xds

import (
	"net/netip"
	"testing"
)

// classicYAML exercises filter_chain_match: exact port vs no port, longest
// prefix, and the default chain.
var classicYAML = doc("", []string{
	listenerOn("classic", 8080, "default_filter_chain: "+tcpChain("default", "backend", ""),
		tcpChain("p80-10/8", "backend", chainMatch(80, "10.0.0.0/8")),
		tcpChain("p80-10.1/16", "backend", chainMatch(80, "10.1.0.0/16")),
		tcpChain("p80-any", "backend", chainMatch(80)),
		tcpChain("p443-10.9/16", "backend", chainMatch(443, "10.9.0.0/16", "2001:db8::/32")),
		tcpChain("any-192.168/16", "backend", chainMatch(0, "192.168.0.0/16")),
		tcpChain("any-0/0", "backend", chainMatch(0, "0.0.0.0/0")),
		tcpChain("any-any", "backend", chainMatch(0)),
	),
	listenerOn("nodefault", 8081, "", tcpChain("p80", "backend", chainMatch(80, "10.0.0.0/8"))),
}, []string{backendCluster})

// matcherYAML exercises filter_chain_matcher: an IPMatcher with several
// ranges (one exclusive), nested port maps and on_no_match; a matcher_list
// with and/or/not predicates, regex, an Ip input matcher and a prefix map
// whose longest prefix's subtree fails.
var matcherYAML = doc("", []string{
	`{name: tree, internal_listener: {},
  filter_chains: [` + tcpChain("a", "backend", "") + `, ` + tcpChain("b", "backend", "") + `, ` + tcpChain("c", "backend", "") + `,
    ` + tcpChain("d", "backend", "") + `, ` + tcpChain("catch-all", "backend", "") + `, ` + tcpChain("v6", "backend", "") + `, ` + tcpChain("fallback", "backend", "") + `],
  filter_chain_matcher: {
    on_no_match: ` + action("fallback") + `,
    matcher_tree: {input: ` + destIPInput + `, custom_match: {name: ip, typed_config: {` + ipMatcherTyp + `, range_matchers: [
      {ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}],
       on_match: {matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"80": ` + action("a") + `}}}}}},
      {ranges: [{address_prefix: 10.1.0.0, prefix_len: 16}, {address_prefix: 10.2.0.0, prefix_len: 16}],
       on_match: {matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"80": ` + action("b") + `, "443": ` + action("c") + `}}}}}},
      {ranges: [{address_prefix: 10.1.2.0, prefix_len: 24}],
       on_match: {matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"8443": ` + action("d") + `}}}}}},
      {exclusive: true, ranges: [{address_prefix: 0.0.0.0, prefix_len: 0}], on_match: ` + action("catch-all") + `},
      {ranges: [{address_prefix: "2001:db8::", prefix_len: 32}], on_match: ` + action("v6") + `}]}}}}}`,
	`{name: list, internal_listener: {},
  filter_chains: [` + tcpChain("and", "backend", "") + `, ` + tcpChain("or", "backend", "") + `, ` + tcpChain("local", "backend", "") + `, ` + tcpChain("vip", "backend", "") + `],
  filter_chain_matcher: {matcher_list: {matchers: [
    {predicate: {and_matcher: {predicate: [
       {single_predicate: {input: ` + destPortIn + `, value_match: {exact: "9080"}}},
       {single_predicate: {input: ` + srcIPInput + `, custom_match: {name: cidr, typed_config: {"@type": type.googleapis.com/envoy.extensions.matching.input_matchers.ip.v3.Ip, stat_prefix: src, cidr_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}}}}]}},
     on_match: ` + action("and") + `},
    {predicate: {or_matcher: {predicate: [
       {single_predicate: {input: ` + destIPInput + `, value_match: {prefix: "192.168."}}},
       {not_matcher: {single_predicate: {input: ` + destPortIn + `, value_match: {safe_regex: {google_re2: {}, regex: "9[0-9]{3}"}}}}}]}},
     on_match: ` + action("or") + `},
    {predicate: {single_predicate: {input: ` + destIPInput + `, value_match: {suffix: ".1"}}},
     on_match: {matcher: {matcher_tree: {input: ` + destIPInput + `, prefix_match_map: {map: {
       "127.": ` + action("local") + `,
       "127.10.": {matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"9999": ` + action("vip") + `}}}}}}}}}}}]}}}`,
	`{name: withdefault, internal_listener: {},
  default_filter_chain: ` + tcpChain("default", "backend", "") + `,
  filter_chains: [` + tcpChain("x", "backend", "") + `],
  filter_chain_matcher: {matcher_tree: {input: ` + destPortIn + `, exact_match_map: {map: {"1": ` + action("x") + `}}}}}`,
}, []string{backendCluster})

func TestListenerMatch(t *testing.T) {
	classic := mustParse(t, classicYAML).Snapshot
	matchers := mustParse(t, matcherYAML).Snapshot

	tests := []struct {
		name     string
		snap     *Snapshot
		listener string
		dst, src string // "" for unknown
		want     string // chain name, "<nil>" for none
	}{
		{"longest prefix on exact port", classic, "classic", "10.1.2.3:80", "", "p80-10.1/16"},
		{"shorter prefix on exact port", classic, "classic", "10.2.0.1:80", "", "p80-10/8"},
		{"exact port, no prefix", classic, "classic", "172.16.0.1:80", "", "p80-any"},
		{"exact port group does not fall back to port-less prefixes", classic, "classic", "192.168.1.1:80", "", "p80-any"},
		{"port-less prefix", classic, "classic", "192.168.1.1:8080", "", "any-192.168/16"},
		{"explicit 0.0.0.0/0 beats no prefix", classic, "classic", "172.16.0.1:8080", "", "any-0/0"},
		{"no prefix catches IPv6", classic, "classic", "[2001:db8::1]:8080", "", "any-any"},
		{"second range of a chain", classic, "classic", "[2001:db8::1]:443", "", "p443-10.9/16"},
		{"port group without IP match falls to default chain", classic, "classic", "10.8.0.1:443", "", "default"},
		{"IPv4-mapped destination", classic, "classic", "[::ffff:10.1.2.3]:80", "", "p80-10.1/16"},
		{"unknown destination matches catch-alls", classic, "classic", "", "", "any-0/0"},
		{"no match, no default", classic, "nodefault", "11.0.0.1:80", "", "<nil>"},
		{"no match on port, no default", classic, "nodefault", "10.0.0.1:81", "", "<nil>"},
		{"classic match", classic, "nodefault", "10.0.0.1:80", "", "p80"},

		{"IP range then port", matchers, "tree", "10.3.0.1:80", "", "a"},
		{"second range of a range matcher", matchers, "tree", "10.2.9.9:443", "", "c"},
		{"most specific range", matchers, "tree", "10.1.2.3:8443", "", "d"},
		{"most specific range fails, next non-exclusive one matches", matchers, "tree", "10.1.2.3:443", "", "c"},
		{"falls back two levels", matchers, "tree", "10.1.2.3:80", "", "b"},
		{"exclusive range skipped after a more specific one failed", matchers, "tree", "10.3.0.1:443", "", "fallback"},
		{"exclusive range when it is the most specific", matchers, "tree", "192.168.0.1:1", "", "catch-all"},
		{"IPv6 range", matchers, "tree", "[2001:db8::5]:1", "", "v6"},
		{"no IPv6 range: on_no_match", matchers, "tree", "[2001:db9::5]:1", "", "fallback"},
		{"unknown destination: on_no_match", matchers, "tree", "", "", "fallback"},

		{"and: both", matchers, "list", "127.0.0.2:9080", "10.1.1.1:5000", "and"},
		{"and: source outside range", matchers, "list", "127.0.0.2:9080", "11.1.1.1:5000", "<nil>"},
		{"and: source unknown", matchers, "list", "127.0.0.2:9080", "", "<nil>"},
		{"or: prefix", matchers, "list", "192.168.3.4:9080", "", "or"},
		{"or: not regex", matchers, "list", "127.0.0.2:80", "", "or"},
		{"nested prefix map, longest", matchers, "list", "127.10.0.1:9999", "", "vip"},
		{"nested prefix map, longest subtree fails, shorter prefix", matchers, "list", "127.10.0.1:9080", "", "local"},
		{"list: nothing", matchers, "list", "10.0.0.2:9080", "", "<nil>"},

		{"matcher fails: default chain", matchers, "withdefault", "10.0.0.1:2", "", "default"},
		{"matcher matches", matchers, "withdefault", "10.0.0.1:1", "", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.snap.Listener(tc.listener)
			if l == nil {
				t.Fatalf("no listener %q", tc.listener)
			}
			in := MatchInput{}
			if tc.dst != "" {
				in.Destination = netip.MustParseAddrPort(tc.dst)
			}
			if tc.src != "" {
				in.Source = netip.MustParseAddrPort(tc.src)
			}
			if got := chainName(l.Match(in)); got != tc.want {
				t.Errorf("Match(dst %s, src %s) = %s, want %s", tc.dst, tc.src, got, tc.want)
			}
		})
	}
}

func chainName(c *FilterChain) string {
	if c == nil {
		return "<nil>"
	}
	return c.Name
}

// matchCases are connections whose matching walks the deeper paths: nested
// matchers, fallbacks, formatted inputs (prefix map, regex).
var matchCases = []struct{ listener, dst, src string }{
	{"classic", "10.1.2.3:80", "10.0.0.1:1"},
	{"classic", "10.8.0.1:443", "10.0.0.1:1"},
	{"classic", "[2001:db8::1]:8080", "10.0.0.1:1"},
	{"tree", "10.1.2.3:80", "10.0.0.1:1"},
	{"tree", "[2001:db8::5]:1", "10.0.0.1:1"},
	{"list", "127.10.0.1:9080", "11.1.1.1:5000"},
	{"list", "[2001:db8::1]:80", "10.1.1.1:5000"},
}

func TestListenerMatchDoesNotAllocate(t *testing.T) {
	classic := mustParse(t, classicYAML).Snapshot
	matchers := mustParse(t, matcherYAML).Snapshot
	for _, tc := range matchCases {
		l := classic.Listener(tc.listener)
		if l == nil {
			l = matchers.Listener(tc.listener)
		}
		in := MatchInput{Destination: netip.MustParseAddrPort(tc.dst), Source: netip.MustParseAddrPort(tc.src)}
		if allocs := testing.AllocsPerRun(100, func() { l.Match(in) }); allocs != 0 {
			t.Errorf("%s: Match(%s) allocates %v times", tc.listener, tc.dst, allocs)
		}
	}
}

func BenchmarkListenerMatch(b *testing.B) {
	classic := mustParse(b, classicYAML).Snapshot
	matchers := mustParse(b, matcherYAML).Snapshot
	for _, bc := range []struct {
		name     string
		l        *Listener
		dst, src string
	}{
		{"classic", classic.Listener("classic"), "10.1.2.3:80", "10.0.0.1:1"},
		{"classic-default", classic.Listener("classic"), "10.8.0.1:443", "10.0.0.1:1"},
		{"matcher-tree", matchers.Listener("tree"), "10.1.2.3:80", "10.0.0.1:1"},
		{"matcher-list", matchers.Listener("list"), "127.10.0.1:9080", "11.1.1.1:5000"},
	} {
		in := MatchInput{Destination: netip.MustParseAddrPort(bc.dst), Source: netip.MustParseAddrPort(bc.src)}
		if bc.l.Match(in) == nil {
			b.Fatalf("%s: no match", bc.name)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.l.Match(in)
			}
		})
	}
}

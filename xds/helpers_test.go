package xds

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"
)

// Small YAML building blocks for bootstrap test cases, in flow style so that
// each resource fits on a line or two.
const (
	tcpProxyType = `"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`
	destIPInput  = `{name: ip, typed_config: {"@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput}}`
	destPortIn   = `{name: port, typed_config: {"@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput}}`
	srcIPInput   = `{name: src, typed_config: {"@type": type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.SourceIPInput}}`
	ipMatcherTyp = `"@type": type.googleapis.com/xds.type.matcher.v3.IPMatcher`

	backendCluster = `{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 8080}}}}]}]}}`
)

// tcpChain is a filter chain named name relaying to cluster, with extra
// fields (e.g. a filter_chain_match) spliced in.
func tcpChain(name, cluster, extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return fmt.Sprintf(`{name: %q, filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {%s, stat_prefix: s, cluster: %q}}]%s}`,
		name, tcpProxyType, cluster, extra)
}

// chainMatch is a filter_chain_match field with an optional port (0: none)
// and prefixes ("10.0.0.0/8").
func chainMatch(port int, prefixes ...string) string {
	var parts []string
	if port != 0 {
		parts = append(parts, fmt.Sprintf("destination_port: %d", port))
	}
	if len(prefixes) > 0 {
		var rs []string
		for _, p := range prefixes {
			ip, bits, _ := strings.Cut(p, "/")
			rs = append(rs, fmt.Sprintf("{address_prefix: %q, prefix_len: %s}", ip, bits))
		}
		parts = append(parts, "prefix_ranges: ["+strings.Join(rs, ", ")+"]")
	}
	return "filter_chain_match: {" + strings.Join(parts, ", ") + "}"
}

// action is an on_match selecting the chain named chain.
func action(chain string) string {
	return fmt.Sprintf(`{action: {name: %q, typed_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: %q}}}`, chain, chain)
}

// doc is a bootstrap whose static_resources hold the given listeners and
// clusters (YAML flow mappings), with top (other top-level YAML) first.
func doc(top string, listeners, clusters []string) string {
	var b strings.Builder
	b.WriteString(top)
	b.WriteString("\nstatic_resources:\n")
	for _, sec := range []struct {
		name  string
		items []string
	}{{"listeners", listeners}, {"clusters", clusters}} {
		if len(sec.items) == 0 {
			continue
		}
		b.WriteString("  " + sec.name + ":\n")
		for _, it := range sec.items {
			b.WriteString("  - " + strings.ReplaceAll(it, "\n", "\n    ") + "\n")
		}
	}
	return b.String()
}

// listenerOn is a TCP listener on 127.0.0.1:port with the given chains and
// extra fields.
func listenerOn(name string, port int, extra string, chains ...string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return fmt.Sprintf(`{name: %q, address: {socket_address: {address: 127.0.0.1, port_value: %d}}, filter_chains: [%s]%s}`,
		name, port, strings.Join(chains, ", "), extra)
}

func mustParse(t testing.TB, yaml string) *Bootstrap {
	t.Helper()
	b, err := ParseBootstrap([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("ParseBootstrap: %v", err)
	}
	return b
}

// cmpOpts compares decoded values: raw protos and compiled selectors are left
// out, metadata is compared as protos.
var cmpOpts = cmp.Options{
	cmpopts.IgnoreUnexported(Listener{}, Cluster{}, Endpoint{}), // Cluster's and Endpoint's: what BuildWire keeps of their metadata
	cmpopts.IgnoreFields(Listener{}, "Raw"),
	cmpopts.IgnoreFields(Cluster{}, "Raw"),
	cmpopts.IgnoreFields(TCPProxy{}, "Dubbo"), // made up from the rest: dubbo_test.go checks it
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	protocmp.Transform(),
	cmpopts.EquateEmpty(),
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

package xds

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// dnsCluster is a STRICT_DNS cluster's YAML with extra fields and its one
// endpoint's address.
func dnsCluster(typ, extra, addr string) string {
	return `{name: backend, type: ` + typ + `, ` + extra + ` load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "` + addr + `", port_value: 80}}}}]}]}}`
}

const caresConfig = `typed_dns_resolver_config: {name: envoy.network.dns_resolver.cares, typed_config: {"@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig, udp_max_queries: 100}},`

func TestDecodeDNSCluster(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		want  DNSConfig
		addr  netip.AddrPort
		host  string
		count int
	}{
		{
			name: "defaults",
			yaml: dnsCluster("STRICT_DNS", "", "Httpbin.Example.com."),
			want: DNSConfig{RefreshRate: 5 * time.Second},
			addr: netip.AddrPortFrom(netip.Addr{}, 80), host: "httpbin.example.com",
		},
		{
			name: "istiod's",
			yaml: dnsCluster("STRICT_DNS", caresConfig+` dns_lookup_family: V4_ONLY, dns_refresh_rate: 60s, dns_jitter: 0s, respect_dns_ttl: true,`, "httpbin.example.com"),
			want: DNSConfig{Family: DNSV4Only, RefreshRate: time.Minute, RespectTTL: true},
			addr: netip.AddrPortFrom(netip.Addr{}, 80), host: "httpbin.example.com",
		},
		{
			name: "logical, failure rate, an IP",
			yaml: dnsCluster("LOGICAL_DNS", `dns_lookup_family: ALL, dns_jitter: 1s, dns_failure_refresh_rate: {base_interval: 2s},`, "127.0.0.9"),
			want: DNSConfig{Logical: true, Family: DNSAll, RefreshRate: 5 * time.Second, Jitter: time.Second, FailureBase: 2 * time.Second, FailureMax: 20 * time.Second},
			addr: netip.MustParseAddrPort("127.0.0.9:80"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := ParseBootstrap([]byte(doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{tc.yaml})), "test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			c := bs.Snapshot.Cluster("backend")
			if c.DNS == nil {
				t.Fatal("no DNS config")
			}
			if diff := cmp.Diff(tc.want, *c.DNS); diff != "" {
				t.Errorf("DNS (-want +got):\n%s", diff)
			}
			if len(c.Endpoints) != 1 || c.Endpoints[0].Address != tc.addr || c.Endpoints[0].Hostname != tc.host {
				t.Errorf("endpoints %+v, want %v %q", c.Endpoints, tc.addr, tc.host)
			}
		})
	}
}

func TestDecodeDNSClusterErrors(t *testing.T) {
	tests := []struct{ name, cluster, want string }{
		{"refresh rate", dnsCluster("STRICT_DNS", `dns_refresh_rate: 0.001s,`, "a.example"), `dns_refresh_rate: must be > 1ms`},
		{"failure rate", dnsCluster("STRICT_DNS", `dns_failure_refresh_rate: {base_interval: 2s, max_interval: 1s},`, "a.example"),
			`dns_failure_refresh_rate.max_interval: 1s is smaller than base_interval 2s`},
		{"custom resolvers", dnsCluster("STRICT_DNS", `typed_dns_resolver_config: {name: envoy.network.dns_resolver.cares, typed_config: {"@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig, resolvers: [{socket_address: {address: 1.1.1.1, port_value: 53}}]}},`, "a.example"),
			`typed_dns_resolver_config.typed_config.resolvers: custom DNS resolvers are not supported yet...`},
		{"c-ares options", dnsCluster("STRICT_DNS", `typed_dns_resolver_config: {name: envoy.network.dns_resolver.cares, typed_config: {"@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig, query_tries: 2}},`, "a.example"),
			`typed_dns_resolver_config.typed_config.query_tries: not supported yet`},
		{"another resolver", dnsCluster("STRICT_DNS", `typed_dns_resolver_config: {name: envoy.network.dns_resolver.other, typed_config: {"@type": type.googleapis.com/google.protobuf.Empty}},`, "a.example"),
			`typed_dns_resolver_config.typed_config: resolver "envoy.network.dns_resolver.other" (type.googleapis.com/google.protobuf.Empty) is not supported; only envoy.network.dns_resolver.cares with no custom resolvers is`},
		{"logical with two endpoints", `{name: backend, type: LOGICAL_DNS, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: a.example, port_value: 80}}}}, {endpoint: {address: {socket_address: {address: b.example, port_value: 80}}}}]}]}}`,
			`load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint, got 2`},
		{"bad name", dnsCluster("STRICT_DNS", "", "a b.example"), `load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "a b.example" is neither an IP address nor a host name`},
		{"no endpoints", `{name: backend, type: STRICT_DNS}`, `load_assignment: required`},
		{"DNS field on a STATIC cluster", `{name: backend, type: STATIC, respect_dns_ttl: true}`, `respect_dns_ttl: only applies to a STRICT_DNS or LOGICAL_DNS cluster, not STATIC`},
		{"name on a STATIC cluster", dnsCluster("STATIC", "", "a.example"), `...is not an IP address (hostnames are not supported yet)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBootstrap([]byte(doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{tc.cluster})), "test.yaml")
			want := `test.yaml: cluster "backend": ` + tc.want
			if err == nil || !errorMatches(err.Error(), want) {
				t.Errorf("error:\n got: %v\nwant: %s", err, want)
			}
		})
	}
}

func TestDNSEndpointAt(t *testing.T) {
	bs, err := ParseBootstrap([]byte(doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{dnsCluster("STRICT_DNS", "", "a.example")})), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := bs.Snapshot.Cluster("backend")
	if e := c.EndpointAt(netip.MustParseAddrPort("127.0.0.7:80")); e == nil || e.Hostname != "a.example" {
		t.Errorf("a resolved address: %+v, want the name's endpoint", e)
	}
	if e := c.EndpointAt(netip.MustParseAddrPort("127.0.0.7:81")); e != nil {
		t.Errorf("another port: %+v", e)
	}
}

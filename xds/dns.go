package xds

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	caresv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// DNSConfig is how a STRICT_DNS or LOGICAL_DNS cluster resolves the host
// names of its endpoints (package proxy/upstream/lb runs it). Comparable:
// a cluster whose DNSConfig and endpoints are unchanged keeps resolving
// across snapshots.
type DNSConfig struct {
	// Logical is set for LOGICAL_DNS: the cluster has one endpoint, and its
	// host is the name's first address of the moment. Otherwise (STRICT_DNS)
	// every address of every name is an endpoint.
	Logical bool
	// Family is dns_lookup_family; Envoy's default is AUTO.
	Family DNSLookupFamily
	// RefreshRate is dns_refresh_rate (5 s by default): how often the names
	// are resolved again.
	RefreshRate time.Duration
	// Jitter is dns_jitter: a random 0..Jitter is added to each refresh.
	Jitter time.Duration
	// RespectTTL (respect_dns_ttl) refreshes after the answer's smallest
	// TTL instead of RefreshRate (a TTL of 0 falls back to RefreshRate).
	RespectTTL bool
	// FailureBase and FailureMax are dns_failure_refresh_rate: after a
	// failed resolution the next comes after a jittered exponential back-off
	// from FailureBase up to FailureMax. Both 0 (absent): RefreshRate.
	FailureBase, FailureMax time.Duration
}

// DNSLookupFamily is which addresses of a name a DNS cluster uses.
type DNSLookupFamily int

// The families, as Envoy's dns_lookup_family.
const (
	// DNSAuto: IPv6 addresses, or IPv4 ones when the name has none.
	DNSAuto DNSLookupFamily = iota
	// DNSV4Only: IPv4 addresses only.
	DNSV4Only
	// DNSV6Only: IPv6 addresses only.
	DNSV6Only
	// DNSV4Preferred: IPv4 addresses, or IPv6 ones when the name has none.
	DNSV4Preferred
	// DNSAll: IPv4 and IPv6 addresses (IPv4 first).
	DNSAll
)

// String returns Envoy's name for the family.
func (f DNSLookupFamily) String() string {
	return clusterv3.Cluster_DnsLookupFamily(f).String()
}

// Envoy's defaults for a DNS cluster.
const (
	DefaultDNSRefreshRate = 5 * time.Second
	// minDNSRefreshRate is Envoy's lower bound of dns_refresh_rate and of
	// the failure rates (> 1 ms).
	minDNSRefreshRate = time.Millisecond
)

// caresAllowlist checks the c-ares resolver config of
// typed_dns_resolver_config: what it would change about resolving (custom
// resolvers, search options, timeouts) is not implemented, and refused.
// udp_max_queries only bounds the queries c-ares sends over one UDP
// socket; each of the waypoint's queries has a socket of its own, so it is
// met.
var caresAllowlist = pbcheck.Allowlist{
	"envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig": fields("udp_max_queries"),
}

// caresName is the c-ares resolver's extension name.
const caresName = "envoy.network.dns_resolver.cares"

// decodeDNS decodes the DNS fields of a STRICT_DNS or LOGICAL_DNS cluster
// into c.DNS and checks its endpoints. Errors are relative to the cluster.
func decodeDNS(pb *clusterv3.Cluster, c *Cluster) error {
	d := &DNSConfig{Logical: pb.GetType() == clusterv3.Cluster_LOGICAL_DNS, RefreshRate: DefaultDNSRefreshRate}
	f := pb.GetDnsLookupFamily()
	if _, ok := clusterv3.Cluster_DnsLookupFamily_name[int32(f)]; !ok {
		return errAt("dns_lookup_family", "%d is not a lookup family", f)
	}
	d.Family = DNSLookupFamily(f)
	var err error
	//nolint:staticcheck // the deprecated fields are what istiod sends
	if d.RefreshRate, err = duration(pb.GetDnsRefreshRate(), DefaultDNSRefreshRate); err != nil {
		return at("dns_refresh_rate", err)
	}
	if d.RefreshRate <= minDNSRefreshRate {
		return errAt("dns_refresh_rate", "must be > 1ms")
	}
	if d.Jitter, err = duration(pb.GetDnsJitter(), 0); err != nil { //nolint:staticcheck
		return at("dns_jitter", err)
	}
	d.RespectTTL = pb.GetRespectDnsTtl() //nolint:staticcheck
	if fr := pb.GetDnsFailureRefreshRate(); fr != nil {
		if d.FailureBase, err = duration(fr.GetBaseInterval(), 0); err != nil {
			return at("dns_failure_refresh_rate.base_interval", err)
		}
		if d.FailureMax, err = duration(fr.GetMaxInterval(), 10*d.FailureBase); err != nil {
			return at("dns_failure_refresh_rate.max_interval", err)
		}
		switch {
		case d.FailureBase <= minDNSRefreshRate:
			return errAt("dns_failure_refresh_rate.base_interval", "must be > 1ms")
		case d.FailureMax < d.FailureBase:
			return errAt("dns_failure_refresh_rate.max_interval", "%v is smaller than base_interval %v", d.FailureMax, d.FailureBase)
		}
	}
	if rc := pb.GetTypedDnsResolverConfig(); rc != nil {
		if err := checkCares(rc); err != nil {
			return at("typed_dns_resolver_config", err)
		}
	}
	la := pb.GetLoadAssignment()
	if la == nil {
		return at("load_assignment", errRequired)
	}
	a, err := decodeEndpoints(la, true)
	if err != nil {
		return at("load_assignment", err)
	}
	c.Endpoints, c.OverprovisioningFactor = a.endpoints, a.overprovisioning
	if d.Logical && len(c.Endpoints) != 1 {
		return errAt("load_assignment", "a LOGICAL_DNS cluster needs exactly one endpoint, got %d", len(c.Endpoints))
	}
	c.DNS = d
	return nil
}

// checkDNSFields refuses the DNS fields on a cluster that resolves no
// names: Envoy ignores them there, which hides a mistake. Errors are
// relative to the cluster.
func checkDNSFields(pb *clusterv3.Cluster) error {
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"dns_lookup_family", pb.GetDnsLookupFamily() != clusterv3.Cluster_AUTO},
		{"dns_refresh_rate", pb.GetDnsRefreshRate() != nil},                //nolint:staticcheck
		{"dns_jitter", pb.GetDnsJitter() != nil},                           //nolint:staticcheck
		{"respect_dns_ttl", pb.GetRespectDnsTtl()},                         //nolint:staticcheck
		{"dns_failure_refresh_rate", pb.GetDnsFailureRefreshRate() != nil}, //nolint:staticcheck
		{"typed_dns_resolver_config", pb.GetTypedDnsResolverConfig() != nil},
	} {
		if f.set {
			return errAt(f.name, "only applies to a STRICT_DNS or LOGICAL_DNS cluster, not %s", pb.GetType())
		}
	}
	return nil
}

// checkCares accepts c-ares with the system's resolver: the waypoint
// resolves through its own (the system's, or --dns-resolver). Errors are
// relative to the TypedExtensionConfig.
func checkCares(rc *corev3.TypedExtensionConfig) error {
	var cfg caresv3.CaresDnsResolverConfig
	a := rc.GetTypedConfig()
	if a.MessageName() != nameOf(&cfg) {
		return errAt("typed_config", "resolver %q (%s) is not supported; only %s with no custom resolvers is", rc.GetName(), a.GetTypeUrl(), caresName)
	}
	if err := proto.Unmarshal(a.GetValue(), &cfg); err != nil {
		return at("typed_config", fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err))
	}
	if len(cfg.GetResolvers()) > 0 {
		return errAt("typed_config.resolvers", "custom DNS resolvers are not supported yet: the waypoint resolves through the system's (or --dns-resolver)")
	}
	if err := caresAllowlist.Check(cfg.ProtoReflect()); err != nil {
		return at("typed_config", err)
	}
	return validate(&cfg)
}

// dnsEndpoint decodes a socket address that may hold a host name, for a DNS
// cluster's endpoint: the IP's address, or the name (lower-cased, without
// a trailing dot) and the port. Errors are relative to the Address.
func dnsEndpoint(a *corev3.Address) (netip.AddrPort, string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, "", at("socket_address", errRequired)
	}
	if _, err := netip.ParseAddr(sa.GetAddress()); err == nil {
		ap, err := socketAddress(a, false)
		return ap, "", err
	}
	name := strings.ToLower(strings.TrimSuffix(sa.GetAddress(), "."))
	if !validHostname(name) {
		return netip.AddrPort{}, "", errAt("socket_address.address", "%q is neither an IP address nor a host name", sa.GetAddress())
	}
	port := sa.GetPortValue()
	if port == 0 || port > 65535 {
		return netip.AddrPort{}, "", errAt("socket_address.port_value", "%d is not a port", port)
	}
	return netip.AddrPortFrom(netip.Addr{}, uint16(port)), name, nil
}

// validHostname reports whether name is a DNS name: labels of 1-63
// letters, digits, '-' and '_', 253 bytes at most.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return false
			}
		}
	}
	return true
}

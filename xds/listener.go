package xds

import (
	"context"
	"net/netip"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/extauthz"
	"github.com/gowaypoint/waypoint/filters/rbac"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// Listener is one decoded listener. Read-only after Build; safe for
// concurrent use.
type Listener struct {
	// Name is the listener's unique name within its snapshot.
	Name string
	// Address is where a real TCP listener binds; zero for an internal
	// listener. Port 0 asks the OS for a free port, as in Envoy.
	Address netip.AddrPort
	// AdditionalAddresses are additional_addresses: the listener listens
	// on each as on Address (dual stack: istiod gives the HBONE entry
	// 0.0.0.0 and [::]). Nil when there are none.
	AdditionalAddresses []netip.AddrPort
	// Internal is set for an internal_listener (e.g. "main_internal", which
	// the HBONE entry feeds); such a listener binds nothing.
	Internal bool
	// FilterChains are the listener's filter chains in config order.
	FilterChains []*FilterChain
	// DefaultChain is default_filter_chain, used when nothing matches; may be nil.
	DefaultChain *FilterChain
	// HTTPInspector is the listener's http_inspector; nil when it has none.
	HTTPInspector *HTTPInspector
	// HBONE is set when the listener is the HBONE entry (istiod's
	// connect_terminate); it then has no FilterChains.
	HBONE *HBONEEntry
	// AccessLog is the listener's access_log. Envoy writes it once per
	// downstream connection, of any chain; the waypoint writes it for the
	// connections no filter chain takes (response flag NR) and, on a
	// listener with dubbo_proxy chains, once per Dubbo call. The decoder
	// refuses one that would log anything else (see decodeListenerAccessLog).
	AccessLog []*accesslog.Logger
	// TrafficDirection is traffic_direction (UNSPECIFIED when not set).
	TrafficDirection corev3.TrafficDirection
	// Raw is the resource this was decoded from. It must not be modified.
	// Nil in a snapshot from BuildWire.
	Raw *listenerv3.Listener

	// Exactly one selector is set (classic has no chains when the listener
	// only has a default chain).
	classic *classicSelector // filter_chain_match
	matcher *matcher         // filter_chain_matcher
}

// Addresses returns Address followed by AdditionalAddresses.
func (l *Listener) Addresses() []netip.AddrPort {
	if len(l.AdditionalAddresses) == 0 {
		return []netip.AddrPort{l.Address}
	}
	return append([]netip.AddrPort{l.Address}, l.AdditionalAddresses...)
}

// MatchInput is what filter chain selection looks at for one connection. The
// zero AddrPort means "unknown". IPv4-mapped IPv6 addresses are matched as
// IPv4.
type MatchInput struct {
	Destination netip.AddrPort // the connection's (original) destination
	Source      netip.AddrPort // the downstream peer
	// AppProtocol is what http_inspector detected, as Envoy's
	// ApplicationProtocolInput reads it ("'h2c'", "'http/1.1'"); empty when
	// nothing was detected or nobody sniffed.
	AppProtocol string
}

// Match picks the filter chain for a connection the way Envoy does: by the
// listener's filter_chain_matcher when it has one, else by filter_chain_match
// (destination port, then longest destination prefix), falling back to
// DefaultChain. It returns nil when nothing matches and there is no default
// chain (Envoy closes the connection then). Match does not allocate and is
// safe for concurrent use.
func (l *Listener) Match(in MatchInput) *FilterChain {
	in.normalize()
	var c *FilterChain
	switch {
	case l.matcher != nil:
		c, _ = l.matcher.match(&in)
	case l.classic != nil:
		c = l.classic.match(&in)
	}
	if c == nil {
		return l.DefaultChain
	}
	return c
}

// normalize unmaps IPv4-mapped IPv6 addresses.
func (in *MatchInput) normalize() {
	if a := in.Destination.Addr(); a.Is4In6() {
		in.Destination = netip.AddrPortFrom(a.Unmap(), in.Destination.Port())
	}
	if a := in.Source.Addr(); a.Is4In6() {
		in.Source = netip.AddrPortFrom(a.Unmap(), in.Source.Port())
	}
}

// FilterChain is one decoded filter chain. Read-only after Build.
type FilterChain struct {
	// Name is the chain's name; may be empty unless the listener has a
	// filter_chain_matcher.
	Name string
	// The terminal network filter: exactly one of TCPProxy, HTTP and
	// Dubbo is set.
	TCPProxy *TCPProxy
	HTTP     *HTTPConnectionManager
	Dubbo    *DubboProxy
	// Leading names the network filters before the terminal one that
	// change nothing on the data path (see network_filters.go), in order.
	Leading []string
	// RBAC are the envoy.filters.network.rbac filters before the terminal
	// one, in config order: each decides a connection when it starts; the
	// first to deny closes it.
	RBAC []*rbac.Network
	// ExtAuthz are the envoy.filters.network.ext_authz filters, after the
	// RBAC ones: each checks a connection its filter_enabled_metadata
	// selects (the RBAC filters' shadow decisions) when it starts.
	ExtAuthz []*extauthz.Network
}

// AdmitConnection runs the chain's network RBAC filters, then its
// ext_authz filters (whose checks go through up(), called for a check), on
// a connection from down; when one denies, it returns false and why.
func (c *FilterChain) AdmitConnection(ctx context.Context, down *filters.Downstream, up func() filters.Upstream) (bool, string) {
	if len(c.ExtAuthz) == 0 {
		return c.AllowConnection(down)
	}
	var md connMetadata
	for _, n := range c.RBAC {
		ok, details, shadow := n.AllowShadow(down)
		if !ok {
			return false, details
		}
		if shadow != "" {
			md = append(md, [2]string{n.ShadowPolicyKey, shadow})
		}
	}
	for _, e := range c.ExtAuthz {
		if ok, details := e.Allow(ctx, up, down, md); !ok {
			return false, details
		}
	}
	return true, ""
}

// connMetadata is a connection's dynamic metadata: the network RBAC
// filters' shadow policies by key, under rbac.NetworkName.
type connMetadata [][2]string

func (m connMetadata) MetadataString(filter, key string) (string, bool) {
	if filter != rbac.NetworkName {
		return "", false
	}
	for _, kv := range m {
		if kv[0] == key {
			return kv[1], true
		}
	}
	return "", false
}

// AllowConnection runs the chain's network RBAC filters on a connection
// from down; when one denies, it returns false and the deciding policy's
// details.
func (c *FilterChain) AllowConnection(down *filters.Downstream) (bool, string) {
	for _, n := range c.RBAC {
		if ok, details := n.Allow(down); !ok {
			return false, details
		}
	}
	return true, ""
}

// TCPProxy is a decoded envoy.filters.network.tcp_proxy: relay bytes to one
// cluster.
type TCPProxy struct {
	// StatPrefix prefixes the filter's statistics.
	StatPrefix string
	// Cluster names the upstream cluster; Build checks that it exists.
	Cluster string
	// IdleTimeout closes the connection after this long with no traffic in
	// either direction. Envoy's default is 1h; 0 disables it (idle_timeout: 0s).
	IdleTimeout time.Duration
	// Tunnel is tunneling_config; nil when absent. Only the internal
	// listeners Build folds into clusters may have one.
	Tunnel *Tunneling
	// AccessLog are the access_log entries, a line per connection.
	AccessLog []*accesslog.Logger
	// Stats are the overrides of the chain's istio.stats network filter
	// for the standard metrics of its connections (nil: none).
	Stats *metrics.Overrides
	// HashSourceIP is a hash_policy of source_ip (what istiod writes for a
	// DestinationRule's consistentHash useSourceIp): a ring-hash or Maglev
	// cluster keys its pick on the downstream's IP address, as the HTTP
	// route's connection_properties source_ip does.
	HashSourceIP bool
	// MaxDownstreamConnectionDuration closes the connection, both sides,
	// once it has lasted this long (what istiod writes for a
	// DestinationRule's tcp.maxConnectionDuration); 0: no limit.
	MaxDownstreamConnectionDuration time.Duration
	// Dubbo is how a connection of this chain that speaks Dubbo is served
	// (proxy/tcpproxy tells it by its first bytes): a DubboProxy made up
	// for the chain, with one route, any interface and method, to Cluster,
	// the Dubbo router as its only filter, the chain's access_log (a line
	// per call) and stats overrides. Never nil for a decoded chain.
	Dubbo *DubboProxy
}

// defaultTCPIdleTimeout is Envoy's tcp_proxy idle_timeout default.
const defaultTCPIdleTimeout = time.Hour

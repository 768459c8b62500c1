package xds

import (
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// Cluster is one decoded upstream cluster. Read-only after Build; safe for
// concurrent use.
type Cluster struct {
	// Name is the cluster's unique name within its snapshot.
	Name string
	// ConnectTimeout bounds connection establishment. Envoy's default is 5s.
	ConnectTimeout time.Duration
	// LBPolicy is the load balancing policy; LBPolicyRoundRobin by default.
	LBPolicy LBPolicy
	// Transport is how endpoints are reached; TransportHBONE by default (see
	// the package documentation: this differs from Envoy).
	Transport Transport
	// Endpoints are the cluster's endpoints, of every priority, flattened
	// across localities in config order (each Endpoint says its priority and
	// locality): from load_assignment for a STATIC cluster,
	// from the ClusterLoadAssignment passed to Build for an EDS cluster (none
	// when there is none, as in Envoy). Shared with other clusters of the same
	// EDS service name; never modified.
	Endpoints []Endpoint
	// OverprovisioningFactor is the ClusterLoadAssignment's
	// policy.overprovisioning_factor in percent (140 means 1.4), used to
	// share load between priorities and localities; 0 means Envoy's
	// default, DefaultOverprovisioningFactor.
	OverprovisioningFactor uint32
	// DNS is set for a STRICT_DNS or LOGICAL_DNS cluster: Endpoints then
	// name hosts to resolve (Endpoint.Hostname), and the balancer's hosts
	// are their addresses of the moment (proxy/upstream/lb). nil otherwise.
	DNS *DNSConfig
	// UpstreamTLS holds the accepted peer identities for TransportHBONE
	// (empty means any identity chained to the mesh root), and the TLS
	// originated for TransportTLS.
	UpstreamTLS UpstreamTLS

	// LeastRequest is least_request_lb_config, RingHash ring_hash_lb_config
	// and Maglev maglev_lb_config: each only with its own LBPolicy, nil when
	// absent (Envoy's defaults apply: see the OrDefault methods).
	LeastRequest *LeastRequestConfig
	RingHash     *RingHashConfig
	Maglev       *MaglevConfig
	// SlowStart is the slow_start_config of round_robin_lb_config or
	// least_request_lb_config (each only with its own LBPolicy); nil when
	// absent or without a slow_start_window, which disables slow start.
	SlowStart *SlowStartConfig
	// CommonLB is common_lb_config; nil when absent (see PanicThreshold).
	CommonLB *CommonLBConfig
	// CircuitBreakers holds the DEFAULT priority thresholds of
	// circuit_breakers; nil when there are none (see ThresholdsOrDefault).
	CircuitBreakers *Thresholds
	// OutlierDetection is outlier_detection with Envoy's defaults filled in;
	// nil when absent, which disables outlier detection (as in Envoy).
	OutlierDetection *OutlierDetection

	// UpstreamProtocol is the HTTP version spoken to the endpoints, from
	// typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
	// UpstreamHTTP1 when absent, as in Envoy.
	UpstreamProtocol UpstreamProtocol
	// HTTP2 holds the http2_protocol_options of those options, used when
	// HTTP/2 is spoken; nil when absent (see HTTP2OrDefault).
	HTTP2 *HTTP2Options
	// HTTP holds their common_http_protocol_options; nil when absent (see
	// HTTPOrDefault).
	HTTP *HTTPOptions

	// AutoSNI and AutoSANValidation are the upstream_http_protocol_options
	// of those options: TLS originated for a request sends its host
	// (:authority without the port) as the SNI, and checks the peer's
	// certificate for it (OriginTLS.ConfigFor).
	AutoSNI, AutoSANValidation bool

	// HBONEPort is the port HBONE endpoints are dialled on, that of the
	// upstream_port_override of the ORIGINAL_DST cluster it reaches; 0
	// means 15008 (see HBONEPortOrDefault).
	HBONEPort uint16
	// OriginalDestination is set when the host is the stream's own
	// original destination rather than an endpoint (istiod's encap, for
	// pod-addressed traffic): Endpoints is empty then.
	OriginalDestination bool
	// OriginalDst is set for an ORIGINAL_DST cluster (connect_originate);
	// Build folds such clusters into those that reach them.
	OriginalDst *OriginalDst
	// InternalListener is set when the cluster's endpoint is an internal
	// listener Build does not fold (main_internal, which the HBONE entry
	// feeds).
	InternalListener string
	// FoldedFrom is the internal listener (connect_originate) the endpoints
	// named before Build folded them into pod addresses; the admin's
	// /clusters shows them as Envoy does, envoy://FoldedFrom/ip:port.
	FoldedFrom string
	// Refusal, when set, says why the data path refuses to send to this
	// cluster though it decodes (a loop into main_internal, double HBONE).
	Refusal string
	// TunnelAccessLog is the access_log of the tcp_proxy of the internal
	// listener a folded cluster tunnels through (connect_originate), and
	// TunnelCluster that tcp_proxy's ORIGINAL_DST cluster: Envoy writes a
	// line per tunnel; the waypoint writes one per tunnel that fails to
	// connect (UF), the only ones the decoder lets such a log write.
	TunnelAccessLog []*accesslog.Logger
	TunnelCluster   string

	// ProxyProtocol is the PROXY protocol header each upstream connection
	// starts with (an upstream_proxy_protocol transport socket, inside
	// internal_upstream or not), carrying the downstream's source and
	// original destination; ProxyProtocolNone when there is none.
	ProxyProtocol ProxyProtocolVersion
	// TCPKeepalive is upstream_connection_options.tcp_keepalive: TCP
	// keep-alive on the cluster's plaintext connections. nil when absent
	// (keep-alive off, as in Envoy). HBONE connections have the HBONE
	// pool's own keep-alive (HTTP/2 PING): in Envoy the waypoint's service
	// clusters reach their endpoints through internal connections, on
	// which socket options do nothing either.
	TCPKeepalive *TCPKeepalive

	// Metadata is the cluster's metadata, as given; may be nil (always in a
	// snapshot from BuildWire, see IstioServices). Must not be modified.
	Metadata *corev3.Metadata
	// NoDubboOnTCP keeps the tcp_proxy chains to this cluster L4 only:
	// their connections are relayed as bytes even when they speak Dubbo
	// (filter_metadata["waypoint"]["dubbo_on_tcp"] false; true or absent:
	// Dubbo found on them is served per call, see proxy/tcpproxy).
	NoDubboOnTCP bool
	// Raw is the resource this was decoded from. It must not be modified.
	// Nil in a snapshot from BuildWire.
	Raw *clusterv3.Cluster

	istioServices []IstioService // Metadata's istio.services, kept by BuildWire when it drops Metadata
}

// defaultConnectTimeout is Envoy's cluster connect_timeout default.
const defaultConnectTimeout = 5 * time.Second

// LBPolicy is a cluster's load balancing policy.
type LBPolicy int

// The decoded policies; package proxy/upstream/lb implements them.
const (
	LBPolicyRoundRobin   LBPolicy = iota // ROUND_ROBIN, the default
	LBPolicyLeastRequest                 // LEAST_REQUEST
	LBPolicyRandom                       // RANDOM
	LBPolicyRingHash                     // RING_HASH
	LBPolicyMaglev                       // MAGLEV
)

// String returns Envoy's name for the policy.
func (p LBPolicy) String() string {
	switch p {
	case LBPolicyRoundRobin:
		return "ROUND_ROBIN"
	case LBPolicyLeastRequest:
		return "LEAST_REQUEST"
	case LBPolicyRandom:
		return "RANDOM"
	case LBPolicyRingHash:
		return "RING_HASH"
	case LBPolicyMaglev:
		return "MAGLEV"
	}
	return "LBPolicy(?)"
}

// Transport is how a cluster reaches its endpoints.
type Transport int

const (
	// TransportHBONE is the ambient default: an mTLS HTTP/2 connection to
	// podIP:15008 carrying a CONNECT stream with :authority podIP:port.
	TransportHBONE Transport = iota
	// TransportPlaintext is plain TCP to the endpoint's address.
	TransportPlaintext
	// TransportTLS is TLS originated to the endpoint's address
	// (UpstreamTLS.Originate), no HBONE: an UpstreamTlsContext that is not
	// istiod's HBONE one (a DestinationRule's tls SIMPLE).
	TransportTLS
	// transportInternal: the endpoints are internal listeners
	// (internal_upstream). Build folds it into HBONE (see internal.go);
	// no built Cluster has it.
	transportInternal
)

// String names the transport.
func (t Transport) String() string {
	switch t {
	case TransportHBONE:
		return "HBONE"
	case TransportPlaintext:
		return "plaintext"
	case TransportTLS:
		return "TLS"
	case transportInternal:
		return "internal"
	}
	return "Transport(?)"
}

// UpstreamTLS is what the waypoint checks of an HBONE peer's certificate, on
// top of it chaining to the mesh root.
type UpstreamTLS struct {
	// SANExact and SANPrefixes are URI SAN matchers, from an
	// UpstreamTlsContext's default_validation_context.match_typed_subject_alt_names.
	// A peer is accepted when a URI SAN equals one of SANExact or starts with
	// one of SANPrefixes; when both are empty, any peer is.
	SANExact, SANPrefixes []string
	// Originate is the TLS originated for TransportTLS; nil otherwise.
	Originate *OriginTLS
}

// Endpoint is one upstream endpoint.
type Endpoint struct {
	// Address is the pod's ip:port: the HBONE :authority, or the plaintext
	// destination. For an endpoint with a Hostname, only its port is set
	// (Address.Addr() is the zero Addr).
	Address netip.AddrPort
	// AdditionalAddresses are the endpoint's additional_addresses (its
	// other IP family, for one): the dialer tries Address first and
	// then these, as Envoy's happy eyeballs does (proxy/upstream). Nil
	// when there are none.
	AdditionalAddresses []netip.AddrPort
	// Hostname is the host name a DNS cluster's endpoint resolves
	// (lower-case, no trailing dot); empty for an IP address.
	Hostname string
	// Weight is load_balancing_weight, 1 by default.
	Weight uint32
	// Identity is the expected peer identity, from the endpoint metadata
	// filter_metadata["waypoint"]["identity"] (a spiffe:// URI). The zero ID
	// means any identity in the trust domain.
	Identity spiffe.ID
	// Metadata is the endpoint's metadata, as given; may be nil (always in a
	// snapshot from BuildWire, see IstioWorkload). Must not be modified.
	Metadata *corev3.Metadata
	// DubboVersion and DubboGroup are the endpoint's Dubbo service version
	// and group, from filter_metadata["waypoint"]["dubbo_version"] and
	// ["dubbo_group"]; empty when not set (DubboLabels then reads the
	// version from istiod's metadata). A Dubbo call that names a version
	// or group prefers the endpoints that carry it (proxy/dubboconn).
	DubboVersion, DubboGroup string
	// Priority is the priority of its LocalityLbEndpoints (0 the highest).
	Priority uint32
	// Locality is the locality of its LocalityLbEndpoints; zero when none.
	Locality Locality
	// LocalityWeight is the load_balancing_weight of its
	// LocalityLbEndpoints; 0 when absent (such a locality takes no load
	// under locality-weighted balancing, as in Envoy).
	LocalityWeight uint32
	// Internal is set for an envoy_internal_address endpoint; Address is
	// then the pod address from its original_dst metadata ({local:
	// "ip:port"}), or zero when it has none. Build folds these away.
	Internal *InternalAddress

	istioWorkload    string // Metadata's istio.workload, kept by BuildWire when it drops Metadata
	hasIstioWorkload bool
}

// Locality is an endpoint's envoy.config.core.v3.Locality.
type Locality struct {
	Region, Zone, SubZone string
}

// String returns region/zone/subzone, as Istio writes a locality.
func (l Locality) String() string { return l.Region + "/" + l.Zone + "/" + l.SubZone }

// InternalAddress is an endpoint's envoy_internal_address.
type InternalAddress struct {
	Listener   string // server_listener_name
	EndpointID string
}

// LeastRequestConfig configures LBPolicyLeastRequest.
type LeastRequestConfig struct {
	// ChoiceCount is how many random hosts are compared when host weights
	// are equal; at least 2. Envoy's default is 2.
	ChoiceCount uint32
	// ActiveRequestBias is the exponent of Envoy's dynamic weight
	// weight/(active+1)^bias, used when host weights differ; >= 0, where 0
	// ignores active requests (weighted round robin). Envoy's default is 1.
	// Only its default_value is read: the waypoint has no runtime.
	ActiveRequestBias float64
}

// RingHashConfig configures LBPolicyRingHash. The hash function is always
// xxHash64, Envoy's default (MURMUR_HASH_2 is refused).
type RingHashConfig struct {
	// MinimumRingSize and MaximumRingSize bound the number of ring entries:
	// 1 <= MinimumRingSize <= MaximumRingSize <= MaxRingSize. Envoy's
	// defaults are 1024 and MaxRingSize.
	MinimumRingSize, MaximumRingSize uint64
}

// MaglevConfig configures LBPolicyMaglev.
type MaglevConfig struct {
	// TableSize is the lookup table's size: a prime <= MaxMaglevTableSize.
	// Envoy's default is 65537.
	TableSize uint64
}

// SlowStartConfig is Envoy's slow start: a host that joined the cluster
// less than Window ago has its weight scaled by
// max(MinWeightPercent/100, (max(age, 1s)/Window)^(1/Aggression)).
type SlowStartConfig struct {
	// Window is slow_start_window, > 0.
	Window time.Duration
	// Aggression is aggression's default_value (1 when absent or not a
	// positive number, as Envoy falls back to): how fast the weight ramps
	// up.
	Aggression float64
	// MinWeightPercent is min_weight_percent (10 by default), 0-100.
	MinWeightPercent float64
}

// TCPKeepalive holds a cluster's TCP keep-alive settings. A zero field
// leaves the system's value.
type TCPKeepalive struct {
	// Probes is keepalive_probes: unanswered probes before the connection
	// is dropped.
	Probes uint32
	// Time is keepalive_time: idle time before the first probe.
	Time time.Duration
	// Interval is keepalive_interval: time between probes.
	Interval time.Duration
}

// CommonLBConfig is the part of common_lb_config the waypoint implements.
type CommonLBConfig struct {
	// HealthyPanicThreshold is a percentage (0-100, truncated to an integer
	// as in Envoy): when fewer hosts than that are healthy, the balancer
	// uses all hosts. 0 disables panic mode (istiod's choice). Envoy's
	// default is 50.
	HealthyPanicThreshold uint32
	// LocalityWeighted is locality_weighted_lb_config: within a priority,
	// a locality is picked first, by its weight scaled by its share of
	// healthy hosts, then a host of it by the policy; RING_HASH and MAGLEV
	// fold locality weights into host weights instead, as Envoy does.
	LocalityWeighted bool
}

// Thresholds are a cluster's circuit breaker limits for the DEFAULT routing
// priority. Each is a maximum number in flight at once across the cluster.
type Thresholds struct {
	// MaxConnections bounds upstream connections; Envoy's default 1024.
	MaxConnections uint32
	// MaxPendingRequests bounds requests waiting for a connection; 1024.
	MaxPendingRequests uint32
	// MaxRequests bounds requests in flight; 1024.
	MaxRequests uint32
	// MaxRetries bounds retries in flight; 3.
	MaxRetries uint32
	// RetryBudget, when set, bounds retries in flight instead of
	// MaxRetries; nil when absent.
	RetryBudget *RetryBudget
}

// RetryBudget is Envoy's retry budget: the retries in flight may be
// Percent of the requests in flight (active and pending), and at least
// MinConcurrency.
type RetryBudget struct {
	// Percent is budget_percent (20 by default), 0-100.
	Percent float64
	// MinConcurrency is min_retry_concurrency (3 by default).
	MinConcurrency uint32
}

// OutlierDetection configures passive health checking: ejecting hosts that
// fail. Percentages are 0-100; an enforcing percentage is the chance that a
// detected outlier is really ejected. Every field holds Envoy's default when
// its proto field is absent.
type OutlierDetection struct {
	// Consecutive5xx ejects after that many 5xx in a row (5). 0 never ejects.
	Consecutive5xx uint32
	// ConsecutiveGatewayFailure ejects after that many 502, 503 or 504 in a
	// row (5), local-origin failures included unless
	// SplitExternalLocalOriginErrors.
	ConsecutiveGatewayFailure uint32
	// ConsecutiveLocalOriginFailure ejects after that many connect failures,
	// resets or timeouts in a row (5); only with SplitExternalLocalOriginErrors.
	ConsecutiveLocalOriginFailure uint32
	// EnforcingConsecutive5xx (100), EnforcingConsecutiveGatewayFailure (0)
	// and EnforcingConsecutiveLocalOriginFailure (100) enforce the above.
	EnforcingConsecutive5xx                uint32
	EnforcingConsecutiveGatewayFailure     uint32
	EnforcingConsecutiveLocalOriginFailure uint32

	// EnforcingSuccessRate (100) enforces success-rate ejection: at each
	// interval, among hosts with at least SuccessRateRequestVolume (100)
	// requests in the last interval, if there are at least
	// SuccessRateMinimumHosts (5), a host whose success rate is below
	// mean - stdev*SuccessRateStdevFactor/1000 (1900) is an outlier.
	// EnforcingLocalOriginSuccessRate (100) is the same for local-origin
	// results when SplitExternalLocalOriginErrors.
	EnforcingSuccessRate            uint32
	EnforcingLocalOriginSuccessRate uint32
	SuccessRateMinimumHosts         uint32
	SuccessRateRequestVolume        uint32
	SuccessRateStdevFactor          uint32

	// EnforcingFailurePercentage (0) enforces failure-percentage ejection:
	// at each interval, among hosts with at least
	// FailurePercentageRequestVolume (50) requests, if there are at least
	// FailurePercentageMinimumHosts (5), a host whose failure percentage is
	// at least FailurePercentageThreshold (85) is an outlier.
	// EnforcingFailurePercentageLocalOrigin (0) is the same for local-origin
	// results when SplitExternalLocalOriginErrors.
	EnforcingFailurePercentage            uint32
	EnforcingFailurePercentageLocalOrigin uint32
	FailurePercentageThreshold            uint32
	FailurePercentageMinimumHosts         uint32
	FailurePercentageRequestVolume        uint32

	// Interval is the time between sweeps that un-eject hosts and run the
	// success-rate and failure-percentage checks (10s).
	Interval time.Duration
	// BaseEjectionTime is how long a first ejection lasts; each ejection of
	// the same host lasts one BaseEjectionTime longer than the last, up to
	// MaxEjectionTime (30s).
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection (Envoy's default: the larger of 300s
	// and BaseEjectionTime).
	MaxEjectionTime time.Duration
	// MaxEjectionTimeJitter adds a random 0..MaxEjectionTimeJitter to each
	// ejection (0).
	MaxEjectionTimeJitter time.Duration
	// MaxEjectionPercent caps the share of a cluster's hosts ejected at once
	// (10).
	MaxEjectionPercent uint32
	// AlwaysEjectOneHost allows one ejection whatever MaxEjectionPercent
	// says (false).
	AlwaysEjectOneHost bool
	// SplitExternalLocalOriginErrors counts local-origin failures (connect
	// failure, reset, timeout) apart from HTTP statuses (false: a connect
	// failure or reset counts as a 503, a timeout as a 504).
	SplitExternalLocalOriginErrors bool
}

// UpstreamProtocol is the HTTP version a cluster speaks to its endpoints.
type UpstreamProtocol int

const (
	// UpstreamHTTP1 is HTTP/1.1, Envoy's default.
	UpstreamHTTP1 UpstreamProtocol = iota
	// UpstreamHTTP2 is HTTP/2 with prior knowledge.
	UpstreamHTTP2
	// UpstreamUseDownstream speaks the downstream request's version.
	UpstreamUseDownstream
)

// String names the protocol.
func (p UpstreamProtocol) String() string {
	switch p {
	case UpstreamHTTP1:
		return "HTTP/1.1"
	case UpstreamHTTP2:
		return "HTTP/2"
	case UpstreamUseDownstream:
		return "downstream's"
	}
	return "UpstreamProtocol(?)"
}

// HTTP2Options are the upstream HTTP/2 settings a cluster sets.
type HTTP2Options struct {
	// AllowConnect lets CONNECT requests through (false).
	AllowConnect bool
	// MaxConcurrentStreams bounds streams per connection (2147483647).
	MaxConcurrentStreams uint32
	// InitialStreamWindowSize (268435456) and InitialConnectionWindowSize
	// (268435456) are the flow-control windows advertised, 65535..2^31-1.
	InitialStreamWindowSize     uint32
	InitialConnectionWindowSize uint32
}

// HTTPOptions are a cluster's common_http_protocol_options.
type HTTPOptions struct {
	// IdleTimeout closes an upstream connection without streams for that
	// long (1h); 0 disables it.
	IdleTimeout time.Duration
	// MaxRequestsPerConnection closes a connection after that many requests;
	// 0 means no limit (the default).
	MaxRequestsPerConnection uint32
	// MaxStreamDuration bounds a stream's whole life; 0 means none (the
	// default).
	MaxStreamDuration time.Duration
	// MaxConnectionDuration is how long a connection may serve from when
	// it was opened: past it the connection takes no new request and
	// closes once idle (Envoy drains it). 0 means no limit (the default).
	MaxConnectionDuration time.Duration
}

// Envoy's limits and defaults for the options above.
const (
	MaxRingSize        = 8 << 20 // maximum_ring_size's limit and default
	MaxMaglevTableSize = 5000011 // table_size's limit
	// UnlimitedThreshold is the circuit breaker value istiod writes to mean
	// "no limit" (4294967295).
	UnlimitedThreshold = ^uint32(0)
)

// Envoy's defaults, returned by the OrDefault methods and filled in by the
// decoder. Read-only.
var (
	DefaultLeastRequest = LeastRequestConfig{ChoiceCount: 2, ActiveRequestBias: 1}
	DefaultRingHash     = RingHashConfig{MinimumRingSize: 1024, MaximumRingSize: MaxRingSize}
	DefaultMaglev       = MaglevConfig{TableSize: 65537}
	DefaultThresholds   = Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}
	DefaultHTTP2        = HTTP2Options{MaxConcurrentStreams: 2147483647,
		InitialStreamWindowSize: 256 << 20, InitialConnectionWindowSize: 256 << 20}
	DefaultHTTP = HTTPOptions{IdleTimeout: time.Hour}
	// DefaultRetryBudget and DefaultSlowStart hold the defaults of a
	// retry_budget and a slow_start_config's fields.
	DefaultRetryBudget = RetryBudget{Percent: 20, MinConcurrency: 3}
	DefaultSlowStart   = SlowStartConfig{Aggression: 1, MinWeightPercent: 10}
	// DefaultOutlierDetection is what an empty outlier_detection means. When
	// base_ejection_time is set above 300s, max_ejection_time defaults to it.
	DefaultOutlierDetection = OutlierDetection{
		Consecutive5xx:                         5,
		ConsecutiveGatewayFailure:              5,
		ConsecutiveLocalOriginFailure:          5,
		EnforcingConsecutive5xx:                100,
		EnforcingConsecutiveGatewayFailure:     0,
		EnforcingConsecutiveLocalOriginFailure: 100,
		EnforcingSuccessRate:                   100,
		EnforcingLocalOriginSuccessRate:        100,
		SuccessRateMinimumHosts:                5,
		SuccessRateRequestVolume:               100,
		SuccessRateStdevFactor:                 1900,
		EnforcingFailurePercentage:             0,
		EnforcingFailurePercentageLocalOrigin:  0,
		FailurePercentageThreshold:             85,
		FailurePercentageMinimumHosts:          5,
		FailurePercentageRequestVolume:         50,
		Interval:                               10 * time.Second,
		BaseEjectionTime:                       30 * time.Second,
		MaxEjectionTime:                        300 * time.Second,
		MaxEjectionPercent:                     10,
	}
	// DefaultPanicThreshold is common_lb_config.healthy_panic_threshold's
	// default, in percent.
	DefaultPanicThreshold uint32 = 50
	// DefaultOverprovisioningFactor is policy.overprovisioning_factor's
	// default, in percent.
	DefaultOverprovisioningFactor uint32 = 140
)

// LeastRequestOrDefault returns LeastRequest, or Envoy's defaults.
func (c *Cluster) LeastRequestOrDefault() LeastRequestConfig {
	if c.LeastRequest == nil {
		return DefaultLeastRequest
	}
	return *c.LeastRequest
}

// RingHashOrDefault returns RingHash, or Envoy's defaults.
func (c *Cluster) RingHashOrDefault() RingHashConfig {
	if c.RingHash == nil {
		return DefaultRingHash
	}
	return *c.RingHash
}

// MaglevOrDefault returns Maglev, or Envoy's defaults.
func (c *Cluster) MaglevOrDefault() MaglevConfig {
	if c.Maglev == nil {
		return DefaultMaglev
	}
	return *c.Maglev
}

// PanicThreshold returns the healthy panic threshold in percent.
func (c *Cluster) PanicThreshold() uint32 {
	if c.CommonLB == nil {
		return DefaultPanicThreshold
	}
	return c.CommonLB.HealthyPanicThreshold
}

// LocalityWeighted reports whether common_lb_config has
// locality_weighted_lb_config.
func (c *Cluster) LocalityWeighted() bool { return c.CommonLB != nil && c.CommonLB.LocalityWeighted }

// OverprovisioningFactorOrDefault returns OverprovisioningFactor, or
// Envoy's default.
func (c *Cluster) OverprovisioningFactorOrDefault() uint32 {
	if c.OverprovisioningFactor == 0 {
		return DefaultOverprovisioningFactor
	}
	return c.OverprovisioningFactor
}

// ThresholdsOrDefault returns CircuitBreakers, or Envoy's defaults.
func (c *Cluster) ThresholdsOrDefault() Thresholds {
	if c.CircuitBreakers == nil {
		return DefaultThresholds
	}
	return *c.CircuitBreakers
}

// HTTP2OrDefault returns HTTP2, or Envoy's defaults.
func (c *Cluster) HTTP2OrDefault() HTTP2Options {
	if c.HTTP2 == nil {
		return DefaultHTTP2
	}
	return *c.HTTP2
}

// HTTPOrDefault returns HTTP, or Envoy's defaults.
func (c *Cluster) HTTPOrDefault() HTTPOptions {
	if c.HTTP == nil {
		return DefaultHTTP
	}
	return *c.HTTP
}

// HBONEPortOrDefault is HBONEPort, 15008 when unset.
func (c *Cluster) HBONEPortOrDefault() uint16 {
	if c.HBONEPort == 0 {
		return defaultHBONEPort
	}
	return c.HBONEPort
}

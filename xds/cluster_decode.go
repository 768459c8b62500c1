package xds

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// lbPolicies maps the supported lb_policy values.
var lbPolicies = map[clusterv3.Cluster_LbPolicy]LBPolicy{
	clusterv3.Cluster_ROUND_ROBIN:   LBPolicyRoundRobin,
	clusterv3.Cluster_LEAST_REQUEST: LBPolicyLeastRequest,
	clusterv3.Cluster_RANDOM:        LBPolicyRandom,
	clusterv3.Cluster_RING_HASH:     LBPolicyRingHash,
	clusterv3.Cluster_MAGLEV:        LBPolicyMaglev,
}

// decodeCluster decodes and validates one cluster. eds holds the decoded
// endpoints of each ClusterLoadAssignment by cluster_name. Errors are
// relative to the cluster.
func decodeCluster(pb *clusterv3.Cluster, eds map[string]assignment) (*Cluster, error) {
	if err := checkSupported(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetName() == "" {
		return nil, at("name", errRequired)
	}
	c := &Cluster{Name: pb.GetName(), Metadata: pb.GetMetadata(), Raw: pb}
	if v, ok := pb.GetMetadata().GetFilterMetadata()[metadataNamespace].GetFields()[dubboOnTCPKey]; ok {
		b, isBool := v.GetKind().(*structpb.Value_BoolValue)
		if !isBool {
			return nil, errAt(key("metadata.filter_metadata", metadataNamespace)+"."+dubboOnTCPKey, "want true or false")
		}
		c.NoDubboOnTCP = !b.BoolValue
	}

	var err error
	if c.ConnectTimeout, err = duration(pb.GetConnectTimeout(), defaultConnectTimeout); err != nil {
		return nil, at("connect_timeout", err)
	}
	if c.ConnectTimeout == 0 {
		return nil, errAt("connect_timeout", "must be > 0")
	}

	policy, ok := lbPolicies[pb.GetLbPolicy()]
	if !ok && pb.GetType() != clusterv3.Cluster_ORIGINAL_DST {
		return nil, errAt("lb_policy", "%s is not supported yet", pb.GetLbPolicy())
	}
	c.LBPolicy = policy
	if err := decodeClusterFilters(pb); err != nil {
		return nil, err
	}
	if err := decodeLB(pb, c); err != nil {
		return nil, err
	}
	if ka := pb.GetUpstreamConnectionOptions().GetTcpKeepalive(); ka != nil {
		c.TCPKeepalive = &TCPKeepalive{Probes: ka.GetKeepaliveProbes().GetValue(),
			Time:     time.Duration(ka.GetKeepaliveTime().GetValue()) * time.Second,
			Interval: time.Duration(ka.GetKeepaliveInterval().GetValue()) * time.Second}
	}
	if c.CircuitBreakers, err = decodeCircuitBreakers(pb.GetCircuitBreakers()); err != nil {
		return nil, at("circuit_breakers", err)
	}
	if od := pb.GetOutlierDetection(); od != nil {
		if c.OutlierDetection, err = decodeOutlierDetection(od); err != nil {
			return nil, at("outlier_detection", err)
		}
	}
	if err := decodeProtocolOptions(pb.GetTypedExtensionProtocolOptions(), c); err != nil {
		return nil, err
	}

	var edsService string
	switch pb.GetType() {
	case clusterv3.Cluster_STATIC:
		if pb.GetEdsClusterConfig() != nil {
			return nil, errAt("eds_cluster_config", "only applies to an EDS cluster")
		}
		if la := pb.GetLoadAssignment(); la != nil {
			a, err := decodeEndpoints(la, false)
			if err != nil {
				return nil, at("load_assignment", err)
			}
			c.Endpoints, c.OverprovisioningFactor = a.endpoints, a.overprovisioning
		}
	case clusterv3.Cluster_EDS:
		if pb.GetLoadAssignment() != nil {
			return nil, errAt("load_assignment", "must not be set on an EDS cluster: its endpoints come from EDS")
		}
		if err := checkEDSConfig(pb.GetEdsClusterConfig()); err != nil {
			return nil, at("eds_cluster_config", err)
		}
		edsService = pb.GetEdsClusterConfig().GetServiceName()
		if edsService == "" {
			edsService = c.Name
		}
		a := eds[edsService]
		c.Endpoints, c.OverprovisioningFactor = a.endpoints, a.overprovisioning
	case clusterv3.Cluster_ORIGINAL_DST:
		if err := decodeOriginalDst(pb, c); err != nil {
			return nil, err
		}
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		if pb.GetEdsClusterConfig() != nil {
			return nil, errAt("eds_cluster_config", "only applies to an EDS cluster")
		}
		if err := decodeDNS(pb, c); err != nil {
			return nil, err
		}
	default:
		return nil, errAt("type", "%s is not supported yet", pb.GetType())
	}
	if c.DNS == nil {
		if err := checkDNSFields(pb); err != nil {
			return nil, err
		}
	}

	if isInternalUpstream(pb.GetTransportSocket()) {
		innerTLS, origin, pp, err := decodeInternalUpstream(pb.GetTransportSocket())
		if err != nil {
			return nil, at("transport_socket", err)
		}
		c.Transport, c.ProxyProtocol = transportInternal, pp
		c.UpstreamTLS.Originate = origin
		if innerTLS {
			c.Refusal = "TLS inside internal_upstream (double HBONE, multi-network) is not supported yet"
		}
	} else {
		ts, pp, err := unwrapProxyProtocol(pb.GetTransportSocket())
		if err != nil {
			return nil, at("transport_socket", err)
		}
		path := "transport_socket"
		if pp != ProxyProtocolNone {
			path += ".typed_config.transport_socket"
		}
		if c.Transport, c.UpstreamTLS, err = decodeTransportSocket(ts); err != nil {
			return nil, at(path, err)
		}
		c.ProxyProtocol = pp
	}
	if len(pb.GetTransportSocketMatches()) > 0 {
		if err := decodeTransportSocketMatches(pb, c, edsService); err != nil {
			return nil, err
		}
	}

	if err := validate(pb); err != nil {
		return nil, err
	}
	return c, nil
}

// checkEDSConfig accepts an EDS source of ADS, the only one the waypoint
// will have: endpoints then arrive with the other resources through Build.
// initial_fetch_timeout is validated here and left to the ADS client, which
// owns the wait for the first response.
func checkEDSConfig(ec *clusterv3.Cluster_EdsClusterConfig) error {
	src := ec.GetEdsConfig()
	switch {
	case ec == nil || src == nil:
		return errAt("eds_config", "required (ads: {})")
	case src.GetAds() == nil:
		return errAt("eds_config", "only ads is supported")
	case src.GetResourceApiVersion() != corev3.ApiVersion_V3 && src.GetResourceApiVersion() != corev3.ApiVersion_AUTO:
		return errAt("eds_config.resource_api_version", "only V3 is supported, got %s", src.GetResourceApiVersion())
	}
	if _, err := duration(src.GetInitialFetchTimeout(), 0); err != nil {
		return at("eds_config.initial_fetch_timeout", err)
	}
	return nil
}

// decodeLB decodes the policy-specific configuration and common_lb_config
// into c, whose LBPolicy is set. A configuration for another policy than
// c's is an error: Envoy would ignore it, which hides a mistake. Errors are
// relative to the cluster.
func decodeLB(pb *clusterv3.Cluster, c *Cluster) error {
	var err error
	if lr := pb.GetLeastRequestLbConfig(); lr != nil {
		if c.LBPolicy != LBPolicyLeastRequest {
			return errAt("least_request_lb_config", "only applies to lb_policy LEAST_REQUEST, not %s", c.LBPolicy)
		}
		if c.LeastRequest, err = decodeLeastRequest(lr); err != nil {
			return at("least_request_lb_config", err)
		}
		if c.SlowStart, err = decodeSlowStart(lr.GetSlowStartConfig()); err != nil {
			return at("least_request_lb_config.slow_start_config", err)
		}
	}
	if rr := pb.GetRoundRobinLbConfig(); rr != nil {
		if c.LBPolicy != LBPolicyRoundRobin {
			return errAt("round_robin_lb_config", "only applies to lb_policy ROUND_ROBIN, not %s", c.LBPolicy)
		}
		if c.SlowStart, err = decodeSlowStart(rr.GetSlowStartConfig()); err != nil {
			return at("round_robin_lb_config.slow_start_config", err)
		}
	}
	if rh := pb.GetRingHashLbConfig(); rh != nil {
		if c.LBPolicy != LBPolicyRingHash {
			return errAt("ring_hash_lb_config", "only applies to lb_policy RING_HASH, not %s", c.LBPolicy)
		}
		if c.RingHash, err = decodeRingHash(rh); err != nil {
			return at("ring_hash_lb_config", err)
		}
	}
	if mg := pb.GetMaglevLbConfig(); mg != nil {
		if c.LBPolicy != LBPolicyMaglev {
			return errAt("maglev_lb_config", "only applies to lb_policy MAGLEV, not %s", c.LBPolicy)
		}
		size := DefaultMaglev.TableSize
		if v := mg.GetTableSize(); v != nil {
			size = v.GetValue()
		}
		if size > MaxMaglevTableSize || !isPrime(size) {
			return errAt("maglev_lb_config.table_size", "must be a prime <= %d, got %d", MaxMaglevTableSize, size)
		}
		c.Maglev = &MaglevConfig{TableSize: size}
	}
	if cl := pb.GetCommonLbConfig(); cl != nil {
		c.CommonLB = &CommonLBConfig{HealthyPanicThreshold: DefaultPanicThreshold}
		if p := cl.GetHealthyPanicThreshold(); p != nil {
			v := p.GetValue()
			if !(v >= 0 && v <= 100) { // also refuses NaN
				return errAt("common_lb_config.healthy_panic_threshold.value", "must be 0-100, got %v", v)
			}
			c.CommonLB.HealthyPanicThreshold = uint32(v)
		}
		c.CommonLB.LocalityWeighted = cl.GetLocalityWeightedLbConfig() != nil
	}
	return nil
}

// decodeLeastRequest applies Envoy's defaults to a least_request_lb_config.
// active_request_bias.runtime_key is accepted and unused: with no runtime,
// default_value applies, as in Envoy when the key is not set. Errors are
// relative to the least_request_lb_config.
func decodeLeastRequest(pb *clusterv3.Cluster_LeastRequestLbConfig) (*LeastRequestConfig, error) {
	lr := DefaultLeastRequest
	if v := pb.GetChoiceCount(); v != nil {
		if v.GetValue() < 2 {
			return nil, errAt("choice_count", "must be >= 2, got %d", v.GetValue())
		}
		lr.ChoiceCount = v.GetValue()
	}
	if b := pb.GetActiveRequestBias(); b != nil {
		v := b.GetDefaultValue()
		if !(v >= 0) || math.IsInf(v, 1) {
			return nil, errAt("active_request_bias.default_value", "must be a finite number >= 0, got %v", v)
		}
		lr.ActiveRequestBias = v
	}
	return &lr, nil
}

// decodeSlowStart applies Envoy's defaults to a slow_start_config; nil
// (slow start off) when it is absent or has no slow_start_window.
// aggression.runtime_key is accepted and unused, as for
// active_request_bias; an aggression that is not a positive number falls
// back to 1, as Envoy's does. Errors are relative to it.
func decodeSlowStart(pb *clusterv3.Cluster_SlowStartConfig) (*SlowStartConfig, error) {
	if pb.GetSlowStartWindow() == nil {
		return nil, nil
	}
	ss := DefaultSlowStart
	var err error
	if ss.Window, err = duration(pb.GetSlowStartWindow(), 0); err != nil {
		return nil, at("slow_start_window", err)
	}
	if ss.Window == 0 {
		return nil, nil
	}
	if a := pb.GetAggression(); a != nil {
		if v := a.GetDefaultValue(); v > 0 && !math.IsInf(v, 1) {
			ss.Aggression = v
		}
	}
	if p := pb.GetMinWeightPercent(); p != nil {
		v := p.GetValue()
		if !(v >= 0 && v <= 100) {
			return nil, errAt("min_weight_percent.value", "must be 0-100, got %v", v)
		}
		ss.MinWeightPercent = v
	}
	return &ss, nil
}

// decodeRingHash applies Envoy's defaults to a ring_hash_lb_config. Errors
// are relative to it.
func decodeRingHash(pb *clusterv3.Cluster_RingHashLbConfig) (*RingHashConfig, error) {
	if f := pb.GetHashFunction(); f != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
		return nil, errAt("hash_function", "only XX_HASH is supported, got %s", f)
	}
	rh := DefaultRingHash
	if v := pb.GetMinimumRingSize(); v != nil {
		rh.MinimumRingSize = v.GetValue()
	}
	if v := pb.GetMaximumRingSize(); v != nil {
		rh.MaximumRingSize = v.GetValue()
	}
	switch {
	case rh.MinimumRingSize == 0:
		return nil, errAt("minimum_ring_size", "must be > 0")
	case rh.MaximumRingSize > MaxRingSize:
		return nil, errAt("maximum_ring_size", "must be <= %d, got %d", MaxRingSize, rh.MaximumRingSize)
	case rh.MinimumRingSize > rh.MaximumRingSize:
		return nil, errAt("minimum_ring_size", "%d is larger than maximum_ring_size %d", rh.MinimumRingSize, rh.MaximumRingSize)
	}
	return &rh, nil
}

// isPrime reports whether n is prime, by trial division (n is at most
// MaxMaglevTableSize).
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// decodeCircuitBreakers returns the DEFAULT priority thresholds, with
// Envoy's defaults for absent fields, or nil when there are none. As in
// Envoy, the first DEFAULT entry wins. HIGH priority thresholds are refused:
// no route can ask for that priority. track_remaining only adds statistics
// and is accepted. Errors are relative to the circuit_breakers.
func decodeCircuitBreakers(pb *clusterv3.CircuitBreakers) (*Thresholds, error) {
	var out *Thresholds
	for i, th := range pb.GetThresholds() {
		if p := th.GetPriority(); p != corev3.RoutingPriority_DEFAULT {
			return nil, errAt(idx("thresholds", i)+".priority", "only DEFAULT is supported, got %s", p)
		}
		if out != nil {
			continue
		}
		t := DefaultThresholds
		for _, f := range []struct {
			v   *wrapperspb.UInt32Value
			dst *uint32
		}{
			{th.GetMaxConnections(), &t.MaxConnections},
			{th.GetMaxPendingRequests(), &t.MaxPendingRequests},
			{th.GetMaxRequests(), &t.MaxRequests},
			{th.GetMaxRetries(), &t.MaxRetries},
		} {
			if f.v != nil {
				*f.dst = f.v.GetValue()
			}
		}
		if rb := th.GetRetryBudget(); rb != nil {
			b := DefaultRetryBudget
			if p := rb.GetBudgetPercent(); p != nil {
				v := p.GetValue()
				if !(v >= 0 && v <= 100) {
					return nil, errAt(idx("thresholds", i)+".retry_budget.budget_percent.value", "must be 0-100, got %v", v)
				}
				b.Percent = v
			}
			if v := rb.GetMinRetryConcurrency(); v != nil {
				b.MinConcurrency = v.GetValue()
			}
			t.RetryBudget = &b
		}
		out = &t
	}
	return out, nil
}

// decodeOutlierDetection applies Envoy's defaults to an outlier_detection.
// successful_active_health_check_uneject_host is accepted and unused: it
// only matters with active health checking, which the waypoint does not
// do. Errors are relative to the outlier_detection.
func decodeOutlierDetection(pb *clusterv3.OutlierDetection) (*OutlierDetection, error) {
	od := DefaultOutlierDetection
	for _, f := range []struct {
		name    string
		v       *wrapperspb.UInt32Value
		dst     *uint32
		percent bool
	}{
		{"consecutive_5xx", pb.GetConsecutive_5Xx(), &od.Consecutive5xx, false},
		{"consecutive_gateway_failure", pb.GetConsecutiveGatewayFailure(), &od.ConsecutiveGatewayFailure, false},
		{"consecutive_local_origin_failure", pb.GetConsecutiveLocalOriginFailure(), &od.ConsecutiveLocalOriginFailure, false},
		{"enforcing_consecutive_5xx", pb.GetEnforcingConsecutive_5Xx(), &od.EnforcingConsecutive5xx, true},
		{"enforcing_consecutive_gateway_failure", pb.GetEnforcingConsecutiveGatewayFailure(), &od.EnforcingConsecutiveGatewayFailure, true},
		{"enforcing_consecutive_local_origin_failure", pb.GetEnforcingConsecutiveLocalOriginFailure(), &od.EnforcingConsecutiveLocalOriginFailure, true},
		{"enforcing_success_rate", pb.GetEnforcingSuccessRate(), &od.EnforcingSuccessRate, true},
		{"enforcing_local_origin_success_rate", pb.GetEnforcingLocalOriginSuccessRate(), &od.EnforcingLocalOriginSuccessRate, true},
		{"success_rate_minimum_hosts", pb.GetSuccessRateMinimumHosts(), &od.SuccessRateMinimumHosts, false},
		{"success_rate_request_volume", pb.GetSuccessRateRequestVolume(), &od.SuccessRateRequestVolume, false},
		{"success_rate_stdev_factor", pb.GetSuccessRateStdevFactor(), &od.SuccessRateStdevFactor, false},
		{"enforcing_failure_percentage", pb.GetEnforcingFailurePercentage(), &od.EnforcingFailurePercentage, true},
		{"enforcing_failure_percentage_local_origin", pb.GetEnforcingFailurePercentageLocalOrigin(), &od.EnforcingFailurePercentageLocalOrigin, true},
		{"failure_percentage_threshold", pb.GetFailurePercentageThreshold(), &od.FailurePercentageThreshold, true},
		{"failure_percentage_minimum_hosts", pb.GetFailurePercentageMinimumHosts(), &od.FailurePercentageMinimumHosts, false},
		{"failure_percentage_request_volume", pb.GetFailurePercentageRequestVolume(), &od.FailurePercentageRequestVolume, false},
		{"max_ejection_percent", pb.GetMaxEjectionPercent(), &od.MaxEjectionPercent, true},
	} {
		if f.v == nil {
			continue
		}
		if f.percent && f.v.GetValue() > 100 {
			return nil, errAt(f.name, "must be a percentage (0-100), got %d", f.v.GetValue())
		}
		*f.dst = f.v.GetValue()
	}
	od.SplitExternalLocalOriginErrors = pb.GetSplitExternalLocalOriginErrors()
	od.AlwaysEjectOneHost = pb.GetAlwaysEjectOneHost().GetValue()

	var err error
	for _, f := range []struct {
		name string
		v    *durationpb.Duration
		dst  *time.Duration
	}{
		{"interval", pb.GetInterval(), &od.Interval},
		{"base_ejection_time", pb.GetBaseEjectionTime(), &od.BaseEjectionTime},
		{"max_ejection_time_jitter", pb.GetMaxEjectionTimeJitter(), &od.MaxEjectionTimeJitter},
	} {
		if *f.dst, err = duration(f.v, *f.dst); err != nil {
			return nil, at(f.name, err)
		}
	}
	if od.Interval == 0 {
		return nil, errAt("interval", "must be > 0")
	}
	if od.BaseEjectionTime == 0 {
		return nil, errAt("base_ejection_time", "must be > 0")
	}
	if od.MaxEjectionTime, err = duration(pb.GetMaxEjectionTime(), max(DefaultOutlierDetection.MaxEjectionTime, od.BaseEjectionTime)); err != nil {
		return nil, at("max_ejection_time", err)
	}
	if od.MaxEjectionTime < od.BaseEjectionTime {
		return nil, errAt("max_ejection_time", "%v is smaller than base_ejection_time %v", od.MaxEjectionTime, od.BaseEjectionTime)
	}
	return &od, nil
}

// httpProtocolOptionsKey is the typed_extension_protocol_options key (and
// message name) of the upstream HTTP options, the only one supported.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// protocolOptionsAllowlist checks the HttpProtocolOptions unpacked from a
// typed_extension_protocol_options Any. It is apart from allowlist because
// an Any's contents are checked by the decoder that unpacks them, so these
// types are not reachable from the decoded roots.
var protocolOptionsAllowlist = pbcheck.Allowlist{
	httpProtocolOptionsKey: fields("common_http_protocol_options", "explicit_http_config", "use_downstream_protocol_config",
		"upstream_http_protocol_options"),
	"envoy.config.core.v3.UpstreamHttpProtocolOptions":                               fields("auto_sni", "auto_san_validation"),
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig":      fields("http_protocol_options", "http2_protocol_options"),
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig": fields("http_protocol_options", "http2_protocol_options"),
	"envoy.config.core.v3.HttpProtocolOptions":                                       fields("idle_timeout", "max_requests_per_connection", "max_stream_duration", "max_connection_duration"),
	"envoy.config.core.v3.Http1ProtocolOptions":                                      fields(),
	"envoy.config.core.v3.Http2ProtocolOptions": fields("allow_connect", "max_concurrent_streams",
		"initial_stream_window_size", "initial_connection_window_size"),
}

// decodeProtocolOptions decodes typed_extension_protocol_options into c's
// UpstreamProtocol, HTTP2 and HTTP. Errors are relative to the cluster.
func decodeProtocolOptions(opts map[string]*anypb.Any, c *Cluster) error {
	keys := slices.Sorted(maps.Keys(opts))
	for _, k := range keys {
		path := key("typed_extension_protocol_options", k)
		a := opts[k]
		var pb httpv3.HttpProtocolOptions
		if k != httpProtocolOptionsKey || a.MessageName() != nameOf(&pb) {
			return errAt(path, "unsupported protocol options (%s); only %s is supported", a.GetTypeUrl(), httpProtocolOptionsKey)
		}
		if err := proto.Unmarshal(a.GetValue(), &pb); err != nil {
			return at(path, fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err))
		}
		if err := protocolOptionsAllowlist.Check(pb.ProtoReflect()); err != nil {
			return at(path, err)
		}
		if err := validate(&pb); err != nil {
			return at(path, err)
		}
		if err := decodeHTTPProtocolOptions(&pb, c); err != nil {
			return at(path, err)
		}
	}
	return nil
}

// decodeHTTPProtocolOptions decodes a validated HttpProtocolOptions into c.
// Errors are relative to it.
func decodeHTTPProtocolOptions(pb *httpv3.HttpProtocolOptions, c *Cluster) error {
	var h2 *corev3.Http2ProtocolOptions
	switch {
	case pb.GetExplicitHttpConfig() != nil:
		if h2 = pb.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); h2 != nil {
			c.UpstreamProtocol = UpstreamHTTP2
		} else {
			c.UpstreamProtocol = UpstreamHTTP1
		}
	case pb.GetUseDownstreamProtocolConfig() != nil:
		c.UpstreamProtocol = UpstreamUseDownstream
		h2 = pb.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions()
	}
	if h2 != nil {
		o := DefaultHTTP2
		o.AllowConnect = h2.GetAllowConnect()
		if v := h2.GetMaxConcurrentStreams(); v != nil {
			o.MaxConcurrentStreams = v.GetValue()
		}
		if v := h2.GetInitialStreamWindowSize(); v != nil {
			o.InitialStreamWindowSize = v.GetValue()
		}
		if v := h2.GetInitialConnectionWindowSize(); v != nil {
			o.InitialConnectionWindowSize = v.GetValue()
		}
		c.HTTP2 = &o
	}
	if u := pb.GetUpstreamHttpProtocolOptions(); u != nil {
		c.AutoSNI, c.AutoSANValidation = u.GetAutoSni(), u.GetAutoSanValidation()
	}
	if common := pb.GetCommonHttpProtocolOptions(); common != nil {
		o := DefaultHTTP
		var err error
		if o.IdleTimeout, err = duration(common.GetIdleTimeout(), o.IdleTimeout); err != nil {
			return at("common_http_protocol_options.idle_timeout", err)
		}
		if o.MaxStreamDuration, err = duration(common.GetMaxStreamDuration(), 0); err != nil {
			return at("common_http_protocol_options.max_stream_duration", err)
		}
		if o.MaxConnectionDuration, err = duration(common.GetMaxConnectionDuration(), 0); err != nil {
			return at("common_http_protocol_options.max_connection_duration", err)
		}
		o.MaxRequestsPerConnection = common.GetMaxRequestsPerConnection().GetValue()
		c.HTTP = &o
	}
	return nil
}

package xds

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"
)

// decodeClusterYAML decodes one cluster written in YAML (or JSON), with
// no EDS resources.
func decodeClusterYAML(t *testing.T, y string) (*Cluster, error) {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	var pb clusterv3.Cluster
	if err := protojson.Unmarshal(js, &pb); err != nil {
		t.Fatalf("protojson: %v\n%s", err, js)
	}
	return decodeCluster(&pb, nil)
}

// httpOpts is a typed_extension_protocol_options entry holding body.
func httpOpts(body string) string {
	return `typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, ` + body + `}}`
}

// istiodOutbound is istiod's outbound|9090||reviews.mesh.local cluster
// (../../shared/istiod/reviews/clusters.json) less the fields the waypoint
// does not implement yet (transport_socket_matches, filters).
const istiodOutbound = `{"name": "outbound|9090||reviews.mesh.local", "altStatName": "outbound|9090||reviews.mesh.local;", "type": "EDS",
  "edsClusterConfig": {"edsConfig": {"ads": {}, "initialFetchTimeout": "0s", "resourceApiVersion": "V3"}, "serviceName": "outbound|9090||reviews.mesh.local"},
  "connectTimeout": "10s", "lbPolicy": "LEAST_REQUEST",
  "circuitBreakers": {"thresholds": [{"maxConnections": 4294967295, "maxPendingRequests": 4294967295, "maxRequests": 4294967295, "maxRetries": 4294967295}]},
  "typedExtensionProtocolOptions": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {"@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicitHttpConfig": {"http2ProtocolOptions": {}}}},
  "commonLbConfig": {"healthyPanicThreshold": {}}}`

func TestDecodeClusterBalancing(t *testing.T) {
	unlimited := Thresholds{MaxConnections: UnlimitedThreshold, MaxPendingRequests: UnlimitedThreshold,
		MaxRequests: UnlimitedThreshold, MaxRetries: UnlimitedThreshold}
	od := func(f func(*OutlierDetection)) *OutlierDetection {
		o := DefaultOutlierDetection
		if f != nil {
			f(&o)
		}
		return &o
	}
	h2 := func(f func(*HTTP2Options)) *HTTP2Options {
		o := DefaultHTTP2
		if f != nil {
			f(&o)
		}
		return &o
	}
	base := func(f func(*Cluster)) *Cluster {
		c := &Cluster{Name: "c", ConnectTimeout: defaultConnectTimeout}
		f(c)
		return c
	}

	tests := []struct {
		name string
		yaml string
		want *Cluster
	}{
		{
			name: "istiod outbound cluster",
			yaml: istiodOutbound,
			want: &Cluster{
				Name:             "outbound|9090||reviews.mesh.local",
				ConnectTimeout:   10 * time.Second,
				LBPolicy:         LBPolicyLeastRequest,
				CommonLB:         &CommonLBConfig{HealthyPanicThreshold: 0},
				CircuitBreakers:  &unlimited,
				UpstreamProtocol: UpstreamHTTP2,
				HTTP2:            h2(nil),
			},
		},
		{
			name: "istiod connect_originate protocol options",
			yaml: `{name: c, ` + httpOpts(`common_http_protocol_options: {idle_timeout: 3600s}, explicit_http_config: {http2_protocol_options: {allow_connect: true}}`) + `}`,
			want: base(func(c *Cluster) {
				c.UpstreamProtocol = UpstreamHTTP2
				c.HTTP2 = h2(func(o *HTTP2Options) { o.AllowConnect = true })
				c.HTTP = &HTTPOptions{IdleTimeout: time.Hour}
			}),
		},
		{
			name: "common HTTP options",
			yaml: `{name: c, ` + httpOpts(`common_http_protocol_options: {idle_timeout: 0s, max_requests_per_connection: 1, max_stream_duration: 2s, max_connection_duration: 3600s}, explicit_http_config: {http_protocol_options: {}}`) + `}`,
			want: base(func(c *Cluster) {
				c.HTTP = &HTTPOptions{MaxRequestsPerConnection: 1, MaxStreamDuration: 2 * time.Second, MaxConnectionDuration: time.Hour}
			}),
		},
		{
			name: "HTTP/2 windows and streams",
			yaml: `{name: c, ` + httpOpts(`explicit_http_config: {http2_protocol_options: {max_concurrent_streams: 100, initial_stream_window_size: 65535, initial_connection_window_size: 1048576}}`) + `}`,
			want: base(func(c *Cluster) {
				c.UpstreamProtocol = UpstreamHTTP2
				c.HTTP2 = &HTTP2Options{MaxConcurrentStreams: 100, InitialStreamWindowSize: 65535, InitialConnectionWindowSize: 1 << 20}
			}),
		},
		{
			name: "use downstream protocol",
			yaml: `{name: c, ` + httpOpts(`use_downstream_protocol_config: {http_protocol_options: {}, http2_protocol_options: {max_concurrent_streams: 7}}`) + `}`,
			want: base(func(c *Cluster) {
				c.UpstreamProtocol = UpstreamUseDownstream
				c.HTTP2 = h2(func(o *HTTP2Options) { o.MaxConcurrentStreams = 7 })
			}),
		},
		{
			name: "use downstream protocol without HTTP/2 options",
			yaml: `{name: c, ` + httpOpts(`use_downstream_protocol_config: {}`) + `}`,
			want: base(func(c *Cluster) { c.UpstreamProtocol = UpstreamUseDownstream }),
		},
		{
			name: "least request config",
			yaml: `{name: c, lb_policy: LEAST_REQUEST, least_request_lb_config: {choice_count: 3, active_request_bias: {default_value: 0.5, runtime_key: lr.bias}}}`,
			want: base(func(c *Cluster) {
				c.LBPolicy = LBPolicyLeastRequest
				c.LeastRequest = &LeastRequestConfig{ChoiceCount: 3, ActiveRequestBias: 0.5}
			}),
		},
		{
			name: "least request config defaults",
			yaml: `{name: c, lb_policy: LEAST_REQUEST, least_request_lb_config: {}}`,
			want: base(func(c *Cluster) {
				c.LBPolicy = LBPolicyLeastRequest
				c.LeastRequest = &LeastRequestConfig{ChoiceCount: 2, ActiveRequestBias: 1}
			}),
		},
		{
			name: "ring hash sizes",
			yaml: `{name: c, lb_policy: RING_HASH, ring_hash_lb_config: {minimum_ring_size: 16, maximum_ring_size: 4096, hash_function: XX_HASH}}`,
			want: base(func(c *Cluster) {
				c.LBPolicy = LBPolicyRingHash
				c.RingHash = &RingHashConfig{MinimumRingSize: 16, MaximumRingSize: 4096}
			}),
		},
		{
			name: "ring hash defaults",
			yaml: `{name: c, lb_policy: RING_HASH, ring_hash_lb_config: {}}`,
			want: base(func(c *Cluster) {
				c.LBPolicy = LBPolicyRingHash
				c.RingHash = &RingHashConfig{MinimumRingSize: 1024, MaximumRingSize: 8388608}
			}),
		},
		{
			name: "maglev table size",
			yaml: `{name: c, lb_policy: MAGLEV, maglev_lb_config: {table_size: 5000011}}`,
			want: base(func(c *Cluster) {
				c.LBPolicy = LBPolicyMaglev
				c.Maglev = &MaglevConfig{TableSize: 5000011}
			}),
		},
		{
			name: "panic threshold truncated",
			yaml: `{name: c, common_lb_config: {healthy_panic_threshold: {value: 33.9}}}`,
			want: base(func(c *Cluster) { c.CommonLB = &CommonLBConfig{HealthyPanicThreshold: 33} }),
		},
		{
			name: "common_lb_config without a threshold keeps the default",
			yaml: `{name: c, common_lb_config: {}}`,
			want: base(func(c *Cluster) { c.CommonLB = &CommonLBConfig{HealthyPanicThreshold: 50} }),
		},
		{
			name: "circuit breakers: defaults fill in, the first DEFAULT entry wins",
			yaml: `{name: c, circuit_breakers: {thresholds: [{max_requests: 10, track_remaining: true}, {priority: DEFAULT, max_requests: 20}]}}`,
			want: base(func(c *Cluster) {
				c.CircuitBreakers = &Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 10, MaxRetries: 3}
			}),
		},
		{
			name: "circuit breakers with zeros",
			yaml: `{name: c, circuit_breakers: {thresholds: [{max_connections: 0, max_pending_requests: 0, max_requests: 0, max_retries: 0}]}}`,
			want: base(func(c *Cluster) { c.CircuitBreakers = &Thresholds{} }),
		},
		{
			name: "retry budget as istiod writes it",
			yaml: `{name: c, circuit_breakers: {thresholds: [{max_retries: 4294967295, retry_budget: {budget_percent: {value: 25}, min_retry_concurrency: 5}}]}}`,
			want: base(func(c *Cluster) {
				c.CircuitBreakers = &Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: UnlimitedThreshold,
					RetryBudget: &RetryBudget{Percent: 25, MinConcurrency: 5}}
			}),
		},
		{
			name: "retry budget defaults",
			yaml: `{name: c, circuit_breakers: {thresholds: [{retry_budget: {}}]}}`,
			want: base(func(c *Cluster) {
				c.CircuitBreakers = &Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3,
					RetryBudget: &RetryBudget{Percent: 20, MinConcurrency: 3}}
			}),
		},
		{
			name: "slow start on round robin, as istiod writes warmupDurationSecs",
			yaml: `{name: c, round_robin_lb_config: {slow_start_config: {slow_start_window: 30s}}}`,
			want: base(func(c *Cluster) {
				c.SlowStart = &SlowStartConfig{Window: 30 * time.Second, Aggression: 1, MinWeightPercent: 10}
			}),
		},
		{
			name: "slow start on least request with aggression and minimum weight",
			yaml: `{name: c, lb_policy: LEAST_REQUEST, least_request_lb_config: {slow_start_config: {slow_start_window: 10s, aggression: {default_value: 2, runtime_key: k}, min_weight_percent: {value: 25}}}}`,
			want: base(func(c *Cluster) {
				c.LBPolicy = LBPolicyLeastRequest
				c.LeastRequest = &LeastRequestConfig{ChoiceCount: 2, ActiveRequestBias: 1}
				c.SlowStart = &SlowStartConfig{Window: 10 * time.Second, Aggression: 2, MinWeightPercent: 25}
			}),
		},
		{
			name: "slow start without a window is off",
			yaml: `{name: c, round_robin_lb_config: {slow_start_config: {aggression: {default_value: 2, runtime_key: k}}}}`,
			want: base(func(*Cluster) {}),
		},
		{
			name: "an aggression Envoy falls back from",
			yaml: `{name: c, round_robin_lb_config: {slow_start_config: {slow_start_window: 5s, aggression: {default_value: -1, runtime_key: k}}}}`,
			want: base(func(c *Cluster) {
				c.SlowStart = &SlowStartConfig{Window: 5 * time.Second, Aggression: 1, MinWeightPercent: 10}
			}),
		},
		{
			name: "TCP keep-alive",
			yaml: `{name: c, upstream_connection_options: {tcp_keepalive: {keepalive_probes: 9, keepalive_time: 7200, keepalive_interval: 75}}}`,
			want: base(func(c *Cluster) {
				c.TCPKeepalive = &TCPKeepalive{Probes: 9, Time: 7200 * time.Second, Interval: 75 * time.Second}
			}),
		},
		{
			name: "TCP keep-alive with the system's values",
			yaml: `{name: c, upstream_connection_options: {tcp_keepalive: {}}}`,
			want: base(func(c *Cluster) { c.TCPKeepalive = &TCPKeepalive{} }),
		},
		{
			name: "empty circuit breakers",
			yaml: `{name: c, circuit_breakers: {}}`,
			want: base(func(*Cluster) {}),
		},
		{
			name: "outlier detection defaults",
			yaml: `{name: c, outlier_detection: {}}`,
			want: base(func(c *Cluster) { c.OutlierDetection = od(nil) }),
		},
		{
			name: "outlier detection as istiod writes it",
			yaml: `{name: c, outlier_detection: {consecutive_5xx: 3, enforcing_consecutive_5xx: 100, consecutive_gateway_failure: 2,
  enforcing_consecutive_gateway_failure: 100, interval: 1s, base_ejection_time: 5s, max_ejection_percent: 50,
  enforcing_success_rate: 0, split_external_local_origin_errors: true, consecutive_local_origin_failure: 4,
  enforcing_consecutive_local_origin_failure: 100, enforcing_local_origin_success_rate: 0},
  common_lb_config: {healthy_panic_threshold: {value: 20}}}`,
			want: base(func(c *Cluster) {
				c.CommonLB = &CommonLBConfig{HealthyPanicThreshold: 20}
				c.OutlierDetection = od(func(o *OutlierDetection) {
					o.Consecutive5xx = 3
					o.ConsecutiveGatewayFailure = 2
					o.EnforcingConsecutiveGatewayFailure = 100
					o.Interval = time.Second
					o.BaseEjectionTime = 5 * time.Second
					o.MaxEjectionPercent = 50
					o.EnforcingSuccessRate = 0
					o.SplitExternalLocalOriginErrors = true
					o.ConsecutiveLocalOriginFailure = 4
					o.EnforcingLocalOriginSuccessRate = 0
				})
			}),
		},
		{
			name: "outlier detection success rate, failure percentage and jitter",
			yaml: `{name: c, outlier_detection: {success_rate_minimum_hosts: 3, success_rate_request_volume: 10, success_rate_stdev_factor: 1000,
  failure_percentage_threshold: 50, enforcing_failure_percentage: 100, enforcing_failure_percentage_local_origin: 10,
  failure_percentage_minimum_hosts: 2, failure_percentage_request_volume: 20, max_ejection_time: 60s, max_ejection_time_jitter: 1s,
  always_eject_one_host: true, successful_active_health_check_uneject_host: false}}`,
			want: base(func(c *Cluster) {
				c.OutlierDetection = od(func(o *OutlierDetection) {
					o.SuccessRateMinimumHosts = 3
					o.SuccessRateRequestVolume = 10
					o.SuccessRateStdevFactor = 1000
					o.FailurePercentageThreshold = 50
					o.EnforcingFailurePercentage = 100
					o.EnforcingFailurePercentageLocalOrigin = 10
					o.FailurePercentageMinimumHosts = 2
					o.FailurePercentageRequestVolume = 20
					o.MaxEjectionTime = time.Minute
					o.MaxEjectionTimeJitter = time.Second
					o.AlwaysEjectOneHost = true
				})
			}),
		},
		{
			name: "max_ejection_time defaults to base_ejection_time when that is longer",
			yaml: `{name: c, outlier_detection: {base_ejection_time: 400s}}`,
			want: base(func(c *Cluster) {
				c.OutlierDetection = od(func(o *OutlierDetection) {
					o.BaseEjectionTime = 400 * time.Second
					o.MaxEjectionTime = 400 * time.Second
				})
			}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeClusterYAML(t, tc.yaml)
			if err != nil {
				t.Fatalf("decodeCluster: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpOpts); diff != "" {
				t.Errorf("cluster (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeClusterBalancingErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // the whole error, or a part of it when it ends in "..."
	}{
		{"choice_count below 2", `{name: c, lb_policy: LEAST_REQUEST, least_request_lb_config: {choice_count: 1}}`,
			`least_request_lb_config.choice_count: must be >= 2, got 1`},
		{"negative active_request_bias", `{name: c, lb_policy: LEAST_REQUEST, least_request_lb_config: {active_request_bias: {default_value: -1, runtime_key: k}}}`,
			`least_request_lb_config.active_request_bias.default_value: must be a finite number >= 0, got -1`},
		{"slow start min_weight_percent over 100", `{name: c, lb_policy: LEAST_REQUEST, least_request_lb_config: {slow_start_config: {slow_start_window: 1s, min_weight_percent: {value: 101}}}}`,
			`least_request_lb_config.slow_start_config.min_weight_percent.value: must be 0-100, got 101`},
		{"negative slow start window", `{name: c, round_robin_lb_config: {slow_start_config: {slow_start_window: -1s}}}`,
			`round_robin_lb_config.slow_start_config.slow_start_window: must not be negative, got -1s`},
		{"round robin config on another policy", `{name: c, lb_policy: LEAST_REQUEST, round_robin_lb_config: {}}`,
			`round_robin_lb_config: only applies to lb_policy ROUND_ROBIN, not LEAST_REQUEST`},
		{"happy eyeballs", `{name: c, upstream_connection_options: {happy_eyeballs_config: {}}}`,
			`upstream_connection_options.happy_eyeballs_config: not supported yet`},
		{"least request config on another policy", `{name: c, least_request_lb_config: {}}`,
			`least_request_lb_config: only applies to lb_policy LEAST_REQUEST, not ROUND_ROBIN`},
		{"ring sizes inverted", `{name: c, lb_policy: RING_HASH, ring_hash_lb_config: {minimum_ring_size: 2048, maximum_ring_size: 1024}}`,
			`ring_hash_lb_config.minimum_ring_size: 2048 is larger than maximum_ring_size 1024`},
		{"minimum ring size above the default maximum", `{name: c, lb_policy: RING_HASH, ring_hash_lb_config: {minimum_ring_size: 8388609}}`,
			`ring_hash_lb_config.minimum_ring_size: 8388609 is larger than maximum_ring_size 8388608`},
		{"ring too large", `{name: c, lb_policy: RING_HASH, ring_hash_lb_config: {maximum_ring_size: 8388609}}`,
			`ring_hash_lb_config.maximum_ring_size: must be <= 8388608, got 8388609`},
		{"empty ring", `{name: c, lb_policy: RING_HASH, ring_hash_lb_config: {minimum_ring_size: 0}}`,
			`ring_hash_lb_config.minimum_ring_size: must be > 0`},
		{"murmur hash", `{name: c, lb_policy: RING_HASH, ring_hash_lb_config: {hash_function: MURMUR_HASH_2}}`,
			`ring_hash_lb_config.hash_function: only XX_HASH is supported, got MURMUR_HASH_2`},
		{"ring hash config on maglev", `{name: c, lb_policy: MAGLEV, ring_hash_lb_config: {}}`,
			`ring_hash_lb_config: only applies to lb_policy RING_HASH, not MAGLEV`},
		{"maglev table not prime", `{name: c, lb_policy: MAGLEV, maglev_lb_config: {table_size: 65536}}`,
			`maglev_lb_config.table_size: must be a prime <= 5000011, got 65536`},
		{"maglev table too large", `{name: c, lb_policy: MAGLEV, maglev_lb_config: {table_size: 5000101}}`,
			`maglev_lb_config.table_size: must be a prime <= 5000011, got 5000101`},
		{"maglev config on ring hash", `{name: c, lb_policy: RING_HASH, maglev_lb_config: {}}`,
			`maglev_lb_config: only applies to lb_policy MAGLEV, not RING_HASH`},
		{"panic threshold over 100", `{name: c, common_lb_config: {healthy_panic_threshold: {value: 150}}}`,
			`common_lb_config.healthy_panic_threshold.value: must be 0-100, got 150`},
		{"zone aware balancing", `{name: c, common_lb_config: {zone_aware_lb_config: {}}}`,
			`common_lb_config.zone_aware_lb_config: not supported yet`},
		{"HIGH priority thresholds", `{name: c, circuit_breakers: {thresholds: [{max_requests: 1}, {priority: HIGH, max_requests: 2}]}}`,
			`circuit_breakers.thresholds[1].priority: only DEFAULT is supported, got HIGH`},
		{"per-host thresholds", `{name: c, circuit_breakers: {per_host_thresholds: [{max_connections: 1}]}}`,
			`circuit_breakers.per_host_thresholds: not supported yet`},
		{"retry budget over 100%", `{name: c, circuit_breakers: {thresholds: [{retry_budget: {budget_percent: {value: 120}}}]}}`,
			`circuit_breakers.thresholds[0].retry_budget.budget_percent.value: must be 0-100, got 120`},
		{"enforcing percentage over 100", `{name: c, outlier_detection: {enforcing_consecutive_5xx: 101}}`,
			`outlier_detection.enforcing_consecutive_5xx: must be a percentage (0-100), got 101`},
		{"max_ejection_percent over 100", `{name: c, outlier_detection: {max_ejection_percent: 101}}`,
			`outlier_detection.max_ejection_percent: must be a percentage (0-100), got 101`},
		{"failure_percentage_threshold over 100", `{name: c, outlier_detection: {failure_percentage_threshold: 200}}`,
			`outlier_detection.failure_percentage_threshold: must be a percentage (0-100), got 200`},
		{"zero interval", `{name: c, outlier_detection: {interval: 0s}}`,
			`outlier_detection.interval: must be > 0`},
		{"zero base ejection time", `{name: c, outlier_detection: {base_ejection_time: 0s}}`,
			`outlier_detection.base_ejection_time: must be > 0`},
		{"negative jitter", `{name: c, outlier_detection: {max_ejection_time_jitter: -1s}}`,
			`outlier_detection.max_ejection_time_jitter: must not be negative, got -1s`},
		{"max ejection time below base", `{name: c, outlier_detection: {base_ejection_time: 60s, max_ejection_time: 30s}}`,
			`outlier_detection.max_ejection_time: 30s is smaller than base_ejection_time 1m0s`},
		{"outlier monitors", `{name: c, outlier_detection: {monitors: [{name: m}]}}`,
			`outlier_detection.monitors: not supported yet`},
		{"degraded hosts", `{name: c, outlier_detection: {detect_degraded_hosts: true}}`,
			`outlier_detection.detect_degraded_hosts: not supported yet`},
		{"other protocol options", `{name: c, typed_extension_protocol_options: {raw: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}}`,
			`typed_extension_protocol_options["raw"]: unsupported protocol options (type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer); only envoy.extensions.upstreams.http.v3.HttpProtocolOptions is supported`},
		{"HTTP options under another key", `{name: c, typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.Other: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http_protocol_options: {}}}}}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.Other"]: unsupported protocol options (type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions); only envoy.extensions.upstreams.http.v3.HttpProtocolOptions is supported`},
		{"no upstream protocol", `{name: c, ` + httpOpts(`common_http_protocol_options: {idle_timeout: 1s}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]: invalid HttpProtocolOptions.UpstreamProtocolOptions: value is required`},
		{"auto config", `{name: c, ` + httpOpts(`auto_config: {}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].auto_config: not supported yet`},
		{"HTTP/3", `{name: c, ` + httpOpts(`explicit_http_config: {http3_protocol_options: {}}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http3_protocol_options: not supported yet`},
		{"unimplemented HTTP/2 option", `{name: c, ` + httpOpts(`explicit_http_config: {http2_protocol_options: {hpack_table_size: 0}}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http2_protocol_options.hpack_table_size: not supported yet`},
		{"unimplemented HTTP/1 option", `{name: c, ` + httpOpts(`explicit_http_config: {http_protocol_options: {accept_http_10: true}}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http_protocol_options.accept_http_10: not supported yet`},
		{"zero max_concurrent_streams", `{name: c, ` + httpOpts(`explicit_http_config: {http2_protocol_options: {max_concurrent_streams: 0}}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]: invalid HttpProtocolOptions.ExplicitHttpConfig: embedded message failed validation | caused by: invalid HttpProtocolOptions_ExplicitHttpConfig.Http2ProtocolOptions: embedded message failed validation | caused by: invalid Http2ProtocolOptions.MaxConcurrentStreams: value must be inside range [1, 2147483647]`},
		{"negative idle timeout", `{name: c, ` + httpOpts(`common_http_protocol_options: {idle_timeout: -1s}, explicit_http_config: {http_protocol_options: {}}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].common_http_protocol_options.idle_timeout: must not be negative, got -1s`},
		{"unimplemented common option", `{name: c, ` + httpOpts(`common_http_protocol_options: {max_headers_count: 10}, explicit_http_config: {http_protocol_options: {}}`) + `}`,
			`typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].common_http_protocol_options.max_headers_count: not supported yet`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeClusterYAML(t, tc.yaml)
			if err == nil {
				t.Fatalf("decodeCluster succeeded, want error %q", tc.want)
			}
			if !errorMatches(err.Error(), tc.want) {
				t.Errorf("decodeCluster error:\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestClusterOrDefault(t *testing.T) {
	var zero Cluster
	if got := zero.LeastRequestOrDefault(); got != (LeastRequestConfig{ChoiceCount: 2, ActiveRequestBias: 1}) {
		t.Errorf("LeastRequestOrDefault = %+v", got)
	}
	if got := zero.RingHashOrDefault(); got != (RingHashConfig{MinimumRingSize: 1024, MaximumRingSize: 8 << 20}) {
		t.Errorf("RingHashOrDefault = %+v", got)
	}
	if got := zero.MaglevOrDefault(); got.TableSize != 65537 {
		t.Errorf("MaglevOrDefault = %+v", got)
	}
	if got := zero.PanicThreshold(); got != 50 {
		t.Errorf("PanicThreshold = %d", got)
	}
	if got := zero.ThresholdsOrDefault(); got != (Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}) {
		t.Errorf("ThresholdsOrDefault = %+v", got)
	}
	if got := zero.HTTP2OrDefault(); got != (HTTP2Options{MaxConcurrentStreams: 1<<31 - 1, InitialStreamWindowSize: 1 << 28, InitialConnectionWindowSize: 1 << 28}) {
		t.Errorf("HTTP2OrDefault = %+v", got)
	}
	if got := zero.HTTPOrDefault(); got != (HTTPOptions{IdleTimeout: time.Hour}) {
		t.Errorf("HTTPOrDefault = %+v", got)
	}
	set := Cluster{
		LeastRequest:    &LeastRequestConfig{ChoiceCount: 5},
		CommonLB:        &CommonLBConfig{},
		CircuitBreakers: &Thresholds{MaxRequests: 1},
	}
	if set.LeastRequestOrDefault().ChoiceCount != 5 || set.PanicThreshold() != 0 || set.ThresholdsOrDefault().MaxRequests != 1 {
		t.Errorf("OrDefault ignored the decoded values")
	}
}

// TestProtocolOptionsAllowlistIsConsistent checks the allowlist of the
// unpacked HttpProtocolOptions as TestAllowlistIsConsistent does the main one.
func TestProtocolOptionsAllowlistIsConsistent(t *testing.T) {
	root := []protoreflect.MessageDescriptor{(&httpv3.HttpProtocolOptions{}).ProtoReflect().Descriptor()}
	for _, err := range protocolOptionsAllowlist.Verify(root...) {
		t.Error(err)
	}
}

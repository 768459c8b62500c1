package xds

import "github.com/gowaypoint/waypoint/internal/pbcheck"

// fields builds the field set of one message type; see pbcheck.F.
var fields = pbcheck.F

// allowlist names, for every message type the decoder accepts, the fields it
// implements. A populated field not listed here is an error. To support a new
// field: implement it in the decoder, then list it here. Messages of the
// google.protobuf package (Duration, wrappers, Any, Struct) are leaves; the
// contents of an Any are checked by the decoder that unpacks it.
var allowlist = pbcheck.Allowlist{
	// Bootstrap.
	"envoy.config.bootstrap.v3.Bootstrap":                  fields("node*", "admin", "static_resources", "dynamic_resources"),
	"envoy.config.bootstrap.v3.Bootstrap.DynamicResources": fields("lds_config", "cds_config", "ads_config"),
	"envoy.config.core.v3.ApiConfigSource": fields("api_type", "transport_api_version", "grpc_services",
		"set_node_on_first_message_only"),
	"envoy.config.core.v3.GrpcService":                    fields("envoy_grpc", "initial_metadata"),
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":          fields("cluster_name"),
	"envoy.config.bootstrap.v3.Bootstrap.StaticResources": fields("listeners", "clusters"),
	"envoy.config.bootstrap.v3.Admin":                     fields("address"),

	// Addresses.
	"envoy.config.core.v3.Address":              fields("socket_address", "envoy_internal_address"),
	"envoy.config.core.v3.EnvoyInternalAddress": fields("server_listener_name", "endpoint_id"),
	"envoy.config.core.v3.SocketAddress":        fields("address", "port_value"),
	"envoy.config.core.v3.CidrRange":            fields("address_prefix", "prefix_len"),
	"xds.core.v3.CidrRange":                     fields("address_prefix", "prefix_len"),

	// Listener.
	"envoy.config.listener.v3.Listener": fields("name", "address", "internal_listener",
		"filter_chains", "default_filter_chain", "filter_chain_matcher", "listener_filters",
		"use_original_dst", "stat_prefix", "traffic_direction", "metadata*", "connection_balance_config",
		"access_log*"), // checked by telemetry/accesslog; written for Dubbo calls only (listener_decode.go)
	"envoy.config.listener.v3.Listener.ConnectionBalanceConfig":              fields("exact_balance"),
	"envoy.config.listener.v3.Listener.ConnectionBalanceConfig.ExactBalance": fields(),
	"envoy.config.listener.v3.Listener.InternalListenerConfig":               fields(),
	"envoy.config.listener.v3.FilterChain":                                   fields("name", "filter_chain_match", "filters", "metadata*", "transport_socket"),
	"envoy.config.listener.v3.FilterChainMatch":                              fields("destination_port", "prefix_ranges"),
	"envoy.config.listener.v3.Filter":                                        fields("name", "typed_config"),
	"envoy.config.listener.v3.ListenerFilter":                                fields("name", "typed_config", "filter_disabled"),
	"envoy.config.listener.v3.ListenerFilterChainMatchPredicate": fields("or_match", "and_match", "not_match",
		"any_match", "destination_port_range"),
	"envoy.config.listener.v3.ListenerFilterChainMatchPredicate.MatchSet": fields("rules"),
	"envoy.type.v3.Int32Range": fields("start", "end"),
	"envoy.extensions.filters.listener.http_inspector.v3.HttpInspector":           fields(),
	"envoy.extensions.filters.listener.original_dst.v3.OriginalDst":               fields(),
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":                      fields("stat_prefix", "cluster", "idle_timeout", "tunneling_config", "access_log*"),
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.TunnelingConfig":      fields("hostname", "headers_to_add"),
	"envoy.config.core.v3.HeaderValueOption":                                      fields("header", "append_action"),
	"envoy.config.core.v3.HeaderValue":                                            fields("key", "value"),
	"envoy.extensions.matching.common_inputs.network.v3.ApplicationProtocolInput": fields(),
	"envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput":       fields(),
	"envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput":     fields(),
	"envoy.extensions.matching.common_inputs.network.v3.SourceIPInput":            fields(),
	"envoy.extensions.matching.common_inputs.network.v3.SourcePortInput":          fields(),
	"envoy.extensions.matching.input_matchers.ip.v3.Ip":                           fields("cidr_ranges", "stat_prefix"),

	// The generic matcher (filter_chain_matcher).
	"xds.type.matcher.v3.Matcher":                                       fields("matcher_list", "matcher_tree", "on_no_match"),
	"xds.type.matcher.v3.Matcher.OnMatch":                               fields("matcher", "action"),
	"xds.type.matcher.v3.Matcher.MatcherList":                           fields("matchers"),
	"xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher":              fields("predicate", "on_match"),
	"xds.type.matcher.v3.Matcher.MatcherList.Predicate":                 fields("single_predicate", "or_matcher", "and_matcher", "not_matcher"),
	"xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate": fields("input", "value_match", "custom_match"),
	"xds.type.matcher.v3.Matcher.MatcherList.Predicate.PredicateList":   fields("predicate"),
	"xds.type.matcher.v3.Matcher.MatcherTree":                           fields("input", "exact_match_map", "prefix_match_map", "custom_match"),
	"xds.type.matcher.v3.Matcher.MatcherTree.MatchMap":                  fields("map"),
	"xds.core.v3.TypedExtensionConfig":                                  fields("name", "typed_config"),
	"xds.type.matcher.v3.StringMatcher":                                 fields("exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"),
	"xds.type.matcher.v3.RegexMatcher":                                  fields("google_re2", "regex"),
	"xds.type.matcher.v3.RegexMatcher.GoogleRE2":                        fields(),
	"xds.type.matcher.v3.IPMatcher":                                     fields("range_matchers"),
	"xds.type.matcher.v3.IPMatcher.IPRangeMatcher":                      fields("ranges", "on_match", "exclusive"),

	// Cluster.
	"envoy.config.cluster.v3.Cluster": fields("name", "alt_stat_name", "type", "eds_cluster_config",
		"connect_timeout", "lb_policy", "load_assignment", "transport_socket", "metadata*",
		"least_request_lb_config", "ring_hash_lb_config", "maglev_lb_config", "common_lb_config",
		"circuit_breakers", "outlier_detection", "typed_extension_protocol_options",
		"cleanup_interval", "original_dst_lb_config", "transport_socket_matches", "filters"),
	"envoy.config.cluster.v3.Cluster.OriginalDstLbConfig": fields("use_http_header", "http_header_name",
		"upstream_port_override", "metadata_key"),
	"envoy.type.metadata.v3.MetadataKey":                   fields("key", "path"),
	"envoy.type.metadata.v3.MetadataKey.PathSegment":       fields("key"),
	"envoy.config.cluster.v3.Cluster.TransportSocketMatch": fields("name", "match", "transport_socket"),
	"envoy.config.cluster.v3.Filter":                       fields("name", "typed_config"),
	"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig": fields("choice_count", "active_request_bias"),
	"envoy.config.core.v3.RuntimeDouble":                   fields("default_value", "runtime_key"),
	"envoy.config.cluster.v3.Cluster.RingHashLbConfig":     fields("minimum_ring_size", "maximum_ring_size", "hash_function"),
	"envoy.config.cluster.v3.Cluster.MaglevLbConfig":       fields("table_size"),
	"envoy.config.cluster.v3.Cluster.CommonLbConfig":       fields("healthy_panic_threshold"),
	"envoy.type.v3.Percent":                                fields("value"),
	"envoy.config.cluster.v3.CircuitBreakers":              fields("thresholds"),
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds": fields("priority", "max_connections",
		"max_pending_requests", "max_requests", "max_retries", "track_remaining"),
	"envoy.config.cluster.v3.OutlierDetection": fields("consecutive_5xx", "consecutive_gateway_failure",
		"consecutive_local_origin_failure", "enforcing_consecutive_5xx", "enforcing_consecutive_gateway_failure",
		"enforcing_consecutive_local_origin_failure", "enforcing_success_rate", "enforcing_local_origin_success_rate",
		"success_rate_minimum_hosts", "success_rate_request_volume", "success_rate_stdev_factor",
		"enforcing_failure_percentage", "enforcing_failure_percentage_local_origin", "failure_percentage_threshold",
		"failure_percentage_minimum_hosts", "failure_percentage_request_volume", "interval", "base_ejection_time",
		"max_ejection_time", "max_ejection_time_jitter", "max_ejection_percent", "always_eject_one_host",
		"split_external_local_origin_errors", "successful_active_health_check_uneject_host"),
	"envoy.config.cluster.v3.Cluster.EdsClusterConfig":                                                      fields("eds_config", "service_name"),
	"envoy.config.core.v3.ConfigSource":                                                                     fields("ads", "resource_api_version", "initial_fetch_timeout"),
	"envoy.config.core.v3.AggregatedConfigSource":                                                           fields(),
	"envoy.config.core.v3.TransportSocket":                                                                  fields("name", "typed_config"),
	"envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer":                                            fields(),
	"envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport":                     fields("passthrough_metadata", "transport_socket"),
	"envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport.MetadataValueSource": fields("kind", "name"),
	"envoy.type.metadata.v3.MetadataKind":                                                                   fields("request", "route", "cluster", "host"),
	"envoy.type.metadata.v3.MetadataKind.Request":                                                           fields(),
	"envoy.type.metadata.v3.MetadataKind.Route":                                                             fields(),
	"envoy.type.metadata.v3.MetadataKind.Cluster":                                                           fields(),
	"envoy.type.metadata.v3.MetadataKind.Host":                                                              fields(),
	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":                                          fields("common_tls_context"),
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext":                                            fields("tls_params", "alpn_protocols", "tls_certificate_sds_secret_configs", "combined_validation_context"),
	"envoy.extensions.transport_sockets.tls.v3.TlsParameters":                                               fields("tls_minimum_protocol_version", "tls_maximum_protocol_version"),
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig":                                             fields("name", "sds_config*"),
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext":       fields("default_validation_context", "validation_context_sds_secret_config"),
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext":                                fields("match_typed_subject_alt_names"),
	"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext":                                        fields("common_tls_context", "require_client_certificate"),
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher":                                       fields("san_type", "matcher"),
	"envoy.type.matcher.v3.StringMatcher":                                                                   fields("exact", "prefix"),

	// Endpoints.
	"envoy.config.endpoint.v3.ClusterLoadAssignment": fields("cluster_name", "endpoints"),
	"envoy.config.endpoint.v3.LocalityLbEndpoints":   fields("locality*", "lb_endpoints", "load_balancing_weight"),
	"envoy.config.endpoint.v3.LbEndpoint":            fields("endpoint", "metadata*", "load_balancing_weight"),
	"envoy.config.endpoint.v3.Endpoint":              fields("address"),
}

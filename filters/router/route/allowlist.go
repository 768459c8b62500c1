package route

import "github.com/gowaypoint/waypoint/internal/pbcheck"

var fields = pbcheck.F

// allowlist names, for every message type Compile accepts, the fields it
// implements; a populated field not listed is an error. To support a new
// field: implement it, then list it here (TestAllowlist checks the list
// against the protos). metadata is kept, not interpreted.
var allowlist = pbcheck.Allowlist{
	"envoy.config.route.v3.RouteConfiguration": fields("name", "virtual_hosts",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"most_specific_header_mutations_wins", "validate_clusters", "max_direct_response_body_size_bytes",
		"ignore_port_in_host_matching", "ignore_path_parameters_in_path_matching", "typed_per_filter_config", "metadata*"),
	"envoy.config.route.v3.VirtualHost": fields("name", "domains", "routes",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"typed_per_filter_config", "retry_policy", "metadata*"),
	"envoy.config.route.v3.Route": fields("name", "match", "route", "redirect", "direct_response",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"typed_per_filter_config", "decorator", "metadata*"),
	"envoy.config.route.v3.Decorator": fields("operation", "propagate"),

	// Matching.
	"envoy.config.route.v3.RouteMatch": fields("prefix", "path", "safe_regex", "connect_matcher", "path_separated_prefix",
		"case_sensitive", "runtime_fraction", "headers", "query_parameters", "grpc"),
	"envoy.config.route.v3.RouteMatch.ConnectMatcher":        fields(),
	"envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions": fields(),
	"envoy.config.core.v3.RuntimeFractionalPercent":          fields("default_value", "runtime_key"),
	"envoy.type.v3.FractionalPercent":                        fields("numerator", "denominator"),
	"envoy.config.route.v3.HeaderMatcher": fields("name", "exact_match", "safe_regex_match", "range_match",
		"present_match", "prefix_match", "suffix_match", "contains_match", "string_match", "invert_match",
		"treat_missing_header_as_empty"),
	"envoy.type.v3.Int64Range":                      fields("start", "end"),
	"envoy.config.route.v3.QueryParameterMatcher":   fields("name", "string_match", "present_match"),
	"envoy.type.matcher.v3.StringMatcher":           fields("exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"),
	"envoy.type.matcher.v3.RegexMatcher":            fields("google_re2", "regex"),
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2":  fields(),
	"envoy.type.matcher.v3.RegexMatchAndSubstitute": fields("pattern", "substitution"),
	"envoy.config.route.v3.RouteAction.MaxStreamDuration": fields("max_stream_duration", "grpc_timeout_header_max",
		"grpc_timeout_header_offset"),

	// Actions.
	"envoy.config.route.v3.RouteAction": fields("cluster", "cluster_header", "weighted_clusters",
		"cluster_not_found_response_code", "prefix_rewrite", "regex_rewrite", "host_rewrite_literal",
		"auto_host_rewrite", "host_rewrite_header", "timeout", "idle_timeout", "retry_policy", "hash_policy",
		"max_grpc_timeout", "grpc_timeout_offset", "max_stream_duration", "request_mirror_policies"),
	"envoy.config.route.v3.RouteAction.RequestMirrorPolicy": fields("cluster", "cluster_header", "runtime_fraction",
		"trace_sampled", "disable_shadow_host_suffix_append"),
	"envoy.config.route.v3.WeightedCluster": fields("clusters", "total_weight"),
	"envoy.config.route.v3.WeightedCluster.ClusterWeight": fields("name", "weight",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"typed_per_filter_config", "host_rewrite_literal"),
	"envoy.config.route.v3.RedirectAction": fields("https_redirect", "scheme_redirect", "host_redirect", "port_redirect",
		"path_redirect", "prefix_rewrite", "regex_rewrite", "response_code", "strip_query"),
	"envoy.config.route.v3.DirectResponseAction": fields("status", "body"),
	"envoy.config.core.v3.DataSource":            fields("inline_bytes", "inline_string"),

	// Policies.
	"envoy.config.route.v3.RetryPolicy": fields("retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout",
		"retry_host_predicate", "host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off",
		"retriable_headers", "retriable_request_headers"),
	"envoy.config.route.v3.RetryPolicy.RetryHostPredicate":                 fields("name", "typed_config"),
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":                       fields("base_interval", "max_interval"),
	"envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate": fields(),
	"envoy.config.route.v3.RouteAction.HashPolicy":                         fields("header", "cookie", "connection_properties", "query_parameter", "terminal"),
	"envoy.config.route.v3.RouteAction.HashPolicy.Header":                  fields("header_name", "regex_rewrite"),
	"envoy.config.route.v3.RouteAction.HashPolicy.Cookie":                  fields("name", "ttl", "path", "attributes"),
	"envoy.config.route.v3.RouteAction.HashPolicy.CookieAttribute":         fields("name", "value"),
	"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties":    fields("source_ip"),
	"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter":          fields("name"),

	// Header mutations.
	"envoy.config.core.v3.HeaderValueOption": fields("header", "append", "append_action", "keep_empty_value"),
	"envoy.config.core.v3.HeaderValue":       fields("key", "value", "raw_value"),
}

// Package route compiles Envoy route configurations
// (envoy.config.route.v3.RouteConfiguration) into an immutable [Table] and
// matches requests against it with Envoy's semantics and without
// allocating.
//
// # Compiling
//
// [Compile] is a pure function: it checks every populated field against an
// allowlist of what is implemented (internal/pbcheck: anything set that is
// not implemented is an error, never ignored), runs the protoc-gen-validate
// rules generated for the protos, then decodes and validates the rest: regular
// expressions are compiled once, header formatters parsed, retry conditions
// parsed into a bit set, weighted clusters summed, typed_per_filter_config
// handed to the caller's parser. Errors are relative to the
// RouteConfiguration and name the field, e.g.
//
//	virtual_hosts[0].routes[2].route.retry_policy.retry_on: unknown retry condition "5xxx"
//
// # Matching
//
// [Table.Match] picks the virtual host by :authority, then returns the first
// route of that virtual host whose match conditions all hold.
//
// Virtual hosts follow Envoy's RouteMatcher::findVirtualHost. The authority
// is lower-cased; an exact domain is tried first, then suffix wildcards
// ("*.example.com", longest first), then prefix wildcards ("example.*",
// longest first), then the "*" virtual host. A wildcard must match at least
// one character: "*.example.com" does not match ".example.com". Ports are
// part of the authority, exactly as in Envoy: "example.com:8080" matches the
// domain "example.com:8080", a prefix wildcard "example.*", or "*", but not
// "example.com" nor "*.com". With ignore_port_in_host_matching the port
// (after the last ':' that is not inside an IPv6 literal's brackets) is
// removed before any of these lookups, and only then. A domain listed twice,
// in one virtual host or across several (compared lower-cased), is an error,
// and so is a second "*".
//
// Routes are tried in order; the path condition (prefix, path,
// safe_regex, path_separated_prefix, connect_matcher) is compared against
// :path without its query string and fragment, case-insensitively when
// case_sensitive is false (not for regexes, which are full matches). A
// request without a :path (a plain CONNECT) can only match a
// connect_matcher route. Header matchers see the pseudo-headers :method,
// :authority, :path, :scheme and :protocol as the request's fields, and a
// header that occurs several times as its values joined with ",", as Envoy
// does. Query parameters are compared raw (not percent-decoded), the first
// occurrence of a name only, as Envoy's QueryParamsMulti::getFirstValue.
// runtime_fraction uses only its default_value (there is no runtime): a
// route matches when random % denominator < numerator, with the random value
// given to [Table.MatchRandom] (tests) or drawn per request by [Table.Match].
//
// # Applying a route
//
// The router runtime asks the [Route] for its action, timeouts, retry policy,
// hash policy and request mirror policies ([Route.MirrorPolicies]: which
// copies go where; the router sends them), picks a weighted cluster
// ([Route.Pick]), then applies the
// header mutations, host rewrite and path rewrite in Envoy's order
// ([Route.Finalize]). Request header mutations of the three levels are
// applied route first, then virtual host, then route configuration (so the
// least specific level wins a conflict), or the reverse when
// most_specific_header_mutations_wins is set; a picked weighted cluster's
// own mutations come before all of them. Within a level, removals come
// before additions. Header values are literals or Envoy formatter strings
// using %DOWNSTREAM_REMOTE_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%,
// %DOWNSTREAM_LOCAL_ADDRESS%, %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%,
// %PROTOCOL%, %REQ(name)% and %RESP(name)% (with Envoy's "?alternative" and
// ":length" forms); any other operator is refused at compile time.
//
// # Why by hand
//
// No Go library implements Envoy's route semantics, and generic routers
// (net/http.ServeMux, httprouter) neither follow them nor match on
// headers, so this package implements them directly from Envoy's
// source/common/router/config_impl.cc and its helpers. xxHash64 (hash
// policies) is written here too, from its specification, so that hashes
// agree with Envoy's HashUtil::xxHash64 without a new module dependency.
//
// # Allocation and concurrency
//
// A [Table] and everything reachable from it is read-only after Compile and
// safe for concurrent use; the package starts no goroutines. Match,
// PickCluster, Pick, ApplyRequestHeaders, ApplyResponseHeaders, RewriteHost,
// prefix path rewrites and Hash allocate nothing in steady state: byte
// comparisons are done in place, a header seen several times is joined into
// a pooled scratch buffer, and rewritten paths and authorities go to storage
// the l7.Request owns (l7.Request.SetPath, SetAuthority). Regex rewrites
// allocate, as Go's regexp offers no appending replace. Formatted header
// values are passed to l7.Header.Add as a string that aliases a scratch
// buffer only for the duration of the call (Add copies it; see
// transientString).
package route

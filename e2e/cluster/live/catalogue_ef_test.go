package live

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// EnvoyFilter cases: what users write where Istio has no API, patching the waypoint's config
// (targetRefs the Gateway; istiod patches a waypoint's listeners in the SIDECAR_INBOUND
// context).
func init() {
	catalogue = append(catalogue,
		compatCase{
			name: "envoyfilter-local-ratelimit",
			resources: "EnvoyFilter, targetRefs the Gateway: HTTP_FILTER INSERT_BEFORE the router in main_internal's " +
				"HttpConnectionManagers (SIDECAR_INBOUND): envoy.filters.http.local_ratelimit, 5 tokens per minute, " +
				"enabled and enforced 100%, response header x-local-rate-limit, x-ratelimit headers (DRAFT_VERSION_03)",
			checks: "push ACKed; from a full bucket 5 requests 200 (x-ratelimit-remaining 4 to 0), then 429 with " +
				"x-envoy-ratelimited: true and x-local-rate-limit: true; the RL flag and the rate_limited counter; then the listener's " +
				"filter without a bucket and a VIRTUAL_HOST patch (typed_per_filter_config) of 3 tokens answered 503: 3 requests 200, then 503; " +
				"then descriptors made by the filter's rate_limits from x-client: greedy gets 2 requests, then 429; another client the default bucket",
			yaml: `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: local-ratelimit, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        name: main_internal
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: http_local_rate_limiter
          token_bucket: {max_tokens: 5, tokens_per_fill: 5, fill_interval: 60s}
          filter_enabled:
            runtime_key: local_rate_limit_enabled
            default_value: {numerator: 100, denominator: HUNDRED}
          filter_enforced:
            runtime_key: local_rate_limit_enforced
            default_value: {numerator: 100, denominator: HUNDRED}
          response_headers_to_add:
          - append_action: OVERWRITE_IF_EXISTS_OR_ADD
            header: {key: x-local-rate-limit, value: "true"}
          enable_x_ratelimit_headers: DRAFT_VERSION_03
`,
			check: efCheckLocalRateLimit,
		},
	)
}

// efCheckLocalRateLimit checks the listener's bucket of 5, then the EnvoyFilter is changed: the
// listener's filter without a bucket, a bucket of 3 on reviews' virtual host (a VIRTUAL_HOST
// patch: typed_per_filter_config), answered 503 with its own header.
func efCheckLocalRateLimit(t *testing.T, w *world, b *base) {
	efLimitSequence(t, w, b, nil, 5, 429, "x-local-rate-limit")
	if c := w.metric("envoy_http_local_rate_limit_rate_limited", `envoy_local_http_ratelimit_prefix="http_local_rate_limiter"`); c == 0 {
		t.Errorf("envoy_http_local_rate_limit_rate_limited: 0")
	}
	if c := w.metric("istio_requests_total", `response_code="429"`, `response_flags="RL"`); c == 0 {
		t.Errorf("no 429 with response flag RL in istio_requests_total")
	}
	w.applied(efLocalRateLimitPerRoute)
	efLimitSequence(t, w, b, nil, 3, 503, "x-route-limit")
	// Descriptors: x-client: greedy has a bucket of 2; another client takes from the default 100.
	w.applied(efLocalRateLimitDescriptors)
	efLimitSequence(t, w, b, http.Header{"X-Client": {"greedy"}}, 2, 429, "x-local-rate-limit")
	for i := 0; i < 3; i++ {
		resp, err := w.source("productpage").HTTP().Do(&http.Request{Method: "GET", URL: mustURL(t, b.url(fmt.Sprintf("/modest/%d", i))),
			Header: http.Header{"X-Client": {"modest"}}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-limit") != "100" {
			t.Errorf("x-client modest: %d, x-ratelimit-limit %q; want 200 from the default bucket of 100", resp.StatusCode, resp.Header.Get("x-ratelimit-limit"))
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// efLocalRateLimitDescriptors gives x-client: greedy a bucket of its own (the filter's
// rate_limits make the descriptor {client: <x-client>}).
const efLocalRateLimitDescriptors = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: local-ratelimit, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        name: main_internal
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: http_local_rate_limiter
          token_bucket: {max_tokens: 100, tokens_per_fill: 100, fill_interval: 60s}
          filter_enabled:
            runtime_key: local_rate_limit_enabled
            default_value: {numerator: 100, denominator: HUNDRED}
          filter_enforced:
            runtime_key: local_rate_limit_enforced
            default_value: {numerator: 100, denominator: HUNDRED}
          response_headers_to_add:
          - append_action: OVERWRITE_IF_EXISTS_OR_ADD
            header: {key: x-local-rate-limit, value: "true"}
          enable_x_ratelimit_headers: DRAFT_VERSION_03
          descriptors:
          - entries: [{key: client, value: greedy}]
            token_bucket: {max_tokens: 2, tokens_per_fill: 2, fill_interval: 60s}
          rate_limits:
          - actions:
            - request_headers: {header_name: x-client, descriptor_key: client}
`

// efLocalRateLimitPerRoute limits reviews' virtual host (inbound|http|9080) only: the
// listener's filter has no bucket.
const efLocalRateLimitPerRoute = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: local-ratelimit, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        name: main_internal
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: http_local_rate_limiter
  - applyTo: VIRTUAL_HOST
    match:
      context: SIDECAR_INBOUND
      routeConfiguration:
        vhost: {name: "inbound|http|9080"}
    patch:
      operation: MERGE
      value:
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: route_rate_limiter
            status: {code: ServiceUnavailable}
            token_bucket: {max_tokens: 3, tokens_per_fill: 3, fill_interval: 60s}
            filter_enabled:
              runtime_key: route_rate_limit_enabled
              default_value: {numerator: 100, denominator: HUNDRED}
            filter_enforced:
              runtime_key: route_rate_limit_enforced
              default_value: {numerator: 100, denominator: HUNDRED}
            response_headers_to_add:
            - append_action: OVERWRITE_IF_EXISTS_OR_ADD
              header: {key: x-route-limit, value: "true"}
            enable_x_ratelimit_headers: DRAFT_VERSION_03
`

// efLimitSequence waits for a full bucket of max tokens (a response with x-ratelimit-remaining
// max-1: the first request a new filter sees; every push builds a new one), then expects the
// other tokens to go and the next request to be refused with status and the header. A push
// in the middle starts the sequence again, as does the refill a minute later.
func efLimitSequence(t *testing.T, w *world, b *base, reqHeader http.Header, max, status int, header string) {
	t.Helper()
	get := func(path string) (int, http.Header) {
		t.Helper()
		req, err := http.NewRequest("GET", b.url(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = reqHeader.Clone()
		resp, err := w.source("productpage").HTTP().Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	n := 0
	w.eventually(90*time.Second, fmt.Sprintf("%d requests through a full bucket, then %d", max, status), func() error {
		n++
		code, h := get(fmt.Sprintf("/limited/%d/%d", max, n))
		if code != 200 || h.Get("x-ratelimit-remaining") != strconv.Itoa(max-1) || h.Get("x-ratelimit-limit") != strconv.Itoa(max) {
			time.Sleep(500 * time.Millisecond)
			return fmt.Errorf("not a full bucket of %d: %d, x-ratelimit-limit %q, x-ratelimit-remaining %q", max, code,
				h.Get("x-ratelimit-limit"), h.Get("x-ratelimit-remaining"))
		}
		for want := max - 2; want >= 0; want-- {
			code, h := get(fmt.Sprintf("/limited/%d/%d-%d", max, n, want))
			if code != 200 || h.Get("x-ratelimit-remaining") != strconv.Itoa(want) {
				return fmt.Errorf("token %d: %d, x-ratelimit-remaining %q", want, code, h.Get("x-ratelimit-remaining"))
			}
		}
		code, h = get(fmt.Sprintf("/limited/%d/%d-over", max, n))
		if code != status {
			return fmt.Errorf("request %d: %d, want %d", max+1, code, status)
		}
		for k, v := range map[string]string{"x-envoy-ratelimited": "true", header: "true", "x-ratelimit-remaining": "0"} {
			if h.Get(k) != v {
				return permanent(fmt.Errorf("the %d: %s %q, want %q", status, k, h.Get(k), v))
			}
		}
		return nil
	})
}

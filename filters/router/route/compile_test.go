package route

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/types/known/anypb"
)

// routeSummary is the decoded part of a route that compile tests compare.
type routeSummary struct {
	VirtualHost, Name string
	Path              string
	Action            ActionKind
	Cluster           string
	ClusterHeader     string
	NotFound          int
	Weighted          []string
	PrefixRewrite     string
	HostRewrite       string
	HostHeader        string
	AutoHost          bool
	Timeout           time.Duration
	Idle              string
	GRPC              string
	Retry             *RetryPolicy
	Hashes            int
	Redirect          *Redirect
	Direct            *DirectResponse
	Filters           map[string]any
}

func summarize(t *Table) []routeSummary {
	var out []routeSummary
	for _, vh := range t.vhosts {
		for _, r := range vh.routes {
			kind, p := r.PathMatch()
			s := routeSummary{
				VirtualHost: vh.name, Name: r.Name(),
				Path:          []string{"prefix", "path", "regex", "separated", "connect"}[kind] + ":" + p,
				Action:        r.Action(),
				Cluster:       r.Cluster(),
				ClusterHeader: r.ClusterHeader(),
				NotFound:      r.ClusterNotFoundStatus(),
				PrefixRewrite: r.PrefixRewrite(),
				HostRewrite:   r.HostRewriteLiteral(),
				HostHeader:    r.HostRewriteHeader(),
				AutoHost:      r.AutoHostRewrite(),
				Timeout:       r.Timeout(),
				Retry:         r.RetryPolicy(),
				Hashes:        len(r.hash),
				Redirect:      r.Redirect(),
				Direct:        r.DirectResponse(),
				Filters:       r.perFilter,
			}
			if d, ok := r.IdleTimeout(); ok {
				s.Idle = d.String()
			}
			if max, off, ok := r.GRPCTimeout(); ok {
				s.GRPC = max.String() + "-" + off.String()
			}
			if w := r.Weighted(); w != nil {
				for _, c := range w.Clusters {
					s.Weighted = append(s.Weighted, c.Name+":"+strings.Repeat("|", int(c.Weight)))
				}
			}
			out = append(out, s)
		}
	}
	return out
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		want []routeSummary
	}{{
		name: "defaults",
		cfg: `
virtualHosts:
- name: vh
  domains: ["*"]
  routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]
`,
		want: []routeSummary{{VirtualHost: "vh", Name: "r", Path: "prefix:/", Action: ActionCluster, Cluster: "c", NotFound: 503, Timeout: 15 * time.Second}},
	}, {
		name: "actions, timeouts, policies and per-filter configs",
		cfg: `
typedPerFilterConfig:
  test.filter: {"@type": type.googleapis.com/google.protobuf.StringValue, value: top}
virtualHosts:
- name: vh
  domains: [a.example.com]
  typedPerFilterConfig:
    test.filter: {"@type": type.googleapis.com/google.protobuf.StringValue, value: vhost}
  retryPolicy: {retryOn: "gateway-error, reset", numRetries: 4}
  routes:
  - name: header-cluster
    match: {path: /h}
    route:
      clusterHeader: X-Cluster
      clusterNotFoundResponseCode: NOT_FOUND
      timeout: 0s
      idleTimeout: 30s
      hostRewriteHeader: X-Host
      hashPolicy:
      - header: {headerName: x-user}
      - connectionProperties: {sourceIp: true}
        terminal: true
  - name: weighted
    match: {safeRegex: {regex: "/w/.*"}}
    typedPerFilterConfig:
      test.filter: {"@type": type.googleapis.com/google.protobuf.StringValue, value: route}
    route:
      weightedClusters:
        clusters:
        - {name: a, weight: 3}
        - {name: b, weight: 1}
      hostRewriteLiteral: upstream.local
      maxStreamDuration: {grpcTimeoutHeaderMax: 2s, grpcTimeoutHeaderOffset: 0.010s}
      retryPolicy:
        retryOn: retriable-status-codes,retriable-headers
        retriableStatusCodes: [503, 409]
        retryBackOff: {baseInterval: 0.1s}
        perTryIdleTimeout: 5s
        retriableHeaders: [{name: x-retry, presentMatch: true}]
  - name: redirect
    match: {prefix: /old, caseSensitive: false}
    redirect: {httpsRedirect: true, prefixRewrite: /new, responseCode: PERMANENT_REDIRECT, stripQuery: true}
  - name: direct
    match: {pathSeparatedPrefix: /health}
    directResponse: {status: 200, body: {inlineString: ok}}
  - name: auto
    match: {connectMatcher: {}}
    route: {cluster: tunnel, autoHostRewrite: true, maxGrpcTimeout: 0s}
`,
		want: []routeSummary{{
			VirtualHost: "vh", Name: "header-cluster", Path: "path:/h", Action: ActionClusterHeader,
			ClusterHeader: "x-cluster", NotFound: 404, HostHeader: "x-host", Idle: "30s", Hashes: 2,
			Retry:   &RetryPolicy{RetryOn: RetryGatewayError | RetryReset, NumRetries: 4, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond, HostSelectionMaxAttempts: 1},
			Filters: map[string]any{"test.filter": "cfg:\n\x05vhost"},
		}, {
			VirtualHost: "vh", Name: "weighted", Path: "regex:", Action: ActionWeightedClusters, NotFound: 503,
			Weighted: []string{"a:|||", "b:|"}, HostRewrite: "upstream.local", Timeout: 15 * time.Second, GRPC: "2s-10ms",
			Retry: &RetryPolicy{RetryOn: RetryRetriableStatusCodes | RetryRetriableHeaders, NumRetries: 1, PerTryIdleTimeout: 5 * time.Second,
				BaseInterval: 100 * time.Millisecond, MaxInterval: time.Second, RetriableStatusCodes: []uint32{503, 409}, HostSelectionMaxAttempts: 1},
			Filters: map[string]any{"test.filter": "cfg:\n\x05route"},
		}, {
			VirtualHost: "vh", Name: "redirect", Path: "prefix:/old", Action: ActionRedirect, NotFound: 503, Timeout: 15 * time.Second,
			Retry:    &RetryPolicy{RetryOn: RetryGatewayError | RetryReset, NumRetries: 4, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond, HostSelectionMaxAttempts: 1},
			Redirect: &Redirect{Scheme: "https", PrefixRewrite: "/new", Status: 308, StripQuery: true},
			Filters:  map[string]any{"test.filter": "cfg:\n\x05vhost"},
		}, {
			VirtualHost: "vh", Name: "direct", Path: "separated:/health", Action: ActionDirectResponse, NotFound: 503, Timeout: 15 * time.Second,
			Retry:   &RetryPolicy{RetryOn: RetryGatewayError | RetryReset, NumRetries: 4, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond, HostSelectionMaxAttempts: 1},
			Direct:  &DirectResponse{Status: 200, Body: "ok"},
			Filters: map[string]any{"test.filter": "cfg:\n\x05vhost"},
		}, {
			VirtualHost: "vh", Name: "auto", Path: "connect:", Action: ActionCluster, Cluster: "tunnel", NotFound: 503, AutoHost: true,
			Timeout: 15 * time.Second, GRPC: "0s-0s",
			Retry:   &RetryPolicy{RetryOn: RetryGatewayError | RetryReset, NumRetries: 4, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond, HostSelectionMaxAttempts: 1},
			Filters: map[string]any{"test.filter": "cfg:\n\x05vhost"},
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(mustCompile(t, tt.cfg))
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(RetryPolicy{}, Redirect{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	vh := func(routes string) string {
		return "virtualHosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n" + routes
	}
	noCluster := func(string) bool { return false }
	failing := func(string, *anypb.Any) (any, error) { return nil, errors.New("bad fault config") }
	tests := []struct {
		name      string
		cfg       string
		exists    func(string) bool
		perFilter func(string, *anypb.Any) (any, error)
		nilParser bool
		want      string // the error starts with it
	}{
		{name: "unknown cluster", cfg: vh(`  - {match: {prefix: /}, route: {cluster: nope}}`), exists: noCluster,
			want: `virtual_hosts[0].routes[0].route.cluster: unknown cluster "nope"`},
		{name: "unknown weighted cluster", cfg: vh(`  - {match: {prefix: /}, route: {weightedClusters: {clusters: [{name: w, weight: 1}]}}}`), exists: noCluster,
			want: `virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].name: unknown cluster "w"`},
		{name: "bad path regex", cfg: vh(`  - {match: {safeRegex: {regex: "/a("}}, route: {cluster: c}}`),
			want: `virtual_hosts[0].routes[0].match.safe_regex: invalid regex "/a("`},
		{name: "bad header regex", cfg: vh(`  - {match: {prefix: /, headers: [{name: x, stringMatch: {safeRegex: {regex: "[z-a]"}}}]}, route: {cluster: c}}`),
			want: `virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex: invalid regex "[z-a]"`},
		{name: "regex too complex", cfg: vh(`  - {match: {safeRegex: {regex: "[a-z]{1,1000}"}}, route: {cluster: c}}`),
			want: `virtual_hosts[0].routes[0].match.safe_regex: regex "[a-z]{1,1000}"`},
		{name: "ignore_case with a regex", cfg: vh(`  - {match: {prefix: /, headers: [{name: x, stringMatch: {safeRegex: {regex: a}, ignoreCase: true}}]}, route: {cluster: c}}`),
			want: `virtual_hosts[0].routes[0].match.headers[0].string_match: ignore_case has no effect on safe_regex`},
		{name: "unknown retry condition", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, retryPolicy: {retryOn: "5xx,5xxx"}}}`),
			want: `virtual_hosts[0].routes[0].route.retry_policy.retry_on: unknown retry condition "5xxx"`},
		{name: "unknown retry condition on the virtual host", cfg: "virtualHosts:\n- {name: vh, domains: [\"*\"], retryPolicy: {retryOn: sometimes}}",
			want: `virtual_hosts[0].retry_policy.retry_on: unknown retry condition "sometimes"`},
		{name: "back-off max below base", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, retryPolicy: {retryBackOff: {baseInterval: 1s, maxInterval: 0.5s}}}}`),
			want: `virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.max_interval: 500ms is less than base_interval 1s`},
		{name: "unsupported host predicate", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, retryPolicy: {retryHostPredicate: [{name: envoy.retry_host_predicates.omit_canary_hosts}]}}}`),
			want: `virtual_hosts[0].routes[0].route.retry_policy.retry_host_predicate[0].name: unsupported retry host predicate "envoy.retry_host_predicates.omit_canary_hosts"`},
		{name: "unsupported route match field", cfg: vh(`  - {match: {prefix: /, tlsContext: {presented: true}}, route: {cluster: c}}`),
			want: `virtual_hosts[0].routes[0].match.tls_context: not supported yet`},
		{name: "unsupported route action field", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, internalRedirectPolicy: {maxInternalRedirects: 2}}}`),
			want: `virtual_hosts[0].routes[0].route.internal_redirect_policy: not supported yet`},
		{name: "unsupported mirror field", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, requestMirrorPolicies: [{cluster: m, hostRewriteLiteral: x}]}}`),
			want: `virtual_hosts[0].routes[0].route.request_mirror_policies[0].host_rewrite_literal: not supported yet`},
		{name: "mirror without cluster", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, requestMirrorPolicies: [{traceSampled: false}]}}`),
			want: `virtual_hosts[0].routes[0].route.request_mirror_policies[0]: one of cluster and cluster_header is required`},
		{name: "mirror with cluster and cluster_header", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, requestMirrorPolicies: [{cluster: m, clusterHeader: x}]}}`),
			want: `virtual_hosts[0].routes[0].route.request_mirror_policies[0]: only one of cluster and cluster_header may be set`},
		{name: "unknown mirror cluster", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, requestMirrorPolicies: [{cluster: nope}]}}`), exists: func(n string) bool { return n == "c" },
			want: `virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster: unknown cluster "nope"`},
		{name: "unsupported virtual host field", cfg: "virtualHosts:\n- {name: vh, domains: [\"*\"], requireTls: ALL}",
			want: `virtual_hosts[0].require_tls: not supported yet`},
		{name: "unsupported data source", cfg: vh(`  - {match: {prefix: /}, directResponse: {status: 200, body: {filename: /etc/passwd}}}`),
			want: `virtual_hosts[0].routes[0].direct_response.body.filename: not supported yet`},
		{name: "duplicate domain across virtual hosts", cfg: "virtualHosts:\n- {name: a, domains: [x.com]}\n- {name: b, domains: [y.com, X.COM]}",
			want: `virtual_hosts[1].domains[1]: duplicate domain "X.COM" (already in virtual host "a")`},
		{name: "duplicate wildcard", cfg: "virtualHosts:\n- {name: a, domains: [\"*.x.com\", \"*.x.com\"]}",
			want: `virtual_hosts[0].domains[1]: duplicate domain "*.x.com"`},
		{name: "two catch-alls", cfg: "virtualHosts:\n- {name: a, domains: [\"*\"]}\n- {name: b, domains: [\"*\"]}",
			want: `virtual_hosts[1].domains[0]: duplicate domain "*"`},
		{name: "unsupported formatter", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c}, requestHeadersToAdd: [{header: {key: x-t, value: "%START_TIME%"}}]}`),
			want: `virtual_hosts[0].routes[0].request_headers_to_add[0].header.value: format "%START_TIME%" at position 0: unsupported formatter %START_TIME%`},
		{name: "lone percent", cfg: "responseHeadersToAdd: [{header: {key: x-p, value: \"100%\"}}]",
			want: `response_headers_to_add[0].header.value: format "100%" at position 3: '%' not followed by a command`},
		{name: "REQ without a name", cfg: "requestHeadersToAdd: [{header: {key: x-p, value: \"%REQ()%\"}}]",
			want: `request_headers_to_add[0].header.value: format "%REQ()%" at position 0: %REQ needs a header name`},
		{name: "pseudo-header not modifiable", cfg: "requestHeadersToAdd: [{header: {key: \":path\", value: /x}}]",
			want: `request_headers_to_add[0].header.key: ":path" may not be modified`},
		{name: "host not removable", cfg: "virtualHosts:\n- {name: vh, domains: [\"*\"], requestHeadersToRemove: [Host]}",
			want: `virtual_hosts[0].request_headers_to_remove[0]: "host" may not be removed`},
		{name: "append and append_action", cfg: "requestHeadersToAdd: [{header: {key: x, value: yy}, append: true, appendAction: ADD_IF_ABSENT}]",
			want: `request_headers_to_add[0].append: must not be set with append_action`},
		{name: "per-filter config without a parser", nilParser: true,
			cfg:  "typedPerFilterConfig: {test.filter: {\"@type\": type.googleapis.com/google.protobuf.StringValue, value: x}}",
			want: `typed_per_filter_config["test.filter"]: per-filter config is not accepted here`},
		{name: "per-filter config the filter refuses", perFilter: failing,
			cfg:  vh(`  - {match: {prefix: /}, route: {cluster: c}, typedPerFilterConfig: {envoy.filters.http.fault: {"@type": type.googleapis.com/google.protobuf.StringValue, value: x}}}`),
			want: `virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.fault"]: bad fault config`},
		{name: "weights sum to zero", cfg: vh(`  - {match: {prefix: /}, route: {weightedClusters: {clusters: [{name: a, weight: 0}]}}}`),
			want: `virtual_hosts[0].routes[0].route.weighted_clusters.clusters: the sum of the weights must be greater than 0`},
		{name: "total_weight disagrees", cfg: vh(`  - {match: {prefix: /}, route: {weightedClusters: {totalWeight: 10, clusters: [{name: a, weight: 3}]}}}`),
			want: `virtual_hosts[0].routes[0].route.weighted_clusters.total_weight: 10 is not the sum of the weights, 3`},
		{name: "regex rewrite refers to a missing group", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, regexRewrite: {pattern: {regex: "^/(a)"}, substitution: "/\\2"}}}`),
			want: `virtual_hosts[0].routes[0].route.regex_rewrite: substitution "/\\2" refers to group \2 but the pattern has 1`},
		{name: "prefix and regex rewrite", cfg: vh(`  - {match: {prefix: /}, route: {cluster: c, prefixRewrite: /x, regexRewrite: {pattern: {regex: a}, substitution: b}}}`),
			want: `virtual_hosts[0].routes[0].route.regex_rewrite: only one of prefix_rewrite and regex_rewrite may be set`},
		{name: "empty range", cfg: vh(`  - {match: {prefix: /, headers: [{name: x, rangeMatch: {start: 5, end: 5}}]}, route: {cluster: c}}`),
			want: `virtual_hosts[0].routes[0].match.headers[0].range_match: start 5 must be less than end 5`},
		{name: "direct response body too large", cfg: "maxDirectResponseBodySizeBytes: 2\n" + vh(`  - {match: {prefix: /}, directResponse: {status: 503, body: {inlineString: abc}}}`),
			want: `virtual_hosts[0].routes[0].direct_response.body: 3 bytes exceed max_direct_response_body_size_bytes 2`},
		{name: "route without action (PGV)", cfg: vh(`  - {match: {prefix: /}}`),
			want: `invalid RouteConfiguration.VirtualHosts[0]: embedded message failed validation`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := CompileOptions{ClusterExists: tt.exists, PerFilterConfig: testPerFilter}
			if tt.perFilter != nil {
				opts.PerFilterConfig = tt.perFilter
			}
			if tt.nilParser {
				opts.PerFilterConfig = nil
			}
			_, err := Compile(parseConfig(t, tt.cfg), opts)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n  %v\nwant prefix:\n  %s", err, tt.want)
			}
		})
	}
}

func TestAllowlist(t *testing.T) {
	rc := parseConfig(t, "name: x").ProtoReflect().Descriptor()
	ph := (&previousHosts{}).ProtoReflect().Descriptor()
	for _, err := range allowlist.Verify(rc, ph) {
		t.Error(err)
	}
}

func TestFilterConfigLevels(t *testing.T) {
	tbl := mustCompile(t, `
typedPerFilterConfig:
  test.filter: {"@type": type.googleapis.com/google.protobuf.StringValue, value: top}
virtualHosts:
- name: plain
  domains: [plain]
  routes:
  - {name: inherits-top, match: {prefix: /}, route: {cluster: c}}
- name: vh
  domains: ["*"]
  typedPerFilterConfig:
    test.filter: {"@type": type.googleapis.com/google.protobuf.StringValue, value: vhost}
  routes:
  - name: own
    match: {prefix: /own}
    route: {cluster: c}
    typedPerFilterConfig:
      test.filter: {"@type": type.googleapis.com/google.protobuf.StringValue, value: route}
  - {name: inherits-vhost, match: {prefix: /}, route: {cluster: c}}
`)
	for _, tt := range []struct{ host, path, want string }{
		{"plain", "/", "cfg:\n\x03top"},
		{"x", "/own", "cfg:\n\x05route"},
		{"x", "/other", "cfg:\n\x05vhost"},
	} {
		r := tbl.Match(newReq("GET", tt.host, tt.path))
		if got := r.FilterConfig("test.filter"); got != tt.want {
			t.Errorf("%s%s (%s): FilterConfig = %q, want %q", tt.host, tt.path, r.Name(), got, tt.want)
		}
		if got := r.FilterConfig("other.filter"); got != nil {
			t.Errorf("%s%s: FilterConfig(other) = %v, want nil", tt.host, tt.path, got)
		}
	}
}

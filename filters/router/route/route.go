package route

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// DefaultTimeout is a route's timeout when it sets none, as Envoy's.
const DefaultTimeout = 15 * time.Second

// Route is one compiled route: its match conditions, action and policies.
// It implements filters.Route. A Route is read-only and shared by every
// stream that matches it; a weighted route has one more Route per cluster
// (see Pick), sharing everything but the cluster.
type Route struct {
	name  string
	vhost *virtualHost
	match routeMatch

	action          ActionKind
	cluster         string
	clusterHeader   string
	clusterNotFound int
	weighted        *WeightedClusters
	picked          *WeightedCluster
	redirect        *Redirect
	direct          *DirectResponse

	prefixRewrite     string
	regexRewrite      *regexRewrite
	hostRewrite       []byte
	hostRewriteHeader string
	autoHostRewrite   bool

	timeout            time.Duration
	idleTimeout        time.Duration
	hasIdleTimeout     bool
	maxStreamDuration  time.Duration
	hasMaxStreamDur    bool
	grpcTimeoutMax     time.Duration
	grpcTimeoutOffset  time.Duration
	honorGRPCTimeout   bool
	retry              *RetryPolicy
	hash               []hashPolicy
	mirrors            []MirrorPolicy
	reqChain           []*headerMutation
	respChain          []*headerMutation
	headersNeedScratch bool

	perFilter map[string]any
	metadata  *corev3.Metadata
	decorator *routev3.Decorator
}

var _ filters.Route = (*Route)(nil)

// Name is the route's name (may be empty).
func (r *Route) Name() string { return r.name }

// FilterConfig returns the parsed typed_per_filter_config for a filter:
// the picked weighted cluster's, else the route's, else the virtual
// host's, else the route configuration's; nil if none.
func (r *Route) FilterConfig(filterName string) any { return r.perFilter[filterName] }

// VirtualHost is the name of the route's virtual host.
func (r *Route) VirtualHost() string { return r.vhost.name }

// Action is what the route does.
func (r *Route) Action() ActionKind { return r.action }

// Cluster is the cluster to forward to: the route's cluster, or the picked
// one on a weighted route's per-cluster view (Pick). "" otherwise.
func (r *Route) Cluster() string {
	if r.picked != nil {
		return r.picked.Name
	}
	return r.cluster
}

// ClusterHeader is the request header that names the cluster for an
// ActionClusterHeader route.
func (r *Route) ClusterHeader() string { return r.clusterHeader }

// HeaderCluster returns the cluster an ActionClusterHeader route sends req
// to: the first value of ClusterHeader; false when it is absent or empty
// (answer ClusterNotFoundStatus then, as Envoy does).
func (r *Route) HeaderCluster(req *l7.Request) ([]byte, bool) {
	if r.clusterHeader == "" {
		return nil, false
	}
	v, ok := req.Header.Get(r.clusterHeader)
	return v, ok && len(v) > 0
}

// ClusterNotFoundStatus is the status to answer when the cluster does not
// exist: 503 (default), 404 or 500.
func (r *Route) ClusterNotFoundStatus() int { return r.clusterNotFound }

// Weighted returns the weighted clusters of an ActionWeightedClusters
// route; nil otherwise.
func (r *Route) Weighted() *WeightedClusters { return r.weighted }

// Picked is the weighted cluster of a per-cluster view; nil on any other
// route.
func (r *Route) Picked() *WeightedCluster { return r.picked }

// PickCluster returns the weighted cluster the random value r selects
// (WeightedClusters.Pick); nil when the route is not weighted.
func (r *Route) PickCluster(rand uint64) *WeightedCluster {
	if r.weighted == nil {
		return nil
	}
	return r.weighted.Pick(rand)
}

// Pick returns the route as seen once a weighted cluster is picked with
// the random value: Cluster names the pick, and FilterConfig and the
// header mutations include the cluster's own. A route that is not weighted
// returns itself. It does not allocate: the views are built by Compile.
func (r *Route) Pick(rand uint64) *Route {
	if r.weighted == nil {
		return r
	}
	return r.weighted.Pick(rand).view
}

// Redirect returns the redirect of an ActionRedirect route; nil otherwise.
func (r *Route) Redirect() *Redirect { return r.redirect }

// DirectResponse returns the answer of an ActionDirectResponse route; nil
// otherwise.
func (r *Route) DirectResponse() *DirectResponse { return r.direct }

// Timeout is the route's upstream timeout, covering all retries: default
// 15 s; 0 means none.
func (r *Route) Timeout() time.Duration { return r.timeout }

// IdleTimeout is the stream idle timeout the route sets, if it sets one
// (0: disabled).
func (r *Route) IdleTimeout() (time.Duration, bool) { return r.idleTimeout, r.hasIdleTimeout }

// MaxStreamDuration is max_stream_duration.max_stream_duration, if set.
func (r *Route) MaxStreamDuration() (time.Duration, bool) {
	return r.maxStreamDuration, r.hasMaxStreamDur
}

// GRPCTimeout says how a gRPC request's grpc-timeout header bounds it. When
// honor is false the header is ignored (Envoy's default). Otherwise the
// header's value replaces Timeout, capped at max unless max is 0, minus
// offset. The values come from max_stream_duration (grpc_timeout_header_max,
// grpc_timeout_header_offset) when that is set, else from the older
// max_grpc_timeout and grpc_timeout_offset, as in Envoy.
func (r *Route) GRPCTimeout() (max, offset time.Duration, honor bool) {
	return r.grpcTimeoutMax, r.grpcTimeoutOffset, r.honorGRPCTimeout
}

// RetryPolicy is the route's retry policy, else its virtual host's; nil
// when neither has one (no retries).
func (r *Route) RetryPolicy() *RetryPolicy { return r.retry }

// AutoHostRewrite reports whether the router should set :authority to the
// upstream host's hostname (auto_host_rewrite).
func (r *Route) AutoHostRewrite() bool { return r.autoHostRewrite }

// PrefixRewrite is the route's prefix_rewrite ("" if none).
func (r *Route) PrefixRewrite() string { return r.prefixRewrite }

// HostRewriteLiteral is the route's host_rewrite_literal ("" if none).
func (r *Route) HostRewriteLiteral() string { return string(r.hostRewrite) }

// HostRewriteHeader is the route's host_rewrite_header ("" if none).
func (r *Route) HostRewriteHeader() string { return r.hostRewriteHeader }

// PathMatch returns the route's path condition: its kind, and the prefix or
// path it compares (empty for regexes and CONNECT).
func (r *Route) PathMatch() (PathMatchKind, string) { return r.match.kind, r.match.path }

// VirtualHostMetadata is the virtual host's metadata (kept, not
// interpreted); may be nil.
func (r *Route) VirtualHostMetadata() *corev3.Metadata { return r.vhost.metadata }

// Metadata is the route's metadata (kept, not interpreted); may be nil.
func (r *Route) Metadata() *corev3.Metadata { return r.metadata }

// Decorator is the route's decorator (kept for tracing, not used); may be
// nil.
func (r *Route) Decorator() *routev3.Decorator { return r.decorator }

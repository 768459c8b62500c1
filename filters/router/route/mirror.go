package route

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// MirrorPolicy is one of a route's request_mirror_policies: a copy of each
// request it selects goes to its cluster, fire-and-forget (the router
// sends it; see package router). Read-only.
type MirrorPolicy struct {
	// Cluster is the cluster to mirror to; empty when ClusterHeader names
	// it per request.
	Cluster string
	// ClusterHeader is the request header naming the cluster (lower case);
	// a request without it is not mirrored.
	ClusterHeader string
	// KeepHost is disable_shadow_host_suffix_append: the copy keeps the
	// request's authority instead of getting "-shadow" appended to its
	// host.
	KeepHost bool
	// TraceSampled is trace_sampled (nil: unset). The waypoint makes no
	// span for a mirror, so it has nothing to act on: kept for the config
	// dump.
	TraceSampled *bool

	// fraction is runtime_fraction's default_value (there is no runtime
	// layer), when hasFraction; unset selects every request.
	hasFraction bool
	fraction    filters.Fraction
}

// Fires reports whether the policy selects a request with the random
// value, as Envoy's featureEnabled (Fraction.Holds); a policy without
// runtime_fraction selects every request.
func (m *MirrorPolicy) Fires(random uint64) bool {
	return !m.hasFraction || m.fraction.Holds(random)
}

// TargetCluster returns the cluster to mirror req to: Cluster, or the
// first value of ClusterHeader; false when that header is absent or
// empty (no mirror, as Envoy).
func (m *MirrorPolicy) TargetCluster(req *l7.Request) (string, bool) {
	if m.ClusterHeader == "" {
		return m.Cluster, true
	}
	v, ok := req.Header.Get(m.ClusterHeader)
	if !ok || len(v) == 0 {
		return "", false
	}
	return string(v), true
}

// ShadowAuthority returns the authority of a mirrored copy: authority
// with "-shadow" appended to its host, before the port when there is one
// (Envoy's shadowAppendedHost: "reviews:9080" becomes
// "reviews-shadow:9080", "[::1]:80" becomes "[::1]-shadow:80"), or
// authority unchanged when KeepHost. It appends to dst.
func (m *MirrorPolicy) ShadowAuthority(dst, authority []byte) []byte {
	if m.KeepHost || len(authority) == 0 {
		return append(dst, authority...)
	}
	i := portStart(authority)
	if i < 0 {
		i = len(authority)
	}
	dst = append(dst, authority[:i]...)
	dst = append(dst, "-shadow"...)
	return append(dst, authority[i:]...)
}

// MirrorPolicies are the route's request_mirror_policies, in config
// order; nil when it has none.
func (r *Route) MirrorPolicies() []MirrorPolicy { return r.mirrors }

// compileMirrorPolicies decodes request_mirror_policies; errors are
// relative to the RouteAction.
func (c *compiler) compileMirrorPolicies(pbs []*routev3.RouteAction_RequestMirrorPolicy) ([]MirrorPolicy, error) {
	if len(pbs) == 0 {
		return nil, nil
	}
	out := make([]MirrorPolicy, 0, len(pbs))
	for i, pb := range pbs {
		path := pbcheck.Idx("request_mirror_policies", i)
		m := MirrorPolicy{Cluster: pb.GetCluster(), KeepHost: pb.GetDisableShadowHostSuffixAppend()}
		switch {
		case m.Cluster != "" && pb.GetClusterHeader() != "":
			return nil, pbcheck.ErrAt(path, "only one of cluster and cluster_header may be set")
		case pb.GetClusterHeader() != "":
			m.ClusterHeader = toLower(pb.GetClusterHeader())
		case m.Cluster == "":
			return nil, pbcheck.ErrAt(path, "one of cluster and cluster_header is required")
		default:
			if err := c.checkCluster(m.Cluster); err != nil {
				return nil, pbcheck.At(path+".cluster", err)
			}
		}
		if rf := pb.GetRuntimeFraction(); rf != nil {
			var fm routeMatch
			if err := fm.setFraction(rf); err != nil {
				return nil, pbcheck.At(path+".runtime_fraction", err)
			}
			m.hasFraction, m.fraction = true, fm.fraction
		}
		if ts := pb.GetTraceSampled(); ts != nil {
			v := ts.GetValue()
			m.TraceSampled = &v
		}
		out = append(out, m)
	}
	return out, nil
}

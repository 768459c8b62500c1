package route

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// WeightedCluster is one cluster of a weighted_clusters action. Read-only.
type WeightedCluster struct {
	// Name is the cluster's name.
	Name string
	// Weight is its share; the route's clusters' weights sum to at most
	// 2^32-1.
	Weight uint32
	// HostRewrite is host_rewrite_literal: the :authority to set when this
	// cluster is picked; empty: none.
	HostRewrite string

	hostRewrite             []byte
	reqHeaders, respHeaders *headerMutation
	perFilter               map[string]any
	// view is the route as seen once this cluster is picked.
	view *Route
}

// WeightedClusters is a weighted_clusters action. Read-only.
type WeightedClusters struct {
	// Clusters are in config order, which the selection follows.
	Clusters []*WeightedCluster
	// Total is the sum of the weights, > 0.
	Total uint64
}

// Pick returns the cluster a random value selects, as Envoy's
// WeightedClusterSpecifierPlugin: r modulo the total weight falls in the
// interval [sum of the weights before it, that sum plus its weight) of
// exactly one cluster, in config order.
func (w *WeightedClusters) Pick(r uint64) *WeightedCluster {
	v := r % w.Total
	var end uint64
	for _, c := range w.Clusters {
		end += uint64(c.Weight)
		if v < end {
			return c
		}
	}
	return w.Clusters[len(w.Clusters)-1]
}

// compileWeightedClusters decodes pb; errors are relative to it. The
// clusters' per-filter configs are parsed by perFilter.
func compileWeightedClusters(pb *routev3.WeightedCluster, c *compiler) (*WeightedClusters, error) {
	w := &WeightedClusters{}
	if len(pb.GetClusters()) == 0 {
		return nil, pbcheck.ErrAt("clusters", "at least one cluster is required")
	}
	for i, cw := range pb.GetClusters() {
		path := pbcheck.Idx("clusters", i)
		wc := &WeightedCluster{Name: cw.GetName(), HostRewrite: cw.GetHostRewriteLiteral()}
		if wc.HostRewrite != "" {
			wc.hostRewrite = []byte(wc.HostRewrite)
		}
		if wc.Name == "" {
			return nil, pbcheck.ErrAt(path+".name", "required")
		}
		if err := c.checkCluster(wc.Name); err != nil {
			return nil, pbcheck.At(path+".name", err)
		}
		if cw.GetWeight() == nil {
			return nil, pbcheck.ErrAt(path+".weight", "required")
		}
		wc.Weight = cw.GetWeight().GetValue()
		w.Total += uint64(wc.Weight)
		if w.Total > 1<<32-1 {
			return nil, pbcheck.ErrAt(path+".weight", "the sum of the weights exceeds %d", uint64(1<<32-1))
		}
		var err error
		if wc.reqHeaders, err = compileHeaderMutation(cw.GetRequestHeadersToAdd(), cw.GetRequestHeadersToRemove(), "request_headers_to_add", "request_headers_to_remove"); err != nil {
			return nil, pbcheck.At(path, err)
		}
		if wc.respHeaders, err = compileHeaderMutation(cw.GetResponseHeadersToAdd(), cw.GetResponseHeadersToRemove(), "response_headers_to_add", "response_headers_to_remove"); err != nil {
			return nil, pbcheck.At(path, err)
		}
		if wc.perFilter, err = c.perFilterConfigs(cw.GetTypedPerFilterConfig()); err != nil {
			return nil, pbcheck.At(path, err)
		}
		w.Clusters = append(w.Clusters, wc)
	}
	if w.Total == 0 {
		return nil, pbcheck.ErrAt("clusters", "the sum of the weights must be greater than 0")
	}
	if tw := pb.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != w.Total {
		return nil, pbcheck.ErrAt("total_weight", "%d is not the sum of the weights, %d", tw.GetValue(), w.Total)
	}
	return w, nil
}

package dubboroute

import (
	"slices"
	"strconv"

	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"

	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

var fields = pbcheck.F

// Allowlist names what of Envoy's Dubbo route config is implemented; a
// populated field not listed is an error (params_match, a map keyed by
// integers, is checked entry by entry by Compile).
var Allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.dubbo_proxy.v3.RouteConfiguration": fields("name", "interface", "group", "version", "routes"),
	"envoy.extensions.filters.network.dubbo_proxy.v3.Route":              fields("match", "route"),
	"envoy.extensions.filters.network.dubbo_proxy.v3.RouteMatch":         fields("method", "headers"),
	"envoy.extensions.filters.network.dubbo_proxy.v3.MethodMatch":        fields("name", "params_match*"),
	"envoy.extensions.filters.network.dubbo_proxy.v3.RouteAction":        fields("cluster", "weighted_clusters"),
	"envoy.config.route.v3.HeaderMatcher": fields("name", "exact_match", "safe_regex_match", "range_match",
		"present_match", "prefix_match", "suffix_match", "contains_match", "string_match", "invert_match",
		"treat_missing_header_as_empty"),
	"envoy.type.v3.Int64Range":                            fields("start", "end"),
	"envoy.type.matcher.v3.StringMatcher":                 fields("exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"),
	"envoy.type.matcher.v3.RegexMatcher":                  fields("google_re2", "regex"),
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2":        fields(),
	"envoy.config.route.v3.WeightedCluster":               fields("clusters", "total_weight"),
	"envoy.config.route.v3.WeightedCluster.ClusterWeight": fields("name", "weight"),
}

var paramAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.dubbo_proxy.v3.MethodMatch.ParameterMatchSpecifier": fields("exact_match", "range_match"),
	"envoy.type.v3.Int64Range": fields("start", "end"),
}

// CompileOptions are the hooks Compile needs from its caller.
type CompileOptions struct {
	// ClusterExists, when set, makes a route to a cluster it does not know
	// an error naming the cluster. nil: no check.
	ClusterExists func(name string) bool
}

// Compile decodes and validates route configurations, in order, into a
// Table. Errors name the field: "route_config[0].routes[1].route.cluster:
// unknown cluster "x"", with field the name of the list in the caller's
// config.
func Compile(rcs []*dubbov3.RouteConfiguration, field string, opts CompileOptions) (*Table, error) {
	t := &Table{}
	for i, rc := range rcs {
		path := pbcheck.Idx(field, i)
		if err := Allowlist.Check(rc.ProtoReflect()); err != nil {
			return nil, pbcheck.At(path, err)
		}
		s, err := compileService(rc, opts)
		if err != nil {
			return nil, pbcheck.At(path, err)
		}
		// The generated rules run last, so that our own errors, which
		// name fields the way all others do, come first.
		if err := rc.ValidateAll(); err != nil {
			return nil, pbcheck.At(path, err)
		}
		t.services = append(t.services, s)
	}
	return t, nil
}

func compileService(rc *dubbov3.RouteConfiguration, opts CompileOptions) (*service, error) {
	if rc.GetInterface() == "" {
		return nil, pbcheck.ErrAt("interface", `required (use "*" for any interface)`)
	}
	s := &service{name: rc.GetName(), iface: newInterfaceMatcher(rc.GetInterface()),
		group: rc.GetGroup(), version: rc.GetVersion()}
	for i, pb := range rc.GetRoutes() {
		r, err := compileRoute(pb, opts)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx("routes", i), err)
		}
		r.name = s.name
		s.routes = append(s.routes, r)
	}
	return s, nil
}

func compileRoute(pb *dubbov3.Route, opts CompileOptions) (*Route, error) {
	r := &Route{}
	var err error
	m := pb.GetMatch()
	if r.headers, err = route.CompileHeaderMatch(m.GetHeaders(), "headers"); err != nil {
		return nil, pbcheck.At("match", err)
	}
	if mm := m.GetMethod(); mm != nil {
		if mm.GetName() == nil {
			return nil, pbcheck.ErrAt("match.method.name", "required")
		}
		sm, err := route.CompileStringMatch(mm.GetName())
		if err != nil {
			return nil, pbcheck.At("match.method.name", err)
		}
		r.method = &sm
		if r.params, err = compileParams(mm); err != nil {
			return nil, pbcheck.At("match.method", err)
		}
	}
	a := pb.GetRoute()
	switch spec := a.GetClusterSpecifier().(type) {
	case *dubbov3.RouteAction_Cluster:
		if spec.Cluster == "" {
			return nil, pbcheck.ErrAt("route.cluster", "required")
		}
		if opts.ClusterExists != nil && !opts.ClusterExists(spec.Cluster) {
			return nil, pbcheck.ErrAt("route.cluster", "unknown cluster %q", spec.Cluster)
		}
		r.cluster = spec.Cluster
	case *dubbov3.RouteAction_WeightedClusters:
		wc := spec.WeightedClusters
		for i, c := range wc.GetClusters() {
			path := pbcheck.Idx("route.weighted_clusters.clusters", i)
			switch {
			case c.GetName() == "":
				return nil, pbcheck.ErrAt(path+".name", "required")
			case opts.ClusterExists != nil && !opts.ClusterExists(c.GetName()):
				return nil, pbcheck.ErrAt(path+".name", "unknown cluster %q", c.GetName())
			case c.GetWeight() == nil:
				return nil, pbcheck.ErrAt(path+".weight", "required")
			}
			r.weighted = append(r.weighted, WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()})
			r.total += uint64(c.GetWeight().GetValue())
		}
		switch {
		case len(r.weighted) == 0:
			return nil, pbcheck.ErrAt("route.weighted_clusters.clusters", "at least one cluster is required")
		case r.total == 0:
			return nil, pbcheck.ErrAt("route.weighted_clusters.clusters", "the sum of the weights must be greater than 0")
		case r.total > 1<<32-1:
			return nil, pbcheck.ErrAt("route.weighted_clusters.clusters", "the sum of the weights exceeds %d", uint64(1<<32-1))
		}
		if tw := wc.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != r.total {
			return nil, pbcheck.ErrAt("route.weighted_clusters.total_weight", "%d is not the sum of the weights, %d", tw.GetValue(), r.total)
		}
	default:
		return nil, pbcheck.ErrAt("route", "one of cluster and weighted_clusters is required")
	}
	return r, nil
}

// compileParams compiles params_match, in index order.
func compileParams(mm *dubbov3.MethodMatch) ([]paramMatch, error) {
	pm := mm.GetParamsMatch()
	idxs := make([]uint32, 0, len(pm))
	for i := range pm {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	var out []paramMatch
	for _, i := range idxs {
		spec := pm[i]
		path := "params_match[" + strconv.FormatUint(uint64(i), 10) + "]"
		if err := paramAllowlist.Check(spec.ProtoReflect()); err != nil {
			return nil, pbcheck.At(path, err)
		}
		p := paramMatch{index: int(i)}
		switch m := spec.GetParameterMatchSpecifier().(type) {
		case *dubbov3.MethodMatch_ParameterMatchSpecifier_ExactMatch:
			p.exact = m.ExactMatch
		case *dubbov3.MethodMatch_ParameterMatchSpecifier_RangeMatch:
			p.hasRange, p.start, p.end = true, m.RangeMatch.GetStart(), m.RangeMatch.GetEnd()
			if p.start >= p.end {
				return nil, pbcheck.ErrAt(path+".range_match", "start %d must be less than end %d", p.start, p.end)
			}
		default:
			return nil, pbcheck.ErrAt(path, "one of exact_match and range_match is required")
		}
		out = append(out, p)
	}
	return out, nil
}

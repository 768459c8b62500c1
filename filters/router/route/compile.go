package route

import (
	"errors"
	"fmt"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// DefaultMaxDirectResponseBodySize is max_direct_response_body_size_bytes'
// default, as Envoy's.
const DefaultMaxDirectResponseBodySize = 4096

// CompileOptions are the hooks Compile needs from its caller.
type CompileOptions struct {
	// ClusterExists, when set, makes a route to a cluster it does not know
	// an error naming the cluster, whatever validate_clusters says: the
	// caller leaves it nil to honour validate_clusters false (the config
	// build does, as Envoy loads such a route configuration and answers a
	// route to a missing cluster 503 NC). nil: no check.
	ClusterExists func(name string) bool
	// PerFilterConfig parses one typed_per_filter_config entry, once, for
	// the filter of that name (the caller wires the filters registry's
	// PerRouteFactory.ParsePerRoute). nil: such entries are an error.
	PerFilterConfig func(filterName string, cfg *anypb.Any) (any, error)
}

// Compile decodes and validates a route configuration into a Table. It is
// a pure function of rc and opts' answers. Errors are relative to rc and
// name the field, e.g. "virtual_hosts[0].routes[1].route.cluster: unknown
// cluster "x"".
func Compile(rc *routev3.RouteConfiguration, opts CompileOptions) (*Table, error) {
	if rc == nil {
		return nil, errors.New("no route configuration")
	}
	if err := allowlist.Check(rc.ProtoReflect()); err != nil {
		return nil, err
	}
	if err := rc.ValidateAll(); err != nil {
		return nil, err
	}
	c := &compiler{opts: opts, maxBody: DefaultMaxDirectResponseBodySize}
	if m := rc.GetMaxDirectResponseBodySizeBytes(); m != nil {
		c.maxBody = int(m.GetValue())
	}
	t := &Table{
		name:             rc.GetName(),
		ignorePort:       rc.GetIgnorePortInHostMatching(),
		ignorePathParams: rc.GetIgnorePathParametersInPathMatching(),
		metadata:         rc.GetMetadata(),
	}
	var err error
	var top level
	if top.req, err = compileHeaderMutation(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), "request_headers_to_add", "request_headers_to_remove"); err != nil {
		return nil, err
	}
	if top.resp, err = compileHeaderMutation(rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove(), "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	if top.perFilter, err = c.perFilterConfigs(rc.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	mostSpecificWins := rc.GetMostSpecificHeaderMutationsWins()
	owner := map[string]string{}
	for i, vpb := range rc.GetVirtualHosts() {
		path := pbcheck.Idx("virtual_hosts", i)
		vh, err := c.virtualHost(vpb, &top, mostSpecificWins)
		if err != nil {
			return nil, pbcheck.At(path, err)
		}
		for j, d := range vpb.GetDomains() {
			if !t.addDomain(d, vh) {
				return nil, pbcheck.ErrAt(fmt.Sprintf("%s.domains[%d]", path, j), "duplicate domain %q (already in virtual host %q): domains must be unique", d, owner[toLower(d)])
			}
			owner[toLower(d)] = vh.name
		}
		t.vhosts = append(t.vhosts, vh)
	}
	for _, vh := range t.vhosts {
		for _, r := range vh.routes {
			t.needsRandom = t.needsRandom || r.match.hasFraction
		}
	}
	return t, nil
}

// compiler holds what compiling one route configuration needs.
type compiler struct {
	opts    CompileOptions
	maxBody int
}

// level is one level's header mutations and per-filter configs.
type level struct {
	req, resp *headerMutation
	perFilter map[string]any
}

func (c *compiler) checkCluster(name string) error {
	if c.opts.ClusterExists != nil && !c.opts.ClusterExists(name) {
		return fmt.Errorf("unknown cluster %q", name)
	}
	return nil
}

// perFilterConfigs parses a typed_per_filter_config map; errors name the
// entry.
func (c *compiler) perFilterConfigs(m map[string]*anypb.Any) (map[string]any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make(map[string]any, len(m))
	for _, name := range names {
		path := pbcheck.Key("typed_per_filter_config", name)
		if c.opts.PerFilterConfig == nil {
			return nil, pbcheck.ErrAt(path, "per-filter config is not accepted here")
		}
		if m[name].GetTypeUrl() == "" {
			return nil, pbcheck.ErrAt(path, "type URL required")
		}
		v, err := c.opts.PerFilterConfig(name, m[name])
		if err != nil {
			return nil, pbcheck.At(path, err)
		}
		out[name] = v
	}
	return out, nil
}

// merge returns the per-filter configs of a more specific level laid over
// a less specific one, sharing a map when one side is empty.
func merge(less, more map[string]any) map[string]any {
	switch {
	case len(more) == 0:
		return less
	case len(less) == 0:
		return more
	}
	out := make(map[string]any, len(less)+len(more))
	for k, v := range less {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// chain orders one request or response mutation per level for
// application: most specific first (Envoy's default: the least specific
// level applies last and wins), or the reverse.
func chain(mostSpecificWins bool, route, vhost, top *headerMutation) []*headerMutation {
	ms := []*headerMutation{route, vhost, top}
	if mostSpecificWins {
		ms = []*headerMutation{top, vhost, route}
	}
	var out []*headerMutation
	for _, m := range ms {
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func (c *compiler) virtualHost(pb *routev3.VirtualHost, top *level, mostSpecificWins bool) (*virtualHost, error) {
	vh := &virtualHost{name: pb.GetName(), metadata: pb.GetMetadata()}
	var lv level
	var err error
	if lv.req, err = compileHeaderMutation(pb.GetRequestHeadersToAdd(), pb.GetRequestHeadersToRemove(), "request_headers_to_add", "request_headers_to_remove"); err != nil {
		return nil, err
	}
	if lv.resp, err = compileHeaderMutation(pb.GetResponseHeadersToAdd(), pb.GetResponseHeadersToRemove(), "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	if lv.perFilter, err = c.perFilterConfigs(pb.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	lv.perFilter = merge(top.perFilter, lv.perFilter)
	var retry *RetryPolicy
	if pb.GetRetryPolicy() != nil {
		if retry, err = compileRetryPolicy(pb.GetRetryPolicy()); err != nil {
			return nil, pbcheck.At("retry_policy", err)
		}
	}
	for i, rpb := range pb.GetRoutes() {
		r, rl, err := c.route(rpb, vh, retry)
		if err != nil {
			return nil, pbcheck.At(pbcheck.Idx("routes", i), err)
		}
		r.perFilter = merge(lv.perFilter, rl.perFilter)
		r.reqChain = chain(mostSpecificWins, rl.req, lv.req, top.req)
		r.respChain = chain(mostSpecificWins, rl.resp, lv.resp, top.resp)
		r.finish()
		vh.routes = append(vh.routes, r)
	}
	return vh, nil
}

// finish computes what depends on the whole chain, and builds the
// per-cluster views of a weighted route.
func (r *Route) finish() {
	r.headersNeedScratch = needsScratch(r.reqChain) || needsScratch(r.respChain)
	if r.weighted == nil {
		return
	}
	for _, wc := range r.weighted.Clusters {
		v := *r
		v.picked = wc
		v.perFilter = merge(r.perFilter, wc.perFilter)
		if wc.reqHeaders != nil {
			v.reqChain = append([]*headerMutation{wc.reqHeaders}, r.reqChain...)
		}
		if wc.respHeaders != nil {
			v.respChain = append([]*headerMutation{wc.respHeaders}, r.respChain...)
		}
		v.headersNeedScratch = needsScratch(v.reqChain) || needsScratch(v.respChain)
		wc.view = &v
	}
}

func needsScratch(ms []*headerMutation) bool {
	for _, m := range ms {
		if m.needsScratch() {
			return true
		}
	}
	return false
}

package route

import (
	"math/rand/v2"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// RouteMatch is a compiled envoy.config.route.v3.RouteMatch with the route
// table's semantics, for filters whose config selects requests by route
// match (jwt_authn's rules). Read-only; safe for concurrent use.
type RouteMatch struct{ m routeMatch }

// CompileRouteMatch compiles pb once; errors are relative to pb.
func CompileRouteMatch(pb *routev3.RouteMatch) (*RouteMatch, error) {
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	m, err := compileRouteMatch(pb)
	if err != nil {
		return nil, err
	}
	return &RouteMatch{m: m}, nil
}

// Matches reports whether req matches. It does not allocate in steady state.
func (r *RouteMatch) Matches(req *l7.Request) bool {
	path, query := splitPath(req.Path)
	c := matchCtx{req: req}
	ok := r.m.matches(&c, path, query, rand.Uint64())
	c.release()
	return ok
}

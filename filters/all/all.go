// Package all links every built-in HTTP filter into a binary, so that the
// config decoder finds them in the registry: import it for its side
// effects.
package all

import (
	_ "github.com/gowaypoint/waypoint/filters/cors"     // envoy.filters.http.cors
	_ "github.com/gowaypoint/waypoint/filters/extauthz" // envoy.filters.http.ext_authz
	_ "github.com/gowaypoint/waypoint/filters/fault"    // envoy.filters.http.fault
	_ "github.com/gowaypoint/waypoint/filters/istio"    // peer metadata, grpc_stats (documented no-ops)
	_ "github.com/gowaypoint/waypoint/filters/jwtauthn" // envoy.filters.http.jwt_authn
	_ "github.com/gowaypoint/waypoint/filters/rbac"     // envoy.filters.http.rbac
	_ "github.com/gowaypoint/waypoint/filters/router"   // envoy.filters.http.router

	_ "github.com/gowaypoint/waypoint/filters/localratelimit" // envoy.filters.http.local_ratelimit
)

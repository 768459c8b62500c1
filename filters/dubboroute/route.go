// Package dubboroute is the route table of Dubbo calls: Envoy's
// dubbo_proxy RouteConfiguration list
// (envoy.extensions.filters.network.dubbo_proxy.v3), compiled once per
// config and matched per call as Envoy's dubbo_proxy matches it:
//
//   - route configurations in order; the first whose interface, group and
//     version match the call and one of whose routes matches wins;
//   - interface: "*" (any), "*suffix", "prefix*" or an exact name, matched
//     against the service the call names (the path attachment, else the
//     body's service path: what a Java provider resolves);
//   - group and version, when set, equal to the call's (the group
//     attachment; the version attachment, else the body's version);
//   - routes in order: attachments as headers (envoy.config.route.v3
//     HeaderMatcher, keys lower-cased; the call's method is ":method", its
//     "/<interface>/<method>" ":path"), the method name (a StringMatcher),
//     then parameters by index (params_match: exact_match or range_match
//     on the argument's string form: a string, an int or a long, a
//     boolean);
//   - the action: a cluster, or weighted_clusters (names and weights).
//
// A call whose body is not decoded (a serialization other than Hessian2)
// has no interface, method or attachments: it takes the first route whose
// conditions hold for an empty call (its configuration's interface "*",
// no group or version, a method matcher that matches "", no headers and no
// parameters), the service-level route; if an earlier route would have
// needed the body, the call is refused with a route that says why.
//
// The package may import protocols and filters, never proxy.
package dubboroute

import (
	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/router/route"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Headers of the request model that routing reads (protocols/dubbo puts
// them there).
const (
	headerServiceVersion = ":dubbo-service-version"
	headerGroup          = ":dubbo-group"
)

// Table is a compiled route table. Read-only; safe for concurrent use.
type Table struct {
	services []*service
}

// service is one RouteConfiguration.
type service struct {
	name           string
	iface          interfaceMatcher
	group, version string
	routes         []*Route
}

// Route is one compiled route. It implements filters.Route. Read-only and
// shared by every call that matches it.
type Route struct {
	name    string
	method  *route.StringMatch // nil: any method
	headers route.HeaderMatch
	params  []paramMatch

	cluster  string
	weighted []WeightedCluster
	total    uint64

	refusal string // set on the routes Match makes up to refuse a call
}

// WeightedCluster is one cluster of a weighted_clusters action.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

var _ filters.Route = (*Route)(nil)

// Name returns the name of the route's RouteConfiguration (routes have
// none of their own in Envoy's Dubbo config).
func (r *Route) Name() string { return r.name }

// FilterConfig returns nil: Dubbo routes carry no per-filter config.
func (r *Route) FilterConfig(string) any { return nil }

// Cluster returns the cluster for a call, a weighted pick by rnd when the
// route has weighted clusters (rnd modulo the total weight falls in the
// share of exactly one cluster, in config order, as Envoy picks).
func (r *Route) Cluster(rnd uint64) string {
	if r.weighted == nil {
		return r.cluster
	}
	v := rnd % r.total
	var end uint64
	for i := range r.weighted {
		end += uint64(r.weighted[i].Weight)
		if v < end {
			return r.weighted[i].Name
		}
	}
	return r.weighted[len(r.weighted)-1].Name
}

// Weighted returns the route's weighted clusters, nil for a single
// cluster. The slice is shared: do not modify it.
func (r *Route) Weighted() []WeightedCluster { return r.weighted }

// Refusal is the reason a made-up route refuses its call (a call whose
// body is not decoded, where routing needs it); "" for configured routes.
// The router answers such a call with a bad request (40).
func (r *Route) Refusal() string { return r.refusal }

// Args reads a call's arguments as routing sees them (protocols/dubbo's
// Invocation.Arg): argument i's string form and whether it has one.
type Args interface {
	Arg(i int) ([]byte, bool)
}

// Match returns the route of a call: req is the call in the request model
// (Method, Path "/<service>/<method>", attachments and the :dubbo- views in
// Header), args its arguments, nil when the body was not decoded. It
// returns nil when no route matches.
func (t *Table) Match(req *l7.Request, args Args) *Route {
	if args == nil {
		return t.matchUndecoded(req)
	}
	svc := serviceOf(req.Path)
	version, _ := req.Header.Get(headerServiceVersion)
	group, _ := req.Header.Get(headerGroup)
	method := methodBytes(req)
	for _, s := range t.services {
		if !s.iface.match(svc) || (s.group != "" && string(group) != s.group) ||
			(s.version != "" && string(version) != s.version) {
			continue
		}
		for _, r := range s.routes {
			if r.matches(req, method, args) {
				return r
			}
		}
	}
	return nil
}

// matchUndecoded finds the service-level route of a call without a body.
func (t *Table) matchUndecoded(req *l7.Request) *Route {
	needsBody := false
	for _, s := range t.services {
		if s.iface.kind != ifaceAny || s.group != "" || s.version != "" {
			needsBody = true
			continue
		}
		for _, r := range s.routes {
			if len(r.params) > 0 || r.headers.Len() > 0 || (r.method != nil && !r.method.Match(nil)) {
				needsBody = true
				continue
			}
			return r
		}
	}
	if needsBody {
		return refusalNeedsBody
	}
	return nil
}

var refusalNeedsBody = &Route{refusal: "the routes of this service read the call's interface, method, " +
	"arguments or attachments, which only a Hessian2 body carries"}

func (r *Route) matches(req *l7.Request, method []byte, args Args) bool {
	if len(method) == 0 || !r.headers.Matches(req) {
		return false
	}
	if r.method != nil && !r.method.Match(method) {
		return false
	}
	for i := range r.params {
		v, ok := args.Arg(r.params[i].index)
		if !ok || !r.params[i].match(v) {
			return false
		}
	}
	return true
}

// serviceOf returns the service of a call's path, "/<service>/<method>".
func serviceOf(path []byte) []byte {
	if len(path) == 0 || path[0] != '/' {
		return nil
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '/' {
			return path[1:i]
		}
	}
	return nil
}

// methodBytes returns the method of the path: req.Method as bytes without
// converting the string.
func methodBytes(req *l7.Request) []byte {
	p := req.Path
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if string(p[i+1:]) == req.Method {
				return p[i+1:]
			}
			break
		}
	}
	return []byte(req.Method)
}

// interfaceMatcher is a RouteConfiguration's interface, as Envoy's
// InterfaceMatcher: "*" matches any non-empty name, "*suffix" and
// "prefix*" names longer than the fixed part, anything else exactly.
type interfaceMatcher struct {
	kind  uint8
	fixed string // the name, or its fixed part
}

const (
	ifaceExact uint8 = iota
	ifaceAny
	ifaceSuffix
	ifacePrefix
)

func newInterfaceMatcher(s string) interfaceMatcher {
	switch {
	case s == "*":
		return interfaceMatcher{kind: ifaceAny}
	case len(s) > 1 && s[0] == '*':
		return interfaceMatcher{kind: ifaceSuffix, fixed: s[1:]}
	case len(s) > 1 && s[len(s)-1] == '*':
		return interfaceMatcher{kind: ifacePrefix, fixed: s[:len(s)-1]}
	}
	return interfaceMatcher{kind: ifaceExact, fixed: s}
}

func (m *interfaceMatcher) match(name []byte) bool {
	f := m.fixed
	switch m.kind {
	case ifaceAny:
		return len(name) > 0
	case ifaceSuffix:
		return len(name) > len(f) && string(name[len(name)-len(f):]) == f
	case ifacePrefix:
		return len(name) > len(f) && string(name[:len(f)]) == f
	}
	return string(name) == f
}

// paramMatch is one params_match entry.
type paramMatch struct {
	index      int
	exact      string
	hasRange   bool
	start, end int64
}

// match is Envoy's: an empty exact value matches any argument that has a
// string form; a range matches a decimal integer in [start, end).
func (p *paramMatch) match(v []byte) bool {
	if !p.hasRange {
		return p.exact == "" || string(v) == p.exact
	}
	n, ok := parseInt64(v)
	return ok && n >= p.start && n < p.end
}

// parseInt64 parses a decimal integer with an optional sign, as Abseil's
// SimpleAtoi (which Envoy uses) does, without allocating.
func parseInt64(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, b = b[0] == '-', b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return -int64(n), true
	case !neg && n < 1<<63:
		return int64(n), true
	}
	return 0, false
}

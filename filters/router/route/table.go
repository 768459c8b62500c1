package route

import (
	"math/rand/v2"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Table is a compiled RouteConfiguration. It is immutable and safe for
// concurrent use; it implements filters.RouteResolver.
type Table struct {
	name string

	exact       map[string]*virtualHost
	suffixes    []wildcardGroup // longest first
	prefixes    []wildcardGroup // longest first
	def         *virtualHost
	ignorePort  bool
	needsRandom bool

	ignorePathParams bool
	vhosts           []*virtualHost
	metadata         *corev3.Metadata
}

// wildcardGroup holds the wildcard domains of one length, without their
// '*', lower-cased.
type wildcardGroup struct {
	n     int
	hosts map[string]*virtualHost
}

// virtualHost is a compiled VirtualHost.
type virtualHost struct {
	name     string
	routes   []*Route
	metadata *corev3.Metadata
}

var _ filters.RouteResolver = (*Table)(nil)

// Name is the route configuration's name.
func (t *Table) Name() string { return t.name }

// Metadata is the route configuration's metadata (kept, not interpreted);
// may be nil.
func (t *Table) Metadata() *corev3.Metadata { return t.metadata }

// Match returns the first route of the request's virtual host that matches
// it, or nil. It draws the random value of runtime_fraction conditions
// itself (only when some route has one). It does not allocate.
func (t *Table) Match(req *l7.Request) *Route {
	var r uint64
	if t.needsRandom {
		r = rand.Uint64()
	}
	return t.MatchRandom(req, r)
}

// MatchRandom is Match with the random value for runtime_fraction given.
func (t *Table) MatchRandom(req *l7.Request, random uint64) *Route {
	vh := t.virtualHost(req.Authority)
	if vh == nil {
		return nil
	}
	path, query := splitPath(req.Path)
	if t.ignorePathParams {
		for i, ch := range path {
			if ch == ';' {
				path = path[:i]
				break
			}
		}
	}
	c := matchCtx{req: req}
	var found *Route
	for _, r := range vh.routes {
		if r.match.matches(&c, path, query, random) {
			found = r
			break
		}
	}
	c.release()
	return found
}

// Resolve matches the stream's request and, for a weighted route, picks
// its cluster with a random value, as Envoy does when it resolves a route
// (the pick then holds for the stream, retries included). It returns a nil
// interface when nothing matches.
func (t *Table) Resolve(s *filters.Stream) filters.Route {
	r := t.Match(s.Request)
	if r == nil {
		return nil
	}
	return r.Pick(rand.Uint64())
}

// virtualHost finds the virtual host for an authority (see the package
// doc for the rules).
func (t *Table) virtualHost(authority []byte) *virtualHost {
	if t.exact == nil && t.suffixes == nil && t.prefixes == nil {
		return t.def
	}
	if len(authority) == 0 {
		return nil
	}
	host := authority
	if t.ignorePort {
		if i := portStart(host); i >= 0 {
			host = host[:i]
		}
	}
	var buf [256]byte
	if hasUpper(host) {
		host = appendLower(buf[:0], host)
	}
	if vh, ok := t.exact[string(host)]; ok {
		return vh
	}
	for _, g := range t.suffixes {
		if g.n < len(host) {
			if vh, ok := g.hosts[string(host[len(host)-g.n:])]; ok {
				return vh
			}
		}
	}
	for _, g := range t.prefixes {
		if g.n < len(host) {
			if vh, ok := g.hosts[string(host[:g.n])]; ok {
				return vh
			}
		}
	}
	return t.def
}

// portStart returns the index of the ':' that starts the authority's
// port, or -1, as Envoy's HeaderUtility::getPortStart: the last ':' unless
// it is inside an IPv6 literal's brackets.
func portStart(host []byte) int {
	colon, bracket := -1, -1
	for i, c := range host {
		switch c {
		case ':':
			colon = i
		case ']':
			bracket = i
		}
	}
	if colon < 0 || (bracket >= 0 && bracket > colon) {
		return -1
	}
	return colon
}

// addDomain indexes one domain of vh; it returns false when the domain is
// already taken.
func (t *Table) addDomain(domain string, vh *virtualHost) bool {
	d := toLower(domain)
	switch {
	case d == "*":
		if t.def != nil {
			return false
		}
		t.def = vh
		return true
	case len(d) > 0 && d[0] == '*':
		return addWildcard(&t.suffixes, d[1:], vh)
	case len(d) > 0 && d[len(d)-1] == '*':
		return addWildcard(&t.prefixes, d[:len(d)-1], vh)
	}
	if t.exact == nil {
		t.exact = map[string]*virtualHost{}
	}
	if _, dup := t.exact[d]; dup {
		return false
	}
	t.exact[d] = vh
	return true
}

func addWildcard(groups *[]wildcardGroup, key string, vh *virtualHost) bool {
	for _, g := range *groups {
		if g.n == len(key) {
			if _, dup := g.hosts[key]; dup {
				return false
			}
			g.hosts[key] = vh
			return true
		}
	}
	*groups = append(*groups, wildcardGroup{n: len(key), hosts: map[string]*virtualHost{key: vh}})
	sort.Slice(*groups, func(i, j int) bool { return (*groups)[i].n > (*groups)[j].n })
	return true
}

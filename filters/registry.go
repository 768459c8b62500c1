package filters

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
)

// Factory builds one kind of filter from its Envoy config. Factories are
// registered at init time (Register) and looked up by the type URL of an
// http_filters (or dubbo_filters) entry's typed_config, or by the entry's
// name.
//
// F is the type of the filter New builds: its own type (*Filter), not
// Filter, so that Register can check that it has a filter method.
type Factory[F any] interface {
	// Names are the Envoy filter names this factory answers to, e.g.
	// "envoy.filters.http.fault".
	Names() []string
	// TypeURLs are the config type URLs it takes, e.g.
	// "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault".
	TypeURLs() []string
	// New builds the filter once per chain from its decoded config (nil
	// when the entry has no typed_config; a *structpb.Struct for a
	// TypedStruct, see DecodeTypedStruct) and ctx, which gives it a stats
	// scope, a logger and the cluster manager. It validates the config
	// whole: an error names the field at fault.
	New(ctx BuildContext, cfg proto.Message) (F, error)
}

// PerRouteFactory is implemented by factories whose filters take
// typed_per_filter_config on routes.
type PerRouteFactory interface {
	// ParsePerRoute decodes a route's config for the filter, once, at
	// config time, with the same kind of context as New; Route.FilterConfig
	// returns the result.
	ParsePerRoute(ctx BuildContext, cfg proto.Message) (any, error)
}

// NoOp marks a filter that deliberately sees no stream: one accepted for
// its config alone, such as Istio's telemetry-only filters, whose work the
// connection managers do. Embed it in such a filter's type (or build a
// NoOp): Register refuses a filter type with no filter method otherwise. A
// chain skips it.
type NoOp struct{}

func (NoOp) noOp() {}

// Registration is a factory as the registry holds it, its filter type
// checked; Lookup returns it to the config build. Read-only, safe for
// concurrent use.
type Registration struct {
	names    []string
	typeURLs []string
	perRoute PerRouteFactory
	build    func(BuildContext, proto.Message) (Filter, error)
}

// New builds a filter with the factory (Factory.New). A factory that
// returns neither a filter nor an error is refused with an error naming it.
func (r *Registration) New(ctx BuildContext, cfg proto.Message) (Filter, error) {
	return r.build(ctx, cfg)
}

// Names and TypeURLs are the factory's (Factory.Names, Factory.TypeURLs).
func (r *Registration) Names() []string    { return r.names }
func (r *Registration) TypeURLs() []string { return r.typeURLs }

// PerRoute returns the factory's per-route parser, false when its filters
// take no per-route config.
func (r *Registration) PerRoute() (PerRouteFactory, bool) { return r.perRoute, r.perRoute != nil }

var registry = struct {
	sync.RWMutex
	byName, byType map[string]*Registration
}{byName: map[string]*Registration{}, byType: map[string]*Registration{}}

// Register adds a factory. It panics, naming the factory, on a programming
// error: a name or type URL registered twice, a factory with neither, or a
// filter type F with no filter method. F must implement RequestFilter,
// ResponseFilter or Terminal (a Dubbo filter is one of these too), or
// embed NoOp; and a method that looks like a misspelled or mistyped
// OnRequest, OnResponse or Serve is refused even when another one is
// right, since the chain would silently skip that hook.
func Register[F any](f Factory[F]) {
	if err := check(f.Names(), f.TypeURLs(), reflect.TypeFor[F]()); err != nil {
		panic(err.Error())
	}
	r := &Registration{build: func(ctx BuildContext, cfg proto.Message) (Filter, error) {
		built, err := f.New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if isNil(built) {
			return nil, fmt.Errorf("filter %q built no filter", ctx.Name)
		}
		return built, nil
	}}
	r.names, r.typeURLs = f.Names(), f.TypeURLs()
	r.perRoute, _ = f.(PerRouteFactory)
	registry.Lock()
	defer registry.Unlock()
	for _, n := range f.Names() {
		if _, dup := registry.byName[n]; dup {
			panic("filters: filter name registered twice: " + n)
		}
		registry.byName[n] = r
	}
	for _, t := range f.TypeURLs() {
		if _, dup := registry.byType[t]; dup {
			panic("filters: filter type registered twice: " + t)
		}
		registry.byType[t] = r
	}
}

// hooks are the filter methods, with the interface each belongs to.
var hooks = []struct {
	method string
	iface  reflect.Type
	fuzzy  bool // whether a name a couple of edits away counts as a misspelling
}{
	{"OnRequest", reflect.TypeFor[RequestFilter](), true},
	{"OnResponse", reflect.TypeFor[ResponseFilter](), true},
	{"Serve", reflect.TypeFor[Terminal](), false},
}

// check returns an error naming the factory (by its first name, else its
// first type URL) unless it has a name or type URL and its filter type t
// has a filter method and no near miss of one.
func check(names, typeURLs []string, t reflect.Type) error {
	id := ""
	switch {
	case len(names) > 0:
		id = names[0]
	case len(typeURLs) > 0:
		id = typeURLs[0]
	default:
		return fmt.Errorf("filters: a factory of %v has no name and no type URL", t)
	}
	var ok bool
	for _, h := range hooks {
		if t.Implements(h.iface) {
			ok = true
		}
	}
	for i := range t.NumMethod() {
		m := t.Method(i).Name
		for _, h := range hooks {
			switch {
			case m == h.method && !t.Implements(h.iface):
				return fmt.Errorf("filters: filter %q: %v has %s, but not as %v's (%s%s): the chain would skip it",
					id, t, m, h.iface, m, signature(h.iface))
			case m != h.method && (strings.EqualFold(m, h.method) || h.fuzzy && editDistance(m, h.method) <= 2):
				return fmt.Errorf("filters: filter %q: %v has %s: a misspelled %s? The chain would skip it", id, t, m, h.method)
			}
		}
	}
	if ok || t.Implements(reflect.TypeFor[interface{ noOp() }]()) {
		return nil
	}
	return fmt.Errorf("filters: filter %q: %v has no filter method: it implements none of RequestFilter (OnRequest), "+
		"ResponseFilter (OnResponse) and Terminal (Serve). Return the filter's own type from New (not filters.Filter), "+
		"or embed filters.NoOp in a filter that deliberately sees no stream", id, t)
}

// signature prints the one method of iface without its name.
func signature(iface reflect.Type) string {
	return strings.TrimPrefix(iface.Method(0).Type.String(), "func")
}

// editDistance is the Levenshtein distance of a and b (short ASCII names).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// isNil reports whether a built filter is nil, or a nil pointer, map,
// slice, func or channel in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// Lookup finds the factory for an http_filters entry: by its config's type
// URL when it has one, else by its name.
func Lookup(name, typeURL string) (*Registration, error) {
	registry.RLock()
	defer registry.RUnlock()
	if typeURL != "" {
		if f, ok := registry.byType[typeURL]; ok {
			return f, nil
		}
		return nil, fmt.Errorf("unsupported HTTP filter %q (%s)", name, typeURL)
	}
	if f, ok := registry.byName[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unsupported HTTP filter %q", name)
}

// Registered lists the registered filter names, sorted.
func Registered() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.byName))
	for n := range registry.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

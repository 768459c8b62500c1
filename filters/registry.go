package filters

import (
	"fmt"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"
)

// Factory builds one kind of filter from its Envoy config. Factories are
// registered at init time and looked up by the type URL of an
// http_filters entry's typed_config, or by the entry's name.
type Factory interface {
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
	New(ctx BuildContext, cfg proto.Message) (Filter, error)
}

// PerRouteFactory is implemented by factories whose filters take
// typed_per_filter_config on routes.
type PerRouteFactory interface {
	Factory
	// ParsePerRoute decodes a route's config for the filter, once, at
	// config time, with the same kind of context as New; Route.FilterConfig
	// returns the result.
	ParsePerRoute(ctx BuildContext, cfg proto.Message) (any, error)
}

var registry = struct {
	sync.RWMutex
	byName, byType map[string]Factory
}{byName: map[string]Factory{}, byType: map[string]Factory{}}

// Register adds a factory. It panics on a name or type URL registered
// twice, which is a programming error.
func Register(f Factory) {
	registry.Lock()
	defer registry.Unlock()
	for _, n := range f.Names() {
		if _, dup := registry.byName[n]; dup {
			panic("filters: filter name registered twice: " + n)
		}
		registry.byName[n] = f
	}
	for _, t := range f.TypeURLs() {
		if _, dup := registry.byType[t]; dup {
			panic("filters: filter type registered twice: " + t)
		}
		registry.byType[t] = f
	}
}

// Lookup finds the factory for an http_filters entry: by its config's type
// URL when it has one, else by its name.
func Lookup(name, typeURL string) (Factory, error) {
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

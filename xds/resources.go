package xds

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resources is one set of xDS resources of the kinds the waypoint takes,
// as received over ADS or read from files. The messages are owned by
// whoever built the Resources and must not be modified once given to
// BuildResources.
type Resources struct {
	Listeners []*listenerv3.Listener
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Routes    []*routev3.RouteConfiguration // for HttpConnectionManager.rds
	Secrets   []*tlsv3.Secret               // SDS over ADS, for the clusters' TLS (secrets.go)
}

// The files of a resource directory, in the format of the istiod fixtures
// (../shared/istiod): {"resources": [Any, ...]} in protojson. Each is
// optional.
const (
	ListenersFile = "listeners.json"
	ClustersFile  = "clusters.json"
	EndpointsFile = "endpoints.json"
	RoutesFile    = "routes.json"
)

// LoadResourceDir reads the resource files of dir. Errors name the file and
// the resource.
func LoadResourceDir(dir string) (*Resources, error) {
	r := &Resources{}
	for _, f := range []string{ListenersFile, ClustersFile, EndpointsFile, RoutesFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		msgs, err := ParseResourceList(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
		}
		for _, m := range msgs {
			if err := r.Add(m); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
			}
		}
	}
	return r, nil
}

// Add appends one resource by its type.
func (r *Resources) Add(m proto.Message) error {
	switch v := m.(type) {
	case *listenerv3.Listener:
		r.Listeners = append(r.Listeners, v)
	case *clusterv3.Cluster:
		r.Clusters = append(r.Clusters, v)
	case *endpointv3.ClusterLoadAssignment:
		r.Endpoints = append(r.Endpoints, v)
	case *routev3.RouteConfiguration:
		r.Routes = append(r.Routes, v)
	case *tlsv3.Secret:
		r.Secrets = append(r.Secrets, v)
	default:
		return fmt.Errorf("unsupported resource type %s", m.ProtoReflect().Descriptor().FullName())
	}
	return nil
}

// ParseResourceList decodes {"resources": [Any, ...]} (protojson, each
// with its "@type"). A resource that does not parse is named by its index
// and name.
func ParseResourceList(data []byte) ([]proto.Message, error) {
	var doc struct {
		Resources []json.RawMessage `json:"resources"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	out := make([]proto.Message, 0, len(doc.Resources))
	for i, raw := range doc.Resources {
		var a anypb.Any
		if err := protojson.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("resources[%d]%s: %w", i, nameSuffix(raw), err)
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("resources[%d]%s: %w", i, nameSuffix(raw), err)
		}
		out = append(out, m)
	}
	return out, nil
}

// MarshalResourceList renders resources in the format ParseResourceList
// reads.
func MarshalResourceList[M proto.Message](ms []M) ([]byte, error) {
	var doc struct {
		Resources []json.RawMessage `json:"resources"`
	}
	doc.Resources = []json.RawMessage{}
	for _, m := range ms {
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		b, err := protojson.Marshal(a)
		if err != nil {
			return nil, err
		}
		doc.Resources = append(doc.Resources, b)
	}
	return json.MarshalIndent(doc, "", " ")
}

// BuildResources is Build for a Resources, resolving RDS first: each
// HttpConnectionManager naming a route configuration by rds is given that
// RouteConfiguration inline, as if it had come so (the listener as given
// is what the config dump shows). An rds naming a route configuration that
// is absent is an error, as is any config_source but ads. It builds with
// the zero BuildOptions, as Build does.
func BuildResources(version string, r *Resources) (*Snapshot, error) {
	return BuildOptions{}.BuildResources(version, r)
}

// BuildResources is the package's BuildResources with o.
func (o BuildOptions) BuildResources(version string, r *Resources) (*Snapshot, error) {
	routes := make(map[string]*routev3.RouteConfiguration, len(r.Routes))
	for _, rc := range r.Routes {
		if routes[rc.GetName()] != nil {
			return nil, &ResourceError{Kind: kindRoutes, Name: rc.GetName(), Err: errors.New("duplicate route configuration name")}
		}
		routes[rc.GetName()] = rc
	}
	listeners := r.Listeners
	if len(routes) > 0 || anyRDS(r.Listeners) {
		listeners = make([]*listenerv3.Listener, len(r.Listeners))
		for i, l := range r.Listeners {
			inl, err := inlineRDS(l, routes)
			if err != nil {
				return nil, &ResourceError{Kind: kindListener, Name: l.GetName(), Err: err}
			}
			listeners[i] = inl
		}
	}
	secrets, err := indexSecrets(r.Secrets)
	if err != nil {
		return nil, err
	}
	snap, err := o.build(version, listeners, r.Clusters, r.Endpoints, secrets)
	if err != nil {
		return nil, err
	}
	snap.raw = r
	for i := range snap.Listeners {
		if i < len(r.Listeners) && snap.Listeners[i].Raw != r.Listeners[i] {
			snap.Listeners[i].Raw = r.Listeners[i]
		}
	}
	return snap, nil
}

// kindRoutes is the ResourceError kind of a RouteConfiguration.
const kindRoutes = "route_configuration"

func anyRDS(ls []*listenerv3.Listener) bool {
	for _, l := range ls {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if RDSOf(f.GetTypedConfig()) != nil {
					return true
				}
			}
		}
		if fc := l.GetDefaultFilterChain(); fc != nil {
			for _, f := range fc.GetFilters() {
				if RDSOf(f.GetTypedConfig()) != nil {
					return true
				}
			}
		}
	}
	return false
}

// hcmTypeURL is the type URL of an HttpConnectionManager.
var hcmTypeURL = typeURL(&hcmv3.HttpConnectionManager{})

// The field numbers of HttpConnectionManager's route_specifier oneof.
const (
	hcmFieldRDS          = 3
	hcmFieldRouteConfig  = 4
	hcmFieldScopedRoutes = 31
)

// RDSOf returns the rds of a typed_config that is an
// HttpConnectionManager naming its routes by RDS, else nil (another
// message, a route_config inline, or bytes that do not decode). It reads
// the route specifier off the wire and decodes only the rds message:
// finding none costs no allocation, where decoding each connection
// manager (istiod writes one per Service port) cost as much as a fifth of
// a build.
func RDSOf(a *anypb.Any) *hcmv3.Rds {
	if a.GetTypeUrl() != hcmTypeURL {
		return nil
	}
	var rds []byte
	found := false
	b := a.GetValue()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil
		}
		if typ == protowire.BytesType {
			switch num {
			case hcmFieldRDS:
				v, _ := protowire.ConsumeBytes(b[n:])
				// A message field repeated on the wire is merged, as
				// proto.Unmarshal does.
				rds, found = append(rds[:len(rds):len(rds)], v...), true
			case hcmFieldRouteConfig, hcmFieldScopedRoutes:
				rds, found = nil, false // the oneof's last field wins
			}
		}
		b = b[n+m:]
	}
	if !found {
		return nil
	}
	var out hcmv3.Rds
	if proto.Unmarshal(rds, &out) != nil {
		return nil
	}
	return &out
}

// inlineRDS returns l, or a copy of it whose connection managers carry
// their RDS route configurations inline. Errors are relative to l.
func inlineRDS(l *listenerv3.Listener, routes map[string]*routev3.RouteConfiguration) (*listenerv3.Listener, error) {
	var out *listenerv3.Listener
	chains := func(m *listenerv3.Listener) []*listenerv3.FilterChain {
		cs := m.GetFilterChains()
		if m.GetDefaultFilterChain() != nil {
			cs = append(slicesClone(cs), m.GetDefaultFilterChain())
		}
		return cs
	}
	for i, fc := range chains(l) {
		for j, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().MessageName() != nameOf(&hcm) || f.GetTypedConfig().UnmarshalTo(&hcm) != nil || hcm.GetRds() == nil {
				continue
			}
			path := idx("filter_chains", i) + "." + idx("filters", j) + ".typed_config.rds"
			rds := hcm.GetRds()
			if src := rds.GetConfigSource(); src.GetAds() == nil {
				return nil, errAt(path+".config_source", "only ads is supported")
			}
			rc := routes[rds.GetRouteConfigName()]
			if rc == nil {
				return nil, errAt(path+".route_config_name", "no route configuration %s was received", strconv.Quote(rds.GetRouteConfigName()))
			}
			hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
			a, err := anypb.New(&hcm)
			if err != nil {
				return nil, err
			}
			if out == nil {
				out = proto.Clone(l).(*listenerv3.Listener)
			}
			chains(out)[i].GetFilters()[j].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		}
	}
	if out == nil {
		return l, nil
	}
	return out, nil
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

package xds

import (
	"slices"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ConfigDump renders the snapshot in the shape of Envoy's /config_dump. A
// snapshot from xDS (SetSourceVersions) shows its resources as dynamic
// ones, each with the version it was accepted at (listeners, clusters,
// endpoints and routes sections); one from a bootstrap file:
// {"configs": [BootstrapConfigDump, ListenersConfigDump, ClustersConfigDump]},
// listeners and clusters as static ones with the snapshot's Version, in
// protojson with proto field names as Envoy writes it. The bootstrap is empty
// for a snapshot that did not come from a bootstrap file. No last_updated
// times are set: a snapshot does not record when it was built.
func (s *Snapshot) ConfigDump() ([]byte, error) {
	dump, err := s.ConfigDumpProto()
	if err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(dump)
}

// ConfigDumpProto is ConfigDump before rendering, for the admin's
// /config_dump, which selects and masks it.
func (s *Snapshot) ConfigDumpProto() (*adminv3.ConfigDump, error) {
	boot := &adminv3.BootstrapConfigDump{Bootstrap: s.bootstrap}
	if (s.raw != nil || s.wire != nil) && s.sourceVersions != nil {
		sections, err := s.dynamicDump()
		if err != nil {
			return nil, err
		}
		return renderDump(append([]proto.Message{boot}, sections...))
	}
	lds := &adminv3.ListenersConfigDump{VersionInfo: s.Version}
	for _, l := range s.Listeners {
		a, err := anypb.New(l.Raw)
		if err != nil {
			return nil, err
		}
		lds.StaticListeners = append(lds.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: a})
	}
	rds := &adminv3.RoutesConfigDump{}
	raws := make([]*listenerv3.Listener, 0, len(s.Listeners))
	for _, l := range s.Listeners {
		raws = append(raws, l.Raw)
	}
	if err := addInlineRoutes(rds, raws); err != nil {
		return nil, err
	}
	cds := &adminv3.ClustersConfigDump{VersionInfo: s.Version}
	for _, c := range s.clusterOrder {
		a, err := anypb.New(c)
		if err != nil {
			return nil, err
		}
		cds.StaticClusters = append(cds.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: a})
	}
	return renderDump([]proto.Message{boot, lds, cds, rds})
}

// addInlineRoutes adds the route configurations written inline in the
// listeners' HTTP connection managers (istiod's waypoint config has no
// RDS) as static route configs, as Envoy dumps them; one configuration
// repeated on several chains is shown once.
func addInlineRoutes(rds *adminv3.RoutesConfigDump, listeners []*listenerv3.Listener) error {
	var seen []*routev3.RouteConfiguration
	add := func(fc *listenerv3.FilterChain) error {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc.MessageName() != "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if err := tc.UnmarshalTo(&hcm); err != nil {
				return err
			}
			rc := hcm.GetRouteConfig()
			if rc == nil || slices.ContainsFunc(seen, func(o *routev3.RouteConfiguration) bool { return proto.Equal(o, rc) }) {
				continue
			}
			seen = append(seen, rc)
			a, err := anypb.New(rc)
			if err != nil {
				return err
			}
			rds.StaticRouteConfigs = append(rds.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: a})
		}
		return nil
	}
	for _, l := range listeners {
		for _, fc := range l.GetFilterChains() {
			if err := add(fc); err != nil {
				return err
			}
		}
		if fc := l.GetDefaultFilterChain(); fc != nil {
			if err := add(fc); err != nil {
				return err
			}
		}
	}
	return nil
}

// renderDump wraps sections in a ConfigDump.
func renderDump(sections []proto.Message) (*adminv3.ConfigDump, error) {
	dump := &adminv3.ConfigDump{}
	for _, m := range sections {
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		dump.Configs = append(dump.Configs, a)
	}
	return dump, nil
}

// SetSourceVersions records, before the snapshot is shared, that it came
// over xDS with these accepted versions by type URL: ConfigDump then shows
// its resources as dynamic ones with their versions, as Envoy does.
func (s *Snapshot) SetSourceVersions(v map[string]string) { s.sourceVersions = v }

// The type URLs of the resource kinds, as in a config dump.
const (
	ListenerTypeURL  = "type.googleapis.com/envoy.config.listener.v3.Listener"
	ClusterTypeURL   = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointsTypeURL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	RoutesTypeURL    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// dynamicDump renders a snapshot built by BuildResources or BuildWire
// from xDS as Envoy's dynamic config dump sections.
func (s *Snapshot) dynamicDump() ([]proto.Message, error) {
	raw := s.raw
	if s.wire != nil {
		var err error
		if raw, err = s.wire.Decode(); err != nil {
			return nil, err
		}
	}
	v := s.sourceVersions
	lds := &adminv3.ListenersConfigDump{VersionInfo: v[ListenerTypeURL]}
	for _, l := range raw.Listeners {
		a, err := anypb.New(l)
		if err != nil {
			return nil, err
		}
		lds.DynamicListeners = append(lds.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: l.GetName(), ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: v[ListenerTypeURL], Listener: a}})
	}
	cds := &adminv3.ClustersConfigDump{VersionInfo: v[ClusterTypeURL]}
	for _, c := range raw.Clusters {
		a, err := anypb.New(c)
		if err != nil {
			return nil, err
		}
		cds.DynamicActiveClusters = append(cds.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: v[ClusterTypeURL], Cluster: a})
	}
	eds := &adminv3.EndpointsConfigDump{}
	for _, e := range raw.Endpoints {
		a, err := anypb.New(e)
		if err != nil {
			return nil, err
		}
		eds.DynamicEndpointConfigs = append(eds.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: v[EndpointsTypeURL], EndpointConfig: a})
	}
	rds := &adminv3.RoutesConfigDump{}
	if err := addInlineRoutes(rds, raw.Listeners); err != nil {
		return nil, err
	}
	for _, r := range raw.Routes {
		a, err := anypb.New(r)
		if err != nil {
			return nil, err
		}
		rds.DynamicRouteConfigs = append(rds.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: v[RoutesTypeURL], RouteConfig: a})
	}
	return []proto.Message{lds, cds, eds, rds}, nil
}

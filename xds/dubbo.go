package xds

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/dubboroute"
	"github.com/gowaypoint/waypoint/filters/dubborouter"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

const dubboFilterName = "envoy.filters.network.dubbo_proxy"

// DubboProxy is a decoded envoy.filters.network.dubbo_proxy: the terminal
// network filter of a chain that serves Dubbo 2 (Hessian2) calls.
// Read-only; its Chain and Routes are safe for concurrent use.
type DubboProxy struct {
	StatPrefix string
	// Routes are the route configurations (route_config, or
	// multiple_route_config's), compiled.
	Routes *dubboroute.Table
	// Chain is the dubbo_filters, built once from the same registry as
	// HTTP filters (a filter that reads headers reads a call's
	// attachments); FilterNames their names. Without dubbo_filters the
	// chain is the Dubbo router alone, as in Envoy.
	Chain       *filters.Chain
	FilterNames []string
	// AccessLog are the access logs of the listener whose chain this is
	// (Envoy's DubboProxy has none of its own): a line per call. For the
	// DubboProxy of a tcp_proxy chain (TCPProxy.Dubbo), the tcp_proxy's.
	AccessLog []*accesslog.Logger
	// Stats are the overrides of the istio.stats filter of a tcp_proxy
	// chain, for the standard metrics of its Dubbo calls (nil: none).
	Stats *metrics.Overrides
}

// defaultDubboChain is the chain of a DubboProxy without dubbo_filters:
// the Dubbo router alone, shared (the router is read-only).
var defaultDubboChain = filters.NewChain(&dubborouter.Router{Retries: dubborouter.DefaultRetries,
	DefaultTimeout: dubborouter.DefaultTimeout})

// dubboOnTCP makes up the DubboProxy of a tcp_proxy chain: a route
// configuration for any interface whose one route, for any method, goes to
// the tcp_proxy's cluster (a call's version and group then choose among
// its endpoints, proxy/dubboconn), the Dubbo router, the tcp_proxy's
// access logs.
func dubboOnTCP(tp *TCPProxy) (*DubboProxy, error) {
	rc := &dubbov3.RouteConfiguration{Interface: "*", Routes: []*dubbov3.Route{{
		Match: &dubbov3.RouteMatch{},
		Route: &dubbov3.RouteAction{ClusterSpecifier: &dubbov3.RouteAction_Cluster{Cluster: tp.Cluster}},
	}}}
	table, err := dubboroute.Compile([]*dubbov3.RouteConfiguration{rc}, "dubbo", dubboroute.CompileOptions{})
	if err != nil {
		return nil, fmt.Errorf("the Dubbo route made up for cluster %q: %w", tp.Cluster, err)
	}
	return &DubboProxy{StatPrefix: tp.StatPrefix, Routes: table, Chain: defaultDubboChain,
		FilterNames: []string{dubborouter.Name}, AccessLog: tp.AccessLog}, nil
}

// dubboAllowlist lists what of a DubboProxy is implemented. Its route
// configurations are checked whole by dubboroute.Compile, with its own
// list; drds (route discovery) is not implemented.
var dubboAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy": fields("stat_prefix", "protocol_type",
		"serialization_type", "route_config*", "multiple_route_config", "dubbo_filters"),
	"envoy.extensions.filters.network.dubbo_proxy.v3.MultipleRouteConfiguration": fields("name", "route_config*"),
	"envoy.extensions.filters.network.dubbo_proxy.v3.DubboFilter":                fields("name", "config"),
}

// decodeDubbo decodes a DubboProxy filter; errors are relative to it.
func decodeDubbo(a *anypb.Any, b *build) (*DubboProxy, error) {
	var pb dubbov3.DubboProxy
	if err := pbUnmarshal(a, &pb); err != nil {
		return nil, err
	}
	if err := dubboAllowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	d := &DubboProxy{StatPrefix: pb.GetStatPrefix()}
	// Both enums have one value each, Dubbo and Hessian2: what the
	// decoder implements. A Hessian2 connection still carries other
	// serializations, relayed by header only.
	if pb.GetProtocolType() != dubbov3.ProtocolType_Dubbo {
		return nil, errAt("protocol_type", "%v is not supported", pb.GetProtocolType())
	}
	if pb.GetSerializationType() != dubbov3.SerializationType_Hessian2 {
		return nil, errAt("serialization_type", "%v is not supported", pb.GetSerializationType())
	}
	rcs, field := pb.GetRouteConfig(), "route_config"
	if m := pb.GetMultipleRouteConfig(); m != nil {
		if len(rcs) > 0 {
			return nil, errAt("multiple_route_config", "must not be set together with route_config")
		}
		rcs, field = m.GetRouteConfig(), "multiple_route_config.route_config"
	}
	if len(rcs) == 0 {
		return nil, errAt(field, "at least one route configuration is required (drds is not supported yet)")
	}
	table, err := dubboroute.Compile(rcs, field, dubboroute.CompileOptions{
		ClusterExists: func(name string) bool { return b.clusters[name] != nil },
	})
	if err != nil {
		return nil, err
	}
	d.Routes = table
	if d.Chain, d.FilterNames, err = buildDubboChain(b, pb.GetDubboFilters()); err != nil {
		return nil, err
	}
	if err := validate(&pb); err != nil {
		return nil, err
	}
	return d, nil
}

// buildDubboChain builds the dubbo_filters: each from the filters
// registry, the last one the Dubbo router.
func buildDubboChain(b *build, pbs []*dubbov3.DubboFilter) (*filters.Chain, []string, error) {
	if len(pbs) == 0 {
		return defaultDubboChain, []string{dubborouter.Name}, nil
	}
	var fs []filters.Filter
	var names []string
	for i, f := range pbs {
		path := idx("dubbo_filters", i)
		factory, cfg, err := resolveFilter(f.GetName(), f.GetConfig())
		if err != nil {
			return nil, nil, at(path, err)
		}
		built, err := factory.New(b.context(f.GetName()), cfg)
		if err != nil {
			return nil, nil, at(path+".config", err)
		}
		b.own(built)
		_, terminal := built.(filters.Terminal)
		_, dubbo := built.(interface{ DubboOnly() })
		switch last := i == len(pbs)-1; {
		case last && !dubbo:
			return nil, nil, errAt(path, "the last Dubbo filter must be the Dubbo router (%s), not %q", dubborouter.Name, f.GetName())
		case !last && terminal:
			return nil, nil, errAt(path, "%q is terminal and must be the last filter", f.GetName())
		}
		names = append(names, f.GetName())
		fs = append(fs, built)
	}
	last := len(fs) - 1
	return filters.NewChain(fs[last].(filters.Terminal), fs[:last]...), names, nil
}

// pbUnmarshal decodes a into m, naming the type on failure.
func pbUnmarshal(a *anypb.Any, m *dubbov3.DubboProxy) error {
	if err := a.UnmarshalTo(m); err != nil {
		return fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
	}
	return nil
}

// decodeDubboFilter decodes f when it is a dubbo_proxy (ok), with errors
// relative to f.
func decodeDubboFilter(f *listenerv3.Filter, b *build) (d *DubboProxy, ok bool, err error) {
	a := f.GetTypedConfig()
	if a == nil || a.MessageName() != nameOf(&dubbov3.DubboProxy{}) {
		return nil, false, nil
	}
	d, err = decodeDubbo(a, b)
	return d, true, at("typed_config", err)
}

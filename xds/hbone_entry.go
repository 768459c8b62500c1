package xds

import (
	"fmt"
	"net/http"
	"time"

	udpatypev1 "github.com/cncf/xds/go/udpa/type/v1"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	setfilterstatehttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/set_filter_state/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	istiofilters "github.com/gowaypoint/waypoint/filters/istio"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
)

// HBONEEntry is the listener that terminates HBONE: istiod's
// connect_terminate, a TLS listener on :15008 whose HTTP connection manager
// routes every CONNECT to an internal listener (main_internal). The
// waypoint serves it with its own HBONE server (proxy/hbone) rather than as
// an HTTP chain: each CONNECT stream becomes a connection to the target
// listener whose original destination is the :authority, and whose peer is
// the verified client identity, which is what the listener's filters
// (peer metadata, connect_authority) arrange in Envoy. Read-only.
type HBONEEntry struct {
	// Cluster is the cluster the CONNECT route sends to; Target the
	// internal listener that cluster's one endpoint names (set by Build).
	Cluster string
	Target  string

	// HTTP/2 settings, from http2_protocol_options. Zero window sizes mean
	// the HBONE server's defaults (ztunnel's: 4 MiB and 16 MiB).
	MaxConcurrentStreams     uint32 // Envoy's default 2^31-1 is capped to 100 when absent
	StreamWindow, ConnWindow uint32
	KeepAliveInterval        time.Duration // 0: the server's default (10 s)
	KeepAliveTimeout         time.Duration // 0: the server's default (20 s)
	// PeerSAN holds the client certificate URI SAN matchers of the
	// validation context; a client must match one (empty: any identity
	// chained to the mesh root).
	PeerSAN UpstreamTLS
	// FilterNames lists the connection manager's http_filters.
	FilterNames []string
	// AccessLog is the connection manager's access_log: Envoy writes a
	// line per CONNECT stream; the waypoint writes one per stream it
	// refuses (400, 503: the HBONE server's answers), the only ones the
	// decoder lets it write (istiod filters it to codes of 400 and more).
	AccessLog []*accesslog.Logger
}

// isHBONEEntry tells the HBONE entry from other listeners: it is the one
// whose filter chain terminates TLS (the waypoint has no other TLS
// listener).
func isHBONEEntry(pb *listenerv3.Listener) bool {
	for _, fc := range pb.GetFilterChains() {
		if fc.GetTransportSocket() != nil {
			return true
		}
	}
	return pb.GetDefaultFilterChain().GetTransportSocket() != nil
}

// hboneEntryAllowlist is what of connect_terminate's connection manager
// is implemented. server_name, stream_idle_timeout (0: none, as HBONE
// streams have no idle limit), use_remote_address,
// forward_client_cert_details and set_current_client_cert_details concern
// the CONNECT request itself, which ends at the waypoint: they change
// nothing the tunnelled bytes carry, and are accepted as no-ops.
var hboneEntryAllowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": fields(
		"stat_prefix", "route_config", "http_filters", "http2_protocol_options", "server_name",
		"stream_idle_timeout", "use_remote_address", "forward_client_cert_details",
		"set_current_client_cert_details", "upgrade_configs", "codec_type", "generate_request_id",
		"server_header_transformation", "access_log*"), // access_log: telemetry/accesslog
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails": fields(
		"subject", "cert", "chain", "dns", "uri"),
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig": fields("upgrade_type"),
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                          fields("name", "typed_config"),
	"envoy.config.core.v3.Http2ProtocolOptions": fields("max_concurrent_streams", "allow_connect",
		"connection_keepalive", "initial_stream_window_size", "initial_connection_window_size"),
	"envoy.config.core.v3.KeepaliveSettings":                         fields("interval", "timeout"),
	"envoy.config.route.v3.RouteConfiguration":                       fields("name", "virtual_hosts", "validate_clusters"),
	"envoy.config.route.v3.VirtualHost":                              fields("name", "domains", "routes"),
	"envoy.config.route.v3.Route":                                    fields("name", "match", "route"),
	"envoy.config.route.v3.RouteMatch":                               fields("connect_matcher"),
	"envoy.config.route.v3.RouteMatch.ConnectMatcher":                fields(),
	"envoy.config.route.v3.RouteAction":                              fields("cluster", "upgrade_configs"),
	"envoy.config.route.v3.RouteAction.UpgradeConfig":                fields("upgrade_type", "connect_config"),
	"envoy.config.route.v3.RouteAction.UpgradeConfig.ConnectConfig":  fields(),
	"envoy.extensions.filters.http.router.v3.Router":                 fields(),
	"envoy.extensions.filters.http.set_filter_state.v3.Config":       fields("on_request_headers*"), // checked by checkFilterState
	"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext": fields("common_tls_context*", "require_client_certificate"),
}

// decodeHBONEEntry decodes the HBONE entry listener into l. Errors are
// relative to the listener.
func decodeHBONEEntry(pb *listenerv3.Listener, l *Listener, clusters map[string]*Cluster) (*Listener, error) {
	if l.Internal || !l.Address.IsValid() {
		return nil, errAt("address", "the HBONE listener (a filter chain with a transport_socket) needs an address")
	}
	if pb.GetFilterChainMatcher() != nil || pb.GetDefaultFilterChain() != nil || len(pb.GetFilterChains()) != 1 {
		return nil, errAt("filter_chains", "the HBONE listener (a filter chain with a transport_socket) must have exactly one filter chain, without a matcher or default chain")
	}
	if l.HTTPInspector != nil || len(pb.GetListenerFilters()) > 0 {
		return nil, errAt("listener_filters", "not supported on the HBONE listener")
	}
	fc := pb.GetFilterChains()[0]
	if fc.GetFilterChainMatch() != nil {
		return nil, errAt("filter_chains[0].filter_chain_match", "not supported on the HBONE listener")
	}
	e := &HBONEEntry{}
	if err := decodeEntryTLS(fc, e); err != nil {
		return nil, at("filter_chains[0].transport_socket", err)
	}
	if len(fc.GetFilters()) != 1 {
		return nil, errAt("filter_chains[0].filters", "want exactly one %s", hcmFilterName)
	}
	var hcm hcmv3.HttpConnectionManager
	a := fc.GetFilters()[0].GetTypedConfig()
	if a.MessageName() != nameOf(&hcm) {
		return nil, errAt("filter_chains[0].filters[0]", "want an %s, got %s", hcmFilterName, a.GetTypeUrl())
	}
	if err := decodeEntryHCM(a, e, clusters); err != nil {
		return nil, at("filter_chains[0].filters[0].typed_config", err)
	}
	if err := validate(pb); err != nil {
		return nil, err
	}
	l.HBONE = e
	return l, nil
}

// decodeEntryTLS reads the DownstreamTlsContext: TLS 1.3, ALPN h2, the
// waypoint's own certificate and root by SDS name, a client certificate
// required, and its URI SAN matchers.
func decodeEntryTLS(fc *listenerv3.FilterChain, e *HBONEEntry) error {
	a := fc.GetTransportSocket().GetTypedConfig()
	var tls tlsv3.DownstreamTlsContext
	if a.MessageName() != nameOf(&tls) {
		return fmt.Errorf("unsupported transport socket %q (%s): want a DownstreamTlsContext", fc.GetTransportSocket().GetName(), a.GetTypeUrl())
	}
	if err := proto.Unmarshal(a.GetValue(), &tls); err != nil {
		return at("typed_config", err)
	}
	if err := hboneEntryAllowlist.Check(tls.ProtoReflect()); err != nil {
		return at("typed_config", err)
	}
	if !tls.GetRequireClientCertificate().GetValue() {
		return errAt("typed_config.require_client_certificate", "must be true: HBONE peers are authenticated")
	}
	var err error
	if e.PeerSAN, err = decodeCommonTLS(tls.GetCommonTlsContext()); err != nil {
		return at("typed_config.common_tls_context", err)
	}
	return at("typed_config", validate(&tls))
}

// decodeEntryHCM checks connect_terminate's connection manager: CONNECT
// routed to one cluster, HTTP/2 options, and its filters.
func decodeEntryHCM(a *anypb.Any, e *HBONEEntry, clusters map[string]*Cluster) error {
	var pb hcmv3.HttpConnectionManager
	if err := proto.Unmarshal(a.GetValue(), &pb); err != nil {
		return fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
	}
	if err := hboneEntryAllowlist.Check(pb.ProtoReflect()); err != nil {
		return err
	}
	if c := pb.GetCodecType(); c != hcmv3.HttpConnectionManager_AUTO && c != hcmv3.HttpConnectionManager_HTTP2 {
		return errAt("codec_type", "HBONE is HTTP/2, got %s", c)
	}
	if d, err := duration(pb.GetStreamIdleTimeout(), 0); err != nil || d != 0 {
		return errAt("stream_idle_timeout", "must be 0s: HBONE streams have no idle limit")
	}
	for i, u := range pb.GetUpgradeConfigs() {
		if u.GetUpgradeType() != "CONNECT" {
			return errAt(idx("upgrade_configs", i)+".upgrade_type", "only CONNECT is supported, got %q", u.GetUpgradeType())
		}
	}
	o := pb.GetHttp2ProtocolOptions()
	if !o.GetAllowConnect() {
		return errAt("http2_protocol_options.allow_connect", "must be true: HBONE is CONNECT")
	}
	e.MaxConcurrentStreams = 100
	if v := o.GetMaxConcurrentStreams(); v != nil {
		e.MaxConcurrentStreams = v.GetValue()
	}
	e.StreamWindow = o.GetInitialStreamWindowSize().GetValue()
	e.ConnWindow = o.GetInitialConnectionWindowSize().GetValue()
	var err error
	if e.KeepAliveInterval, err = duration(o.GetConnectionKeepalive().GetInterval(), 0); err != nil {
		return at("http2_protocol_options.connection_keepalive.interval", err)
	}
	if e.KeepAliveTimeout, err = duration(o.GetConnectionKeepalive().GetTimeout(), 0); err != nil {
		return at("http2_protocol_options.connection_keepalive.timeout", err)
	}
	if err := decodeEntryRoutes(pb.GetRouteConfig(), e, clusters); err != nil {
		return at("route_config", err)
	}
	if e.AccessLog, err = accesslog.Decode(pb.GetAccessLog()); err != nil {
		return err
	}
	if accesslog.MayLogAny(e.AccessLog, http.StatusOK, 0) {
		return errAt("access_log", "on the HBONE listener, only an access_log filtered to refused streams (a status_code_filter "+
			"that excludes 200) is supported (a line per accepted CONNECT stream is not written yet)")
	}
	for i, f := range pb.GetHttpFilters() {
		if err := checkEntryFilter(f, i == len(pb.GetHttpFilters())-1); err != nil {
			return at(idx("http_filters", i), err)
		}
		e.FilterNames = append(e.FilterNames, f.GetName())
	}
	if len(e.FilterNames) == 0 {
		return errAt("http_filters", "want at least the router")
	}
	return validate(&pb)
}

// decodeEntryRoutes checks that every route is a CONNECT match sent, as a
// CONNECT upgrade, to one and the same cluster.
func decodeEntryRoutes(rc *routev3.RouteConfiguration, e *HBONEEntry, clusters map[string]*Cluster) error {
	if rc == nil {
		return errRequired
	}
	for i, vh := range rc.GetVirtualHosts() {
		for j, r := range vh.GetRoutes() {
			path := idx("virtual_hosts", i) + "." + idx("routes", j)
			if r.GetMatch().GetConnectMatcher() == nil {
				return errAt(path+".match", "the HBONE listener only routes CONNECT (connect_matcher)")
			}
			ra := r.GetRoute()
			if ra == nil || ra.GetCluster() == "" {
				return errAt(path+".route.cluster", "required")
			}
			ups := ra.GetUpgradeConfigs()
			if len(ups) != 1 || ups[0].GetUpgradeType() != "CONNECT" || ups[0].GetConnectConfig() == nil {
				return errAt(path+".route.upgrade_configs", "want one CONNECT upgrade with a connect_config")
			}
			if e.Cluster != "" && e.Cluster != ra.GetCluster() {
				return errAt(path+".route.cluster", "every CONNECT must go to one cluster (%q), got %q", e.Cluster, ra.GetCluster())
			}
			if clusters[ra.GetCluster()] == nil {
				return errAt(path+".route.cluster", "unknown cluster %q", ra.GetCluster())
			}
			e.Cluster = ra.GetCluster()
		}
	}
	if e.Cluster == "" {
		return errAt("virtual_hosts", "no CONNECT route")
	}
	return nil
}

// checkEntryFilter accepts the HTTP filters istiod gives connect_terminate:
// the downstream peer metadata filter (telemetry's peer discovery: nothing
// the tunnel carries changes), connect_authority (see filterstate.go) and
// the router, last.
func checkEntryFilter(f *hcmv3.HttpFilter, last bool) error {
	a := f.GetTypedConfig()
	if a == nil {
		return at("typed_config", errRequired)
	}
	var router routerv3.Router
	var sfs setfilterstatehttpv3.Config
	switch a.MessageName() {
	case nameOf(&router):
		if !last {
			return fmt.Errorf("the router must be the last filter")
		}
		if err := proto.Unmarshal(a.GetValue(), &router); err != nil {
			return at("typed_config", err)
		}
		return at("typed_config", hboneEntryAllowlist.Check(router.ProtoReflect()))
	case nameOf(&sfs):
		if err := proto.Unmarshal(a.GetValue(), &sfs); err != nil {
			return at("typed_config", err)
		}
		if err := hboneEntryAllowlist.Check(sfs.ProtoReflect()); err != nil {
			return at("typed_config", err)
		}
		return at("typed_config", checkFilterState("on_request_headers", sfs.GetOnRequestHeaders(), connectTerminateFilterState))
	}
	if typeURL, value, ok := typedStruct(a); ok && typeURL == istiofilters.PeerMetadataTypeURL {
		return at("typed_config.value", istiofilters.CheckPeerMetadata(value))
	}
	if last {
		return fmt.Errorf("the last HTTP filter must be the router, got %q (%s)", f.GetName(), a.GetTypeUrl())
	}
	return fmt.Errorf("unsupported HTTP filter %q (%s) on the HBONE listener", f.GetName(), a.GetTypeUrl())
}

// typedStruct unwraps a udpa or xds TypedStruct.
func typedStruct(a *anypb.Any) (string, *structpb.Struct, bool) {
	var ts1 udpatypev1.TypedStruct
	var ts3 xdstypev3.TypedStruct
	switch a.MessageName() {
	case nameOf(&ts1):
		if a.UnmarshalTo(&ts1) == nil {
			return ts1.GetTypeUrl(), ts1.GetValue(), true
		}
	case nameOf(&ts3):
		if a.UnmarshalTo(&ts3) == nil {
			return ts3.GetTypeUrl(), ts3.GetValue(), true
		}
	}
	return "", nil, false
}

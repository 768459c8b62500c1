package xds

import (
	"fmt"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	internalupstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Istio's waypoint layout reaches pods through Envoy internal listeners: a
// cluster's endpoints are internal addresses of connect_originate, whose
// tcp_proxy tunnels to an ORIGINAL_DST cluster over TLS (HBONE). Build folds
// that chain (see internal.go); the pieces are decoded here.

// OriginalDst is an ORIGINAL_DST cluster's original_dst_lb_config: the
// host is the connection's original destination (for connect_originate:
// the pod ip:port carried in the endpoint's metadata), its port replaced by
// PortOverride (15008, HBONE) when set.
type OriginalDst struct {
	PortOverride uint16
}

// originalDstNamespace is the endpoint metadata namespace holding the pod
// address of an internal endpoint: {local: "ip:port"}.
const originalDstNamespace = "envoy.filters.listener.original_dst"

// transportSocketMatchNamespace is the endpoint metadata namespace
// transport_socket_matches compare against.
const transportSocketMatchNamespace = "envoy.transport_socket_match"

// decodeOriginalDst decodes an ORIGINAL_DST cluster's settings into c.
// metadata_key is accepted as istiod writes it
// (envoy.filters.listener.original_dst/waypoint): it names an override of
// the destination for a waypoint in front of another (sandwich), which no
// endpoint the waypoint decodes carries, so the destination always is the
// original one. Errors are relative to the cluster.
func decodeOriginalDst(pb *clusterv3.Cluster, c *Cluster) error {
	if pb.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
		return errAt("lb_policy", "an ORIGINAL_DST cluster takes CLUSTER_PROVIDED, got %s", pb.GetLbPolicy())
	}
	if pb.GetLoadAssignment() != nil || pb.GetEdsClusterConfig() != nil {
		return errAt("load_assignment", "an ORIGINAL_DST cluster has no endpoints of its own")
	}
	od := &OriginalDst{}
	cfg := pb.GetOriginalDstLbConfig()
	if cfg.GetUseHttpHeader() || cfg.GetHttpHeaderName() != "" {
		return errAt("original_dst_lb_config.use_http_header", "not supported yet")
	}
	if p := cfg.GetUpstreamPortOverride(); p != nil {
		if p.GetValue() == 0 || p.GetValue() > 65535 {
			return errAt("original_dst_lb_config.upstream_port_override", "%d is not a port", p.GetValue())
		}
		od.PortOverride = uint16(p.GetValue())
	}
	if mk := cfg.GetMetadataKey(); mk != nil {
		if mk.GetKey() != originalDstNamespace || len(mk.GetPath()) != 1 || mk.GetPath()[0].GetKey() != "waypoint" {
			return errAt("original_dst_lb_config.metadata_key", "only %s/waypoint is supported", originalDstNamespace)
		}
	}
	if _, err := duration(pb.GetCleanupInterval(), 0); err != nil {
		return at("cleanup_interval", err)
	}
	c.OriginalDst = od
	return nil
}

// decodeInternalUpstream decodes an envoy.transport_sockets.internal_upstream:
// the endpoints are internal listeners, reached in memory, and the host
// metadata named in passthrough_metadata goes with the connection
// (original_dst's local: the pod address; istio's: telemetry). It reports
// whether the inner socket is TLS (double HBONE, which the waypoint decodes
// but does not serve), and the PROXY protocol header the connections start
// with when the inner socket is an upstream_proxy_protocol one (around
// raw_buffer: the header goes first into the tunnel, as through Envoy's
// internal listener), and the TLS originated when the inner socket is TLS
// that is not HBONE: to socket address endpoints (istiod's ServiceEntry
// endpoints with a DestinationRule's tls SIMPLE), which are reached with
// it directly. Errors are relative to the transport_socket.
func decodeInternalUpstream(ts *corev3.TransportSocket) (innerTLS bool, origin *OriginTLS, pp ProxyProtocolVersion, err error) {
	var iu internalupstreamv3.InternalUpstreamTransport
	if err := unpack(ts.GetTypedConfig(), &iu); err != nil {
		return false, nil, 0, at("typed_config", err)
	}
	for i, m := range iu.GetPassthroughMetadata() {
		if m.GetKind().GetHost() == nil && m.GetKind().GetCluster() == nil {
			return false, nil, 0, errAt("typed_config."+idx("passthrough_metadata", i)+".kind", "only host and cluster metadata are supported")
		}
	}
	if iu.GetTransportSocket() == nil {
		return false, nil, 0, errAt("typed_config.transport_socket", "required (raw_buffer)")
	}
	innerTS, pp, err := unwrapProxyProtocol(iu.GetTransportSocket())
	if err != nil {
		return false, nil, 0, at("typed_config.transport_socket", err)
	}
	path := "typed_config.transport_socket"
	if pp != ProxyProtocolNone {
		path += ".typed_config.transport_socket"
	}
	inner, tls, err := decodeTransportSocket(innerTS)
	if err != nil {
		return false, nil, 0, at(path, err)
	}
	return inner == TransportHBONE, tls.Originate, pp, nil
}

// decodeTransportSocketMatches picks, for the cluster's endpoints, the
// transport of transport_socket_matches: per endpoint the first match whose
// fields all equal the endpoint's envoy.transport_socket_match metadata,
// else the cluster's transport_socket. The waypoint gives a cluster one
// transport, so endpoints that pick different ones are refused. A match no
// endpoint picks is not refused for what the waypoint cannot serve (istiod
// writes its sidecar mTLS match, tlsMode-istio, on every outbound cluster of
// a waypoint, whose ambient endpoints all pick the hbone match); an endpoint
// that picks it is, by an *endpointsError naming edsService (the cluster's EDS
// service name, empty for other clusters). Errors are relative to the cluster.
func decodeTransportSocketMatches(pb *clusterv3.Cluster, c *Cluster, edsService string) error {
	type choice struct {
		t   Transport
		tls UpstreamTLS
		pp  ProxyProtocolVersion
		err error
	}
	matches := pb.GetTransportSocketMatches()
	choices := make([]choice, len(matches))
	for i, m := range matches {
		path := idx("transport_socket_matches", i) + ".transport_socket"
		if isInternalUpstream(m.GetTransportSocket()) {
			innerTLS, origin, pp, err := decodeInternalUpstream(m.GetTransportSocket())
			if err == nil && innerTLS {
				err = errAt("typed_config.transport_socket", "TLS inside internal_upstream (double HBONE) is not supported yet")
			}
			choices[i] = choice{t: transportInternal, tls: UpstreamTLS{Originate: origin}, pp: pp, err: at(path, err)}
			continue
		}
		ts, pp, err := unwrapProxyProtocol(m.GetTransportSocket())
		if err != nil {
			choices[i] = choice{err: at(path, err)}
			continue
		}
		if pp != ProxyProtocolNone {
			path += ".typed_config.transport_socket"
		}
		t, tls, err := decodeTransportSocket(ts)
		choices[i] = choice{t: t, tls: tls, pp: pp, err: at(path, err)}
	}
	picked := -2 // not yet; -1 is the cluster's own transport_socket
	for j, ep := range c.Endpoints {
		md := ep.Metadata.GetFilterMetadata()[transportSocketMatchNamespace]
		k := -1
		for i, m := range matches {
			if structSubset(m.GetMatch(), md) {
				k = i
				break
			}
		}
		if picked != -2 && k != picked {
			return errAt("transport_socket_matches", "endpoints %d and %d pick different transports; one transport per cluster is supported", 0, j)
		}
		if k >= 0 && choices[k].err != nil {
			err := fmt.Errorf("endpoint %s picks %s (%q) of cluster %q: %w",
				ep.Address, idx("transport_socket_matches", k), matches[k].GetName(), c.Name, choices[k].err)
			if edsService != "" {
				return &endpointsError{service: edsService, err: err}
			}
			return err
		}
		picked = k
	}
	if picked >= 0 {
		c.Transport, c.UpstreamTLS, c.ProxyProtocol = choices[picked].t, choices[picked].tls, choices[picked].pp
	}
	return nil
}

// endpointsError is a cluster's refusal of its EDS endpoints (one picks a
// transport the waypoint cannot serve): Build names the
// ClusterLoadAssignment, whose push is then the one refused.
type endpointsError struct {
	service string // the cluster's EDS service name
	err     error
}

func (e *endpointsError) Error() string { return e.err.Error() }
func (e *endpointsError) Unwrap() error { return e.err }

// structSubset reports whether every field of want is in have with an
// equal value (Envoy's transport socket match).
func structSubset(want, have *structpb.Struct) bool {
	for k, v := range want.GetFields() {
		hv, ok := have.GetFields()[k]
		if !ok || hv.String() != v.String() {
			return false
		}
	}
	return true
}

// isInternalUpstream reports whether ts is an internal_upstream socket.
func isInternalUpstream(ts *corev3.TransportSocket) bool {
	return ts.GetTypedConfig().MessageName() == nameOf(&internalupstreamv3.InternalUpstreamTransport{})
}

// decodeClusterFilters accepts the upstream network filters istiod puts on
// outbound clusters: istio.metadata_exchange, a no-op (see
// decodeLeadingNetworkFilter). Errors are relative to the cluster.
func decodeClusterFilters(pb *clusterv3.Cluster) error {
	for i, f := range pb.GetFilters() {
		path := idx("filters", i)
		a := f.GetTypedConfig()
		if a == nil {
			return at(path+".typed_config", errRequired)
		}
		typeURL, value, ok := typedStruct(a)
		if !ok || typeURL != MetadataExchangeTypeURL {
			return fmt.Errorf("%s: unsupported upstream network filter %q (%s)", path, f.GetName(), a.GetTypeUrl())
		}
		if err := checkMetadataExchange(value); err != nil {
			return at(path+".typed_config.value", err)
		}
	}
	return nil
}

// defaultHBONEPort is where every pod's ztunnel takes HBONE.
const defaultHBONEPort = 15008

// internalEndpoint decodes an envoy_internal_address endpoint and the pod
// address its original_dst metadata holds (zero when absent). Errors are
// relative to the LbEndpoint.
func internalEndpoint(ia *corev3.EnvoyInternalAddress, md *corev3.Metadata) (*InternalAddress, netip.AddrPort, error) {
	if ia.GetServerListenerName() == "" {
		return nil, netip.AddrPort{}, errAt("endpoint.address.envoy_internal_address.server_listener_name", "required")
	}
	in := &InternalAddress{Listener: ia.GetServerListenerName(), EndpointID: ia.GetEndpointId()}
	od := md.GetFilterMetadata()[originalDstNamespace]
	var addr netip.AddrPort
	for k, v := range od.GetFields() {
		path := key("metadata.filter_metadata", originalDstNamespace) + "." + k
		if k != "local" {
			return nil, netip.AddrPort{}, errAt(path, "not supported (only local, the pod address)")
		}
		ap, err := netip.ParseAddrPort(v.GetStringValue())
		if err != nil || ap.Port() == 0 {
			return nil, netip.AddrPort{}, errAt(path, "%v is not an ip:port", v.AsInterface())
		}
		addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return in, addr, nil
}

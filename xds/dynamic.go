package xds

import (
	"fmt"
	"net"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

// DefaultInitialFetchTimeout is Envoy's initial_fetch_timeout of a
// ConfigSource that sets none.
const DefaultInitialFetchTimeout = 15 * time.Second

// DynamicResources is a bootstrap's dynamic_resources: listeners and
// clusters (and the endpoints and routes they name) come over one ADS
// stream from the control plane that ads_config names. Read-only.
type DynamicResources struct {
	// Delta is ads_config.api_type DELTA_GRPC (incremental xDS); GRPC is
	// the state of the world.
	Delta bool
	// ControlPlane is where the ADS stream goes: ads_config's one
	// grpc_service, an envoy_grpc naming a cluster of static_resources.
	ControlPlane ControlPlane
	// InitialFetchTimeout bounds the wait for the first complete config:
	// the longer of lds_config's and cds_config's initial_fetch_timeout
	// (default 15 s each); 0 waits forever, as in Envoy.
	InitialFetchTimeout time.Duration
}

// ControlPlane is how to reach an xDS server (or Istio's CA, which istiod
// serves on the same port): the static cluster named by an envoy_grpc.
type ControlPlane struct {
	// Cluster is the static cluster's name.
	Cluster string
	// Target is the gRPC dial target of its one endpoint: "IP:PORT", or
	// "dns:///HOST:PORT" for a STRICT_DNS or LOGICAL_DNS cluster, or
	// "unix://PATH" for a pipe.
	Target string
	// ConnectTimeout is the cluster's connect_timeout (Envoy's default 5 s).
	ConnectTimeout time.Duration
	// TLS is nil for a plaintext cluster (no transport_socket, or
	// raw_buffer).
	TLS *ControlPlaneTLS
	// InitialMetadata are the grpc_service's initial_metadata, sent on
	// every call.
	InitialMetadata [][2]string
}

// ControlPlaneTLS is the UpstreamTlsContext of a control-plane cluster.
type ControlPlaneTLS struct {
	// ServerName is sni: the name the server's certificate is checked
	// against (istiod's is istiod.istio-system.svc); when empty, the host
	// of Target.
	ServerName string
	// RootCAFile or RootCAPEM is validation_context.trusted_ca (filename or
	// inline_string): the roots the server's chain must reach. Both empty:
	// the system roots.
	RootCAFile string
	RootCAPEM  []byte
	// SANExact, when set, are exact DNS or URI SANs of which the server's
	// certificate must carry one (match_typed_subject_alt_names).
	SANExact []string
	// ClientCertificate is set when the context names the SDS secret
	// "default": the waypoint presents its own workload certificate, as
	// Istio's agent does to istiod once it has one.
	ClientCertificate bool
}

// decodeDynamic decodes dynamic_resources against the static clusters; it
// returns the control-plane cluster's index in clusters.
func decodeDynamic(dr *bootstrapv3.Bootstrap_DynamicResources, clusters []*clusterv3.Cluster) (*DynamicResources, int, error) {
	d := &DynamicResources{}
	ads := dr.GetAdsConfig()
	if ads == nil {
		return nil, -1, errAt("ads_config", "required: the waypoint takes dynamic resources over ADS only")
	}
	switch ads.GetApiType() {
	case corev3.ApiConfigSource_GRPC, corev3.ApiConfigSource_AGGREGATED_GRPC:
	case corev3.ApiConfigSource_DELTA_GRPC, corev3.ApiConfigSource_AGGREGATED_DELTA_GRPC:
		d.Delta = true
	default:
		return nil, -1, errAt("ads_config.api_type", "only GRPC and DELTA_GRPC are supported, got %s", ads.GetApiType())
	}
	if v := ads.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		return nil, -1, errAt("ads_config.transport_api_version", "only V3 is supported, got %s", v)
	}
	if len(ads.GetGrpcServices()) != 1 {
		return nil, -1, errAt("ads_config.grpc_services", "want exactly one, got %d", len(ads.GetGrpcServices()))
	}
	gs := ads.GetGrpcServices()[0]
	name := gs.GetEnvoyGrpc().GetClusterName()
	if name == "" {
		return nil, -1, errAt("ads_config.grpc_services[0].envoy_grpc.cluster_name", "required")
	}
	for _, h := range gs.GetInitialMetadata() {
		d.ControlPlane.InitialMetadata = append(d.ControlPlane.InitialMetadata, [2]string{h.GetKey(), h.GetValue()})
	}
	for _, f := range []struct {
		name string
		cs   *corev3.ConfigSource
	}{{"lds_config", dr.GetLdsConfig()}, {"cds_config", dr.GetCdsConfig()}} {
		if f.cs == nil {
			return nil, -1, errAt(f.name, "required: {ads: {}}")
		}
		if f.cs.GetAds() == nil {
			return nil, -1, errAt(f.name+".ads", "required: the waypoint takes listeners and clusters over ADS only")
		}
		if v := f.cs.GetResourceApiVersion(); v != corev3.ApiVersion_V3 {
			return nil, -1, errAt(f.name+".resource_api_version", "only V3 is supported, got %s", v)
		}
		t, err := duration(f.cs.GetInitialFetchTimeout(), DefaultInitialFetchTimeout)
		if err != nil {
			return nil, -1, at(f.name+".initial_fetch_timeout", err)
		}
		if t == 0 {
			d.InitialFetchTimeout = -1 // wait forever
		} else if d.InitialFetchTimeout >= 0 {
			d.InitialFetchTimeout = max(d.InitialFetchTimeout, t)
		}
	}
	if d.InitialFetchTimeout < 0 {
		d.InitialFetchTimeout = 0
	}
	for i, c := range clusters {
		if c.GetName() != name {
			continue
		}
		cp, err := decodeControlPlaneCluster(c)
		if err != nil {
			return nil, -1, &ResourceError{Kind: kindCluster, Name: name, Err: err}
		}
		cp.InitialMetadata = d.ControlPlane.InitialMetadata
		d.ControlPlane = cp
		return d, i, nil
	}
	return nil, -1, errAt("ads_config.grpc_services[0].envoy_grpc.cluster_name",
		"no static cluster named %q", name)
}

// controlPlaneAllowlist is what a control-plane cluster may set: it is
// dialled by the xDS client, not by the data path, so it is checked apart
// from the data-plane clusters.
var controlPlaneAllowlist = pbcheck.Allowlist{
	"envoy.config.cluster.v3.Cluster": fields("name", "alt_stat_name", "type", "connect_timeout", "lb_policy",
		"load_assignment", "transport_socket", "typed_extension_protocol_options"),
	"envoy.config.endpoint.v3.ClusterLoadAssignment":                         fields("cluster_name", "endpoints"),
	"envoy.config.endpoint.v3.LocalityLbEndpoints":                           fields("lb_endpoints"),
	"envoy.config.endpoint.v3.LbEndpoint":                                    fields("endpoint"),
	"envoy.config.endpoint.v3.Endpoint":                                      fields("address"),
	"envoy.config.core.v3.Address":                                           fields("socket_address", "pipe"),
	"envoy.config.core.v3.SocketAddress":                                     fields("address", "port_value"),
	"envoy.config.core.v3.Pipe":                                              fields("path"),
	"envoy.config.core.v3.TransportSocket":                                   fields("name", "typed_config"),
	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":           fields("common_tls_context", "sni"),
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext":             fields("alpn_protocols", "validation_context", "tls_certificate_sds_secret_configs", "tls_params"),
	"envoy.extensions.transport_sockets.tls.v3.TlsParameters":                fields("tls_minimum_protocol_version", "tls_maximum_protocol_version"),
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig":              fields("name", "sds_config*"),
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext": fields("trusted_ca", "match_typed_subject_alt_names"),
	"envoy.config.core.v3.DataSource":                                        fields("filename", "inline_string", "inline_bytes"),
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher":        fields("san_type", "matcher"),
	"envoy.type.matcher.v3.StringMatcher":                                    fields("exact"),
}

// decodeControlPlaneCluster decodes the cluster ads_config names: one
// endpoint, HTTP/2 (gRPC), plaintext or TLS. Errors are relative to the
// cluster.
func decodeControlPlaneCluster(c *clusterv3.Cluster) (ControlPlane, error) {
	cp := ControlPlane{Cluster: c.GetName()}
	if err := controlPlaneAllowlist.Check(c.ProtoReflect()); err != nil {
		return cp, err
	}
	if err := validate(c); err != nil {
		return cp, err
	}
	var err error
	if cp.ConnectTimeout, err = duration(c.GetConnectTimeout(), 5*time.Second); err != nil {
		return cp, at("connect_timeout", err)
	}
	if p := c.GetLbPolicy(); p != clusterv3.Cluster_ROUND_ROBIN {
		return cp, errAt("lb_policy", "a control-plane cluster has one endpoint: only ROUND_ROBIN (the default) is supported, got %s", p)
	}
	var eps []*corev3.Address
	for _, l := range c.GetLoadAssignment().GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			eps = append(eps, e.GetEndpoint().GetAddress())
		}
	}
	if len(eps) != 1 {
		return cp, errAt("load_assignment", "want exactly one endpoint, got %d", len(eps))
	}
	const epPath = "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address"
	a := eps[0]
	dns := false
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		dns = true
	default:
		return cp, errAt("type", "a control-plane cluster must be STATIC, STRICT_DNS or LOGICAL_DNS, got %s", c.GetType())
	}
	switch {
	case a.GetPipe() != nil:
		if a.GetPipe().GetPath() == "" {
			return cp, errAt(epPath+".pipe.path", "required")
		}
		cp.Target = "unix://" + a.GetPipe().GetPath()
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		port := sa.GetPortValue()
		if port == 0 || port > 65535 {
			return cp, errAt(epPath+".socket_address.port_value", "%d is not a port", port)
		}
		hostport := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(port)))
		if dns {
			cp.Target = "dns:///" + hostport
		} else {
			if _, err := socketAddress(a, false); err != nil {
				return cp, at(epPath, err)
			}
			cp.Target = hostport
		}
	default:
		return cp, errAt(epPath, "required: a socket_address or a pipe")
	}
	if err := checkGRPCProtocol(c.GetTypedExtensionProtocolOptions()); err != nil {
		return cp, err
	}
	if cp.TLS, err = decodeControlPlaneTLS(c.GetTransportSocket()); err != nil {
		return cp, at("transport_socket", err)
	}
	return cp, nil
}

// checkGRPCProtocol requires what Envoy requires of a gRPC cluster:
// explicit HTTP/2 in its HttpProtocolOptions (the settings themselves are
// gRPC's own).
func checkGRPCProtocol(opts map[string]*anypb.Any) error {
	const path = `typed_extension_protocol_options["` + httpProtocolOptionsKey + `"]`
	a, ok := opts[httpProtocolOptionsKey]
	if len(opts) != 1 || !ok {
		return errAt("typed_extension_protocol_options", "required: %s with explicit_http_config.http2_protocol_options (gRPC)", httpProtocolOptionsKey)
	}
	var pb httpv3.HttpProtocolOptions
	if err := a.UnmarshalTo(&pb); err != nil {
		return errAt(path, "%v", err)
	}
	if pb.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		return errAt(path+".explicit_http_config.http2_protocol_options", "required: gRPC runs over HTTP/2")
	}
	return nil
}

func decodeControlPlaneTLS(ts *corev3.TransportSocket) (*ControlPlaneTLS, error) {
	if ts == nil {
		return nil, nil
	}
	a := ts.GetTypedConfig()
	if a == nil {
		return nil, at("typed_config", errRequired)
	}
	var tls tlsv3.UpstreamTlsContext
	switch a.MessageName() {
	case "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer":
		return nil, nil
	case nameOf(&tls):
	default:
		return nil, fmt.Errorf("unsupported transport socket %q (%s)", ts.GetName(), a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(&tls); err != nil {
		return nil, at("typed_config", err)
	}
	if err := controlPlaneAllowlist.Check(tls.ProtoReflect()); err != nil {
		return nil, at("typed_config", err)
	}
	out := &ControlPlaneTLS{ServerName: tls.GetSni()}
	ctx := tls.GetCommonTlsContext()
	const cpath = "typed_config.common_tls_context"
	if alpn := ctx.GetAlpnProtocols(); len(alpn) > 0 && (len(alpn) != 1 || alpn[0] != "h2") {
		return nil, errAt(cpath+".alpn_protocols", "only [h2] is supported (gRPC), got %q", alpn)
	}
	if p := ctx.GetTlsParams(); p != nil {
		if v := p.GetTlsMinimumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO && v < tlsv3.TlsParameters_TLSv1_2 {
			return nil, errAt(cpath+".tls_params.tls_minimum_protocol_version", "below TLSv1_2 is not supported, got %s", v)
		}
		if v := p.GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO && v < tlsv3.TlsParameters_TLSv1_2 {
			return nil, errAt(cpath+".tls_params.tls_maximum_protocol_version", "below TLSv1_2 is not supported, got %s", v)
		}
	}
	switch sds := ctx.GetTlsCertificateSdsSecretConfigs(); {
	case len(sds) == 0:
	case len(sds) == 1 && sds[0].GetName() == sdsCertificateName:
		out.ClientCertificate = true
	default:
		return nil, errAt(cpath+".tls_certificate_sds_secret_configs", "want at most one, named %q (the waypoint's own certificate)", sdsCertificateName)
	}
	vc := ctx.GetValidationContext()
	switch ca := vc.GetTrustedCa(); {
	case ca == nil:
	case ca.GetFilename() != "":
		out.RootCAFile = ca.GetFilename()
	case ca.GetInlineString() != "":
		out.RootCAPEM = []byte(ca.GetInlineString())
	case len(ca.GetInlineBytes()) > 0:
		out.RootCAPEM = ca.GetInlineBytes()
	default:
		return nil, errAt(cpath+".validation_context.trusted_ca", "want a filename or inline_string")
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		path := cpath + ".validation_context." + idx("match_typed_subject_alt_names", i)
		if t := m.GetSanType(); t != tlsv3.SubjectAltNameMatcher_DNS && t != tlsv3.SubjectAltNameMatcher_URI {
			return nil, errAt(path+".san_type", "only DNS and URI are supported, got %s", t)
		}
		if m.GetMatcher().GetExact() == "" {
			return nil, errAt(path+".matcher.exact", "required")
		}
		out.SANExact = append(out.SANExact, m.GetMatcher().GetExact())
	}
	return out, nil
}

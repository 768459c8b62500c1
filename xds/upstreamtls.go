package xds

import (
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// The SDS secret names istiod gives a waypoint's upstream TLS context. They
// stand for the waypoint's own certificate and the mesh root, which the data
// path loads from files; their sds_config is not dialled.
const (
	sdsCertificateName = "default"
	sdsRootName        = "ROOTCA"
)

// decodeTransportSocket maps a cluster's transport_socket to a Transport.
// Absent means HBONE, the waypoint's default. An UpstreamTlsContext is
// HBONE when it names the waypoint's own certificate (SDS "default"), as
// istiod's does; any other is TLS origination (TransportTLS). Errors are
// relative to the transport_socket.
func decodeTransportSocket(ts *corev3.TransportSocket) (Transport, UpstreamTLS, error) {
	if ts == nil {
		return TransportHBONE, UpstreamTLS{}, nil
	}
	a := ts.GetTypedConfig()
	if a == nil {
		return 0, UpstreamTLS{}, at("typed_config", errRequired)
	}
	var (
		raw rawbufferv3.RawBuffer
		tls tlsv3.UpstreamTlsContext
	)
	switch a.MessageName() {
	case nameOf(&raw):
		if err := unpack(a, &raw); err != nil {
			return 0, UpstreamTLS{}, at("typed_config", err)
		}
		return TransportPlaintext, UpstreamTLS{}, nil
	case nameOf(&tls):
		if err := unpack(a, &tls); err != nil {
			return 0, UpstreamTLS{}, at("typed_config", err)
		}
		if !isHBONETLS(tls.GetCommonTlsContext()) {
			o, err := decodeOriginTLS(&tls)
			if err != nil {
				return 0, UpstreamTLS{}, at("typed_config", err)
			}
			return TransportTLS, UpstreamTLS{Originate: o}, nil
		}
		if tls.GetSni() != "" {
			return 0, UpstreamTLS{}, errAt("typed_config.sni", "not supported on the HBONE context (its certificate is SDS %q)", sdsCertificateName)
		}
		u, err := decodeUpstreamTLS(&tls)
		if err != nil {
			return 0, UpstreamTLS{}, at("typed_config", err)
		}
		return TransportHBONE, u, nil
	}
	return 0, UpstreamTLS{}, fmt.Errorf("unsupported transport socket %q (%s)", ts.GetName(), a.GetTypeUrl())
}

// decodeUpstreamTLS accepts the UpstreamTlsContext istiod writes for HBONE
// (connect_originate): TLS 1.3, ALPN h2, the waypoint's own certificate and
// root by SDS name, and URI SAN matchers. Errors are relative to the context.
func decodeUpstreamTLS(pb *tlsv3.UpstreamTlsContext) (UpstreamTLS, error) {
	u, err := decodeCommonTLS(pb.GetCommonTlsContext())
	return u, at("common_tls_context", err)
}

// decodeCommonTLS accepts the CommonTlsContext istiod writes on both HBONE
// hops. Errors are relative to the common_tls_context.
func decodeCommonTLS(c *tlsv3.CommonTlsContext) (UpstreamTLS, error) {
	var u UpstreamTLS
	if c == nil {
		return u, fmt.Errorf("required: the waypoint's certificate (SDS %q) and root (SDS %q)",
			sdsCertificateName, sdsRootName)
	}
	if p := c.GetTlsParams(); p != nil {
		if v := p.GetTlsMinimumProtocolVersion(); v != tlsv3.TlsParameters_TLSv1_3 {
			return u, errAt("tls_params.tls_minimum_protocol_version", "only TLSv1_3 is supported, got %s", v)
		}
		if v := p.GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLSv1_3 {
			return u, errAt("tls_params.tls_maximum_protocol_version", "only TLSv1_3 is supported, got %s", v)
		}
	}
	if alpn := c.GetAlpnProtocols(); len(alpn) > 0 && !slices.Equal(alpn, []string{"h2"}) {
		return u, errAt("alpn_protocols", "only [h2] is supported, got %q", alpn)
	}
	switch {
	case len(c.GetTlsCertificates()) > 0:
		return u, errAt("tls_certificates", "not supported beside the waypoint's certificate (SDS %q)", sdsCertificateName)
	case c.GetValidationContext() != nil:
		return u, errAt("validation_context", "not supported: the HBONE root is SDS %q", sdsRootName)
	case c.GetValidationContextSdsSecretConfig() != nil:
		return u, errAt("validation_context_sds_secret_config", "not supported: the HBONE root is combined_validation_context's SDS %q", sdsRootName)
	case len(c.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchSubjectAltNames()) > 0:
		return u, errAt("combined_validation_context.default_validation_context.match_subject_alt_names", "not supported on HBONE (match_typed_subject_alt_names is)")
	case vcTrustedCA(c) != nil:
		return u, errAt("combined_validation_context.default_validation_context.trusted_ca", "not supported: the HBONE root is SDS %q", sdsRootName)
	}
	certs := c.GetTlsCertificateSdsSecretConfigs()
	if len(certs) != 1 || certs[0].GetName() != sdsCertificateName {
		return u, errAt("tls_certificate_sds_secret_configs",
			"want exactly one, named %q (the waypoint's own certificate)", sdsCertificateName)
	}
	vc := c.GetCombinedValidationContext()
	if vc.GetValidationContextSdsSecretConfig().GetName() != sdsRootName {
		return u, errAt("combined_validation_context.validation_context_sds_secret_config",
			"required, named %q (the mesh root)", sdsRootName)
	}
	for i, m := range vc.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		path := "combined_validation_context.default_validation_context." +
			idx("match_typed_subject_alt_names", i)
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
			return u, errAt(path+".san_type", "only URI is supported, got %s", m.GetSanType())
		}
		if m.GetMatcher().GetIgnoreCase() {
			return u, errAt(path+".matcher.ignore_case", "not supported on HBONE")
		}
		switch {
		case m.GetMatcher().GetExact() != "":
			u.SANExact = append(u.SANExact, m.GetMatcher().GetExact())
		case m.GetMatcher().GetPrefix() != "":
			u.SANPrefixes = append(u.SANPrefixes, m.GetMatcher().GetPrefix())
		default:
			return u, errAt(path+".matcher", "want a non-empty exact or prefix")
		}
	}
	return u, nil
}

func vcTrustedCA(c *tlsv3.CommonTlsContext) *corev3.DataSource {
	return c.GetCombinedValidationContext().GetDefaultValidationContext().GetTrustedCa()
}

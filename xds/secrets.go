package xds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// SDS secrets over ADS. istiod serves a DestinationRule's credentialName as
// Secret resources named kubernetes://NAME (the client certificate) and
// kubernetes://NAME-cacert (the CA), which an UpstreamTlsContext names by
// tls_certificate_sds_secret_configs and validation_context_sds_secret_config
// with sds_config {ads: {}}. The ADS client subscribes to the names the
// clusters refer to (SecretNames) and waits for them as Envoy's clusters
// warm; Build resolves them (resolveSecrets). A cluster whose secret has
// not arrived when the snapshot is built (its fetch timed out, or istiod
// does not serve it) is refused by the data path (Cluster.Refusal), as
// Envoy's cluster without its secret fails every connection.

// kindSecret is the ResourceError kind of a Secret.
const kindSecret = "secret"

// Secret is one decoded SDS secret: a certificate, or a validation
// context's CA. Read-only.
type Secret struct {
	// Name is the resource name (kubernetes://...).
	Name string
	// Certificate is a tls_certificate's chain and key; nil for a CA.
	Certificate *tls.Certificate
	// Roots is a validation_context's trusted_ca; nil for a certificate.
	Roots *x509.CertPool
	// raw is the deterministic encoding, for OriginTLS.Key.
	raw []byte
}

// decodeSecret decodes one Secret resource. Errors are relative to it.
func decodeSecret(pb *tlsv3.Secret) (*Secret, error) {
	if err := checkSupported(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	if pb.GetName() == "" {
		return nil, at("name", errRequired)
	}
	s := &Secret{Name: pb.GetName()}
	switch {
	case pb.GetTlsCertificate() != nil:
		tc := pb.GetTlsCertificate()
		cert, err := loadKeyPair(tc.GetCertificateChain(), tc.GetPrivateKey())
		if err != nil {
			return nil, at("tls_certificate", err)
		}
		s.Certificate = &cert
	case pb.GetValidationContext() != nil:
		vc := pb.GetValidationContext()
		if len(vc.GetMatchTypedSubjectAltNames()) > 0 || len(vc.GetMatchSubjectAltNames()) > 0 {
			return nil, errAt("validation_context", "SAN matchers in an SDS validation context are not supported yet")
		}
		if vc.GetTrustedCa() == nil {
			return nil, at("validation_context.trusted_ca", errRequired)
		}
		roots, err := loadRoots(vc.GetTrustedCa())
		if err != nil {
			return nil, at("validation_context.trusted_ca", err)
		}
		s.Roots = roots
	default:
		return nil, errors.New("want tls_certificate or validation_context")
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	if err != nil {
		return nil, err
	}
	s.raw = raw
	return s, validate(pb)
}

// indexSecrets decodes the secrets by name.
func indexSecrets(pbs []*tlsv3.Secret) (map[string]*Secret, error) {
	out := make(map[string]*Secret, len(pbs))
	for _, pb := range pbs {
		if out[pb.GetName()] != nil {
			return nil, &ResourceError{Kind: kindSecret, Name: pb.GetName(), Err: errors.New("duplicate secret name")}
		}
		s, err := decodeSecret(pb)
		if err != nil {
			return nil, &ResourceError{Kind: kindSecret, Name: pb.GetName(), Err: err}
		}
		out[s.Name] = s
	}
	return out, nil
}

// resolveSecrets gives the clusters that originate TLS with ADS secrets
// their certificate and CA from secrets, or a Refusal naming the secret
// that has not arrived.
func (s *Snapshot) resolveSecrets(secrets map[string]*Secret) {
	for _, c := range s.Clusters {
		o := c.UpstreamTLS.Originate
		if o == nil || (o.sdsCert == "" && o.sdsRoots == "") {
			continue
		}
		var key strings.Builder
		key.WriteString(o.Key)
		if o.sdsCert != "" {
			sec := secrets[o.sdsCert]
			if sec == nil || sec.Certificate == nil {
				c.Refusal = fmt.Sprintf("its TLS certificate, SDS secret %q, has not arrived", o.sdsCert)
				continue
			}
			o.Config.Certificates = append(o.Config.Certificates, *sec.Certificate)
			key.Write(sec.raw)
		}
		if o.sdsRoots != "" {
			sec := secrets[o.sdsRoots]
			if sec == nil || sec.Roots == nil {
				c.Refusal = fmt.Sprintf("its CA, SDS secret %q, has not arrived", o.sdsRoots)
				continue
			}
			o.verifier.roots = sec.Roots
			key.Write(sec.raw)
		}
		o.Key = key.String()
	}
}

// isADS reports whether an SDS secret comes over ADS (sds_config {ads: {}}),
// as istiod's kubernetes:// credentials do.
func isADS(c *tlsv3.SdsSecretConfig) bool { return c.GetSdsConfig().GetAds() != nil }

// SecretNames lists the SDS secrets a cluster refers to that come over
// ADS, in its transport sockets however nested (internal_upstream,
// PROXY protocol, transport_socket_matches). The ADS client subscribes to
// them.
func SecretNames(cl *clusterv3.Cluster) []string {
	var out []string
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if sc, ok := m.Interface().(*tlsv3.SdsSecretConfig); ok {
			if isADS(sc) && sc.GetName() != "" {
				out = append(out, sc.GetName())
			}
			return
		}
		if a, ok := m.Interface().(*anypb.Any); ok {
			if inner, err := a.UnmarshalNew(); err == nil {
				walk(inner.ProtoReflect())
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Message() == nil:
			case fd.IsList():
				for i := range v.List().Len() {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap():
				if fd.MapValue().Message() != nil {
					v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
						walk(mv.Message())
						return true
					})
				}
			default:
				walk(v.Message())
			}
			return true
		})
	}
	if ts := cl.GetTransportSocket(); ts != nil {
		walk(ts.ProtoReflect())
	}
	for _, m := range cl.GetTransportSocketMatches() {
		walk(m.ProtoReflect())
	}
	return out
}

// autoSANMatches reports whether the certificate has host among its DNS
// names (wildcards as in x509) or IP addresses: Envoy's
// auto_san_validation.
func autoSANMatches(c *x509.Certificate, host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		for _, a := range c.IPAddresses {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	if len(c.DNSNames) == 0 {
		return false
	}
	return c.VerifyHostname(host) == nil
}

package xds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
)

// OriginTLS is TLS the waypoint originates to a cluster's endpoints (a
// DestinationRule's tls mode SIMPLE, or an UpstreamTlsContext that is not
// istiod's HBONE one): plain TLS to the endpoint's own address, no HBONE.
// Read-only after decoding.
type OriginTLS struct {
	// Config is the client configuration every connection uses: SNI,
	// ALPN, versions, client certificate. Go's own verification is off
	// (Envoy does not check the SNI against the certificate); the chain
	// and SAN matchers are checked in VerifyConnection, as Envoy's
	// validation context does.
	Config *tls.Config
	// Key identifies the configuration (the context's deterministic
	// encoding): pooled connections dialled with another key are not
	// reused, as Envoy drains a cluster's connections when it changes. A
	// change of a file it names (a CA, a certificate) is not seen in it;
	// the content of an ADS secret is.
	Key string

	// sdsCert and sdsRoots name the ADS secrets (SDS over ADS: istiod's
	// kubernetes:// credentials) of the certificate and the CA; Build
	// resolves them (resolveSecrets) into Config and verifier.
	sdsCert, sdsRoots string
	verifier          *verifier // Config.VerifyConnection's
}

// ConfigFor returns the client configuration of one connection for a
// request to host (its :authority without the port), with the cluster's
// upstream_http_protocol_options: autoSNI sends host as the SNI (not
// when it is an IP address, as Envoy), autoSAN checks the peer's
// certificate for host (a DNS or IP SAN) instead of the configured SAN
// matchers. Without either it is Config.
func (o *OriginTLS) ConfigFor(host string, autoSNI, autoSAN bool) *tls.Config {
	if host == "" || !autoSNI && !autoSAN {
		return o.Config
	}
	cfg := o.Config.Clone()
	if autoSNI && net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	if autoSAN {
		v := verifier{roots: o.verifier.roots, host: host}
		cfg.VerifyConnection = v.verify
	}
	return cfg
}

// TLSKey is the Key of the TLS the cluster originates; "" when none.
func (c *Cluster) TLSKey() string {
	if o := c.UpstreamTLS.Originate; o != nil {
		return o.Key
	}
	return ""
}

// SDS names of files, as istio-agent serves them from its SDS server: the
// waypoint reads the files itself when the context is decoded (a change
// of the file is seen at the next push that decodes the cluster).
const (
	sdsFileRoot   = "file-root:" // file-root:PATH or file-root:system (the system's roots)
	sdsFileCert   = "file-cert:" // file-cert:CERT~KEY
	sdsSystemRoot = "system"
)

// isHBONETLS reports whether a CommonTlsContext is istiod's HBONE one: the
// waypoint's own certificate (SDS "default"). Every other context is TLS
// origination.
func isHBONETLS(c *tlsv3.CommonTlsContext) bool {
	certs := c.GetTlsCertificateSdsSecretConfigs()
	return len(certs) == 1 && certs[0].GetName() == sdsCertificateName
}

// decodeOriginTLS decodes an UpstreamTlsContext for TLS origination.
// Errors are relative to the context.
func decodeOriginTLS(pb *tlsv3.UpstreamTlsContext) (*OriginTLS, error) {
	cfg := &tls.Config{ServerName: pb.GetSni(), MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
	c := pb.GetCommonTlsContext()
	var err error
	if p := c.GetTlsParams(); p != nil {
		if cfg.MinVersion, err = tlsVersion(p.GetTlsMinimumProtocolVersion(), tls.VersionTLS12); err != nil {
			return nil, at("common_tls_context.tls_params.tls_minimum_protocol_version", err)
		}
		if cfg.MaxVersion, err = tlsVersion(p.GetTlsMaximumProtocolVersion(), tls.VersionTLS12); err != nil {
			return nil, at("common_tls_context.tls_params.tls_maximum_protocol_version", err)
		}
		if cfg.MinVersion > cfg.MaxVersion {
			return nil, errAt("common_tls_context.tls_params", "minimum version above the maximum")
		}
	}
	cfg.NextProtos = c.GetAlpnProtocols()
	for i, tc := range c.GetTlsCertificates() {
		path := "common_tls_context." + idx("tls_certificates", i)
		cert, err := loadKeyPair(tc.GetCertificateChain(), tc.GetPrivateKey())
		if err != nil {
			return nil, at(path, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	o := &OriginTLS{verifier: &verifier{}}
	for i, s := range c.GetTlsCertificateSdsSecretConfigs() {
		path := "common_tls_context." + idx("tls_certificate_sds_secret_configs", i) + ".name"
		if isADS(s) {
			if o.sdsCert != "" {
				return nil, errAt(path, "a second certificate over ADS (%q after %q) is not supported", s.GetName(), o.sdsCert)
			}
			o.sdsCert = s.GetName()
			continue
		}
		files, ok := strings.CutPrefix(s.GetName(), sdsFileCert)
		certFile, keyFile, ok2 := strings.Cut(files, "~")
		if !ok || !ok2 {
			return nil, errAt(path, "SDS secret %q is not supported yet (only %sCERT~KEY, read from files, or a secret over ADS)", s.GetName(), sdsFileCert)
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, errAt(path, "%v", err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	v := o.verifier
	var vc *tlsv3.CertificateValidationContext
	vcPath := "common_tls_context.validation_context."
	switch {
	case c.GetValidationContext() != nil:
		vc = c.GetValidationContext()
		if ds := vc.GetTrustedCa(); ds != nil {
			if v.roots, err = loadRoots(ds); err != nil {
				return nil, at("common_tls_context.validation_context.trusted_ca", err)
			}
		}
	case c.GetCombinedValidationContext() != nil:
		cvc := c.GetCombinedValidationContext()
		vc = cvc.GetDefaultValidationContext()
		vcPath = "common_tls_context.combined_validation_context.default_validation_context."
		if vc.GetTrustedCa() != nil {
			return nil, errAt("common_tls_context.combined_validation_context.default_validation_context.trusted_ca", "not supported beside an SDS root")
		}
		sc := cvc.GetValidationContextSdsSecretConfig()
		if isADS(sc) {
			o.sdsRoots = sc.GetName()
		} else if v.roots, err = loadSDSRoots(sc.GetName()); err != nil {
			return nil, at("common_tls_context.combined_validation_context.validation_context_sds_secret_config.name", err)
		}
	case c.GetValidationContextSdsSecretConfig() != nil:
		sc := c.GetValidationContextSdsSecretConfig()
		if isADS(sc) {
			o.sdsRoots = sc.GetName()
		} else if v.roots, err = loadSDSRoots(sc.GetName()); err != nil {
			return nil, at("common_tls_context.validation_context_sds_secret_config.name", err)
		}
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := decodeSANMatcher(m)
		if err != nil {
			return nil, at(vcPath+idx("match_typed_subject_alt_names", i), err)
		}
		v.sans = append(v.sans, sm)
	}
	for i, m := range vc.GetMatchSubjectAltNames() {
		// The deprecated form istiod writes for subjectAltNames: any SAN type.
		if _, err := decodeSANMatcher(&tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: m}); err != nil {
			return nil, at(vcPath+idx("match_subject_alt_names", i), at("matcher", err))
		}
		v.sans = append(v.sans, sanMatcher{typ: anySAN, m: m})
	}
	cfg.InsecureSkipVerify = true // verified below, as Envoy: chain and SAN matchers, not the SNI
	cfg.VerifyConnection = v.verify
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	if err != nil {
		return nil, err
	}
	o.Config, o.Key = cfg, string(key)
	return o, nil
}

func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, auto uint16) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return auto, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%s is not supported (TLSv1_2 and TLSv1_3 are)", v)
}

// dataSource reads a DataSource: a file, or inline bytes or a string.
func dataSource(ds *corev3.DataSource) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, errAt("filename", "%v", err)
		}
		return b, nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	}
	return nil, errors.New("want filename, inline_bytes or inline_string")
}

func loadKeyPair(chain, key *corev3.DataSource) (tls.Certificate, error) {
	c, err := dataSource(chain)
	if err != nil {
		return tls.Certificate{}, at("certificate_chain", err)
	}
	k, err := dataSource(key)
	if err != nil {
		return tls.Certificate{}, at("private_key", err)
	}
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		return tls.Certificate{}, err
	}
	return cert, nil
}

func loadRoots(ds *corev3.DataSource) (*x509.CertPool, error) {
	b, err := dataSource(ds)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate")
	}
	return p, nil
}

// loadSDSRoots loads the roots an SDS validation context names: only
// istio-agent's file-root names are supported.
func loadSDSRoots(name string) (*x509.CertPool, error) {
	file, ok := strings.CutPrefix(name, sdsFileRoot)
	switch {
	case !ok:
		return nil, fmt.Errorf("SDS secret %q is not supported yet (only %sPATH and %s%s, read from files, or a secret over ADS)", name, sdsFileRoot, sdsFileRoot, sdsSystemRoot)
	case file == sdsSystemRoot:
		p, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("%q: the system's roots: %v", name, err)
		}
		return p, nil
	}
	return loadRoots(&corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: file}})
}

// anySAN is the SAN type of a match_subject_alt_names entry: it matches a
// SAN of any type (DNS, URI, email, IP address), as in Envoy.
const anySAN = tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED

// sanMatcher is one of match_typed_subject_alt_names or match_subject_alt_names.
type sanMatcher struct {
	typ tlsv3.SubjectAltNameMatcher_SanType
	m   *matcherv3.StringMatcher
}

func decodeSANMatcher(m *tlsv3.SubjectAltNameMatcher) (sanMatcher, error) {
	switch m.GetSanType() {
	case tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI,
		tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
	default:
		return sanMatcher{}, errAt("san_type", "%s is not supported", m.GetSanType())
	}
	sm := m.GetMatcher()
	switch sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact, *matcherv3.StringMatcher_Prefix,
		*matcherv3.StringMatcher_Suffix, *matcherv3.StringMatcher_Contains:
	default:
		return sanMatcher{}, errAt("matcher", "want exact, prefix, suffix or contains")
	}
	return sanMatcher{typ: m.GetSanType(), m: sm}, nil
}

func (s sanMatcher) match(c *x509.Certificate) bool {
	var names []string
	if s.typ == tlsv3.SubjectAltNameMatcher_DNS || s.typ == anySAN {
		names = append(names, c.DNSNames...)
	}
	if s.typ == tlsv3.SubjectAltNameMatcher_EMAIL || s.typ == anySAN {
		names = append(names, c.EmailAddresses...)
	}
	if s.typ == tlsv3.SubjectAltNameMatcher_URI || s.typ == anySAN {
		for _, u := range c.URIs {
			names = append(names, u.String())
		}
	}
	if s.typ == tlsv3.SubjectAltNameMatcher_IP_ADDRESS || s.typ == anySAN {
		for _, ip := range c.IPAddresses {
			names = append(names, ip.String())
		}
	}
	for _, n := range names {
		if matchString(s.m, n) {
			return true
		}
	}
	return false
}

func matchString(m *matcherv3.StringMatcher, s string) bool {
	want := ""
	var f func(string, string) bool
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		want, f = p.Exact, func(a, b string) bool { return a == b }
	case *matcherv3.StringMatcher_Prefix:
		want, f = p.Prefix, strings.HasPrefix
	case *matcherv3.StringMatcher_Suffix:
		want, f = p.Suffix, strings.HasSuffix
	case *matcherv3.StringMatcher_Contains:
		want, f = p.Contains, strings.Contains
	}
	if m.GetIgnoreCase() {
		s, want = strings.ToLower(s), strings.ToLower(want)
	}
	return f(s, want)
}

// verifier checks the peer's certificate as Envoy's validation context:
// its chain to roots (nil: no check, as Envoy without a trusted CA), then
// one SAN matcher matching when there are any, or, for
// auto_san_validation, the request's host (host, which replaces them).
type verifier struct {
	roots *x509.CertPool
	sans  []sanMatcher
	host  string
}

func (v *verifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no peer certificate")
	}
	leaf := cs.PeerCertificates[0]
	if v.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter}); err != nil {
			return err
		}
	}
	if v.host != "" {
		if !autoSANMatches(leaf, v.host) {
			return fmt.Errorf("the peer's certificate is not for %q (auto_san_validation)", v.host)
		}
		return nil
	}
	if len(v.sans) == 0 {
		return nil
	}
	for _, s := range v.sans {
		if s.match(leaf) {
			return nil
		}
	}
	return errors.New("no subject alternative name of the peer matches")
}
